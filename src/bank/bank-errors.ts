/**
 * What can go wrong when talking to the bank, typed by what the caller must do next. Messages name
 * the operation and the reference, never the card.
 *
 * - `BankUnavailableError`: the bank did not process the request (connection refused, 5xx).
 *   Repeating the same call later, with backoff, is safe.
 * - `BankOutcomeUnknownError` and its kinds (`BankTimeoutError`, `BankConnectionLostError`,
 *   `BankAnswerWithheldError`, `BankMalformedResponseError`): the request may have reached the bank,
 *   and for `authorize` the payment may have been charged, for `refund` the money given back.
 *   Resolve it with `inquire(reference)` or `inquireRefund(reference)`, never a blind resend.
 * - `BankRejectedError`: the bank refused the request itself (4xx with a stable `code`); repeating
 *   it gives the same answer. Terminal.
 */

export type BankOperation =
  | 'authorize'
  | 'inquire'
  | 'cancel'
  | 'refund'
  | 'inquireRefund'
  | 'ledger'
  | 'faults';

/** The operations that move money: an unknown outcome of one is settled by an inquiry, never a resend. */
const movingMoney: ReadonlySet<BankOperation> = new Set<BankOperation>(['authorize', 'refund']);

export abstract class BankError extends Error {
  /** True when the very same call may simply be made again. */
  abstract readonly retryable: boolean;
  /** True when the bank may have acted on the request without the caller learning the answer. */
  abstract readonly outcomeUnknown: boolean;

  constructor(
    message: string,
    readonly operation: BankOperation,
    readonly reference: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function subject(operation: BankOperation, reference: string | undefined): string {
  return reference === undefined ? `bank ${operation}` : `bank ${operation} of reference ${reference}`;
}

export class BankUnavailableError extends BankError {
  override readonly name = 'BankUnavailableError';
  readonly retryable = true;
  readonly outcomeUnknown = false;

  constructor(
    operation: BankOperation,
    reference: string | undefined,
    detail: string,
    /** The HTTP status when the bank answered (5xx), undefined when it could not be reached. */
    readonly status?: number,
    /** The problem code of a 5xx answer, e.g. `bank_unavailable`. */
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${subject(operation, reference)}: bank unavailable (${detail}); safe to retry`,
      operation,
      reference,
      options,
    );
  }
}

export abstract class BankOutcomeUnknownError extends BankError {
  readonly outcomeUnknown = true;
  /**
   * An inquiry (a GET) and a cancel (idempotent: the same reference settles the same way) are safe
   * to repeat; an authorization or a refund must be resolved by inquiring.
   */
  get retryable(): boolean {
    return !movingMoney.has(this.operation);
  }
}

export class BankTimeoutError extends BankOutcomeUnknownError {
  override readonly name = 'BankTimeoutError';

  constructor(
    operation: BankOperation,
    reference: string | undefined,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(
      `${subject(operation, reference)}: no answer within ${timeoutMs} ms; the outcome is unknown, inquire before any resend`,
      operation,
      reference,
      options,
    );
  }
}

/** The connection broke after the request may have been sent (reset, closed mid-answer). */
export class BankConnectionLostError extends BankOutcomeUnknownError {
  override readonly name = 'BankConnectionLostError';

  constructor(
    operation: BankOperation,
    reference: string | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${subject(operation, reference)}: connection lost (${detail}); the outcome is unknown, inquire before any resend`,
      operation,
      reference,
      options,
    );
  }
}

/**
 * The bank said, for one payment of a batch, that it withholds the answer (the simulator's
 * `timeoutRate` fault): the payment may have been charged, exactly as after a timeout.
 */
export class BankAnswerWithheldError extends BankOutcomeUnknownError {
  override readonly name = 'BankAnswerWithheldError';

  constructor(reference: string | undefined, detail: string) {
    super(
      `${subject('authorize', reference)}: answer withheld (${detail}); the outcome is unknown, inquire before any resend`,
      'authorize',
      reference,
    );
  }
}

/**
 * The bank answered with a success status but a body we cannot read: it did something, we cannot
 * tell what. Treated as an unknown outcome rather than "unavailable", because a 2xx means the
 * request was processed and a resend decided on a misread answer could contradict it.
 */
export class BankMalformedResponseError extends BankOutcomeUnknownError {
  override readonly name = 'BankMalformedResponseError';

  constructor(
    operation: BankOperation,
    reference: string | undefined,
    readonly status: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${subject(operation, reference)}: unreadable answer with status ${status} (${detail}); the outcome is unknown, inquire before any resend`,
      operation,
      reference,
      options,
    );
  }
}

export class BankRejectedError extends BankError {
  override readonly name = 'BankRejectedError';
  readonly retryable = false;
  readonly outcomeUnknown = false;

  constructor(
    operation: BankOperation,
    reference: string | undefined,
    readonly status: number,
    /** The problem's stable code (e.g. `invalid_card`, `reference_conflict`), or `http_<status>`. */
    readonly code: string,
    detail: string,
  ) {
    super(
      `${subject(operation, reference)}: rejected with ${status} ${code} (${detail})`,
      operation,
      reference,
    );
  }
}
