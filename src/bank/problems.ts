import type { FastifyError, FastifyReply } from 'fastify';
import { type Problem, type ProblemCode, problemContentType, problemType } from './bank-protocol.js';
import { LedgerClosedError, LedgerCommitFailedError, LedgerOverloadedError } from './ledger-committer.js';

/**
 * Every error answer of the bank is problem+json with a stable `code`. Details are written here,
 * never copied from a parser or a validator that might quote the request: the request may hold a
 * card number.
 */

const titles: Readonly<Record<ProblemCode, string>> = {
  invalid_request: 'Invalid request',
  malformed_json: 'Malformed JSON',
  unsupported_media_type: 'Unsupported media type',
  payload_too_large: 'Payload too large',
  invalid_card: 'Invalid card',
  reference_conflict: 'Reference conflict',
  payment_not_found: 'Payment not found',
  refund_not_found: 'Refund not found',
  refund_payment_unknown: 'Payment unknown',
  refund_payment_not_approved: 'Payment not approved',
  refund_currency_mismatch: 'Currency mismatch',
  refund_exceeds_payment: 'Refund exceeds payment',
  route_not_found: 'Route not found',
  answer_withheld: 'Answer withheld',
  bank_unavailable: 'Bank unavailable',
  bank_overloaded: 'Bank overloaded',
  ledger_unavailable: 'Ledger unavailable',
  internal_error: 'Internal error',
};

export function problem(status: number, code: ProblemCode, detail: string, param?: string): Problem {
  return {
    type: problemType(code),
    title: titles[code],
    status,
    code,
    detail,
    ...(param === undefined ? {} : { param }),
  };
}

export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.code(body.status).type(problemContentType).send(body);
}

/** One entry of Fastify's (ajv's) validation errors, as far as we read it. */
interface ValidationIssue {
  readonly keyword: string;
  readonly instancePath: string;
  readonly message?: string;
  readonly params: Record<string, unknown>;
}

/**
 * Ajv's messages name the rule that failed ("must be integer", "must match pattern ...") and never
 * the value, so they are safe to pass on; the path says which field.
 */
function validationProblem(context: string | undefined, issues: readonly ValidationIssue[]): Problem {
  const issue = issues[0];
  if (issue === undefined) return problem(400, 'invalid_request', `the ${context ?? 'request'} is invalid`);
  let param = issue.instancePath;
  const extra = issue.params.additionalProperty ?? issue.params.missingProperty;
  if (typeof extra === 'string') param = `${param}/${extra}`;
  const where = param === '' ? (context ?? 'request') : `${context ?? 'request'} ${param}`;
  const reason =
    issue.keyword === 'additionalProperties'
      ? 'is not a known field'
      : issue.keyword === 'required'
        ? 'is required'
        : (issue.message ?? 'is invalid');
  return problem(400, 'invalid_request', `${where} ${reason}`, param === '' ? undefined : param);
}

const frameworkProblems: Readonly<Record<string, Problem>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: problem(400, 'malformed_json', 'the body is not valid JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: problem(400, 'malformed_json', 'the body is empty but declared as JSON'),
  FST_ERR_CTP_BODY_TOO_LARGE: problem(413, 'payload_too_large', 'the body exceeds the size limit'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: problem(415, 'unsupported_media_type', 'send the body as application/json'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: problem(
    400,
    'invalid_request',
    'content-length does not match the body',
  ),
  FST_ERR_BAD_URL: problem(400, 'invalid_request', 'the URL is not validly encoded'),
  FST_ERR_MAX_PARAM_LENGTH: problem(400, 'invalid_request', 'a path parameter is too long'),
};

function isFastifyError(error: unknown): error is Partial<FastifyError> {
  return typeof error === 'object' && error !== null;
}

/**
 * Maps whatever reached Fastify's error handler to the problem to answer with. Anything that is not
 * a recognizable client error is a 500: the bank's fault, never the caller's.
 */
export function problemFromError(error: unknown): Problem {
  const ledgerProblem = ledgerProblemFromError(error);
  if (ledgerProblem !== undefined) return ledgerProblem;
  if (!isFastifyError(error)) return problem(500, 'internal_error', 'the bank failed to process the request');
  if (error.validation !== undefined) return validationProblem(error.validationContext, error.validation);
  const known = error.code === undefined ? undefined : frameworkProblems[error.code];
  if (known !== undefined) return known;
  const status = error.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return problem(status, 'invalid_request', 'the request is invalid');
  }
  return problem(500, 'internal_error', 'the bank failed to process the request');
}

/** A ledger write refused or failed as a whole: nothing of the request was recorded, so retry. */
function ledgerProblemFromError(error: unknown): Problem | undefined {
  if (error instanceof LedgerOverloadedError) {
    return problem(
      503,
      'bank_overloaded',
      'too many requests are waiting for the ledger; nothing was processed, retry later',
    );
  }
  if (error instanceof LedgerCommitFailedError) {
    return problem(
      503,
      'ledger_unavailable',
      'the ledger failed to commit; nothing was recorded, retry later',
    );
  }
  if (error instanceof LedgerClosedError) {
    return problem(503, 'bank_unavailable', 'the bank is shutting down; nothing was processed');
  }
  return undefined;
}
