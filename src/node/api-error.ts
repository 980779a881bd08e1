/**
 * An error the order service answers a request with: an HTTP status and a stable `code` a client
 * can switch on (the API turns it into `application/problem+json`), with `param` naming the
 * offending field when there is one, and headers such as `retry-after`.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly param?: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail);
  }
}
