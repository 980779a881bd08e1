import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../node/api-error.js';

export { ApiError };

/**
 * Every error the API returns is `application/problem+json` (RFC 9457) with a stable `code` a
 * client can switch on, and `param` naming the offending field when there is one. Bad input is
 * always a 4xx; a 500 means a bug, is logged, and says nothing about internals.
 */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly param?: string;
}

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, code: string, detail: string, param?: string): Problem {
  return {
    type: `https://remit.dev/problems/${code}`,
    title: titles[status] ?? 'Error',
    status,
    code,
    detail,
    ...(param === undefined ? {} : { param }),
  };
}

export function sendProblem(
  reply: FastifyReply,
  body: Problem,
  headers: Readonly<Record<string, string>> = {},
) {
  return reply.code(body.status).headers(headers).type('application/problem+json').send(body);
}

/** Turns Fastify's own errors (schema validation, body parsing, limits) into stable problems. */
export function problemOf(error: FastifyError & { validation?: ValidationIssue[] }): Problem {
  if (error instanceof ApiError) return problem(error.status, error.code, error.detail, error.param);
  if (error.validation !== undefined && error.validation.length > 0) return validationProblem(error);
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(400, 'malformed_json', 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(413, 'payload_too_large', 'The request body is larger than the server accepts.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(415, 'unsupported_media_type', 'Send the request body as application/json.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem(400, 'invalid_content_length', 'The Content-Length header does not match the body.');
    default:
      break;
  }
  if (error instanceof SyntaxError || error.statusCode === 400) {
    return problem(400, 'malformed_request', 'The request could not be read.');
  }
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return problem(error.statusCode, 'invalid_request', 'The request is not acceptable.');
  }
  return problem(500, 'internal_error', 'Something went wrong on our side; the request may be retried.');
}

interface ValidationIssue {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
}

function validationProblem(
  error: FastifyError & { validation?: ValidationIssue[]; validationContext?: string },
) {
  const issue = error.validation?.[0];
  const context = error.validationContext ?? 'body';
  if (issue === undefined) return problem(400, 'invalid_request', 'The request is not valid.');
  const path = issue.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const missing = typeof issue.params.missingProperty === 'string' ? issue.params.missingProperty : undefined;
  const extra =
    typeof issue.params.additionalProperty === 'string' ? issue.params.additionalProperty : undefined;
  const field = [path, missing ?? extra].filter((part) => part !== undefined && part !== '').join('.');
  const param = field === '' ? undefined : field;
  const where = context === 'body' ? '' : ` in the ${context === 'querystring' ? 'query' : context}`;
  if (extra !== undefined) {
    return problem(
      400,
      'unknown_field',
      `Field ${param ?? extra}${where} is not part of this request.`,
      param,
    );
  }
  if (missing !== undefined)
    return problem(400, 'missing_field', `Field ${param}${where} is required.`, param);
  return problem(
    400,
    'invalid_field',
    `Field ${param ?? context}${where} ${issue.message ?? 'is not valid'}.`,
    param,
  );
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const body = problemOf(error);
    if (body.status >= 500) request.log.error({ err: error }, 'request failed');
    const headers = error instanceof ApiError ? error.headers : {};
    return sendProblem(reply, body, headers);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(404, 'route_not_found', `No route ${request.method} ${request.url.split('?')[0]}.`),
    ),
  );
}
