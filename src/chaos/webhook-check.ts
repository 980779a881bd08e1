import type { WebhookEventType } from '../webhooks/webhook-event.js';
import type { ReceiverLogLine } from './webhook-receiver.js';

/**
 * The webhooks' judge: the events the gateway owed the merchants (one per terminal order and per
 * finished refund of a merchant with an endpoint), against what the receiver's log says it
 * processed. Pure, like `checkRun`.
 */

export interface ExpectedWebhookEvent {
  readonly id: string;
  readonly type: WebhookEventType;
  readonly merchantId: string;
  /** The order or refund id. */
  readonly subjectId: string;
  /** The order's or refund's status the event reports. */
  readonly status: string;
}

export const webhookViolationKinds = [
  /** An event the gateway owed was never processed by the receiver: lost. */
  'webhook_missing',
  /** The receiver processed one event id twice: its deduplication (or its log) failed. */
  'webhook_processed_twice',
  /** The receiver processed an event no order or refund called for, or with other contents. */
  'webhook_unexpected',
  /** A delivery whose signature the receiver could not verify. */
  'webhook_bad_signature',
] as const;
export type WebhookViolationKind = (typeof webhookViolationKinds)[number];

export interface WebhookViolation {
  readonly kind: WebhookViolationKind;
  readonly eventIds: readonly string[];
  readonly detail: string;
}

export interface WebhookTally {
  readonly expected: number;
  readonly processed: number;
  /** Deliveries of an event the receiver had processed already (answered 200, not processed again). */
  readonly duplicates: number;
  readonly rejected: number;
}

export function tallyWebhooks(
  expected: readonly ExpectedWebhookEvent[],
  log: readonly ReceiverLogLine[],
): WebhookTally {
  return {
    expected: expected.length,
    processed: log.filter((line) => line.kind === 'processed').length,
    duplicates: log.filter((line) => line.kind === 'duplicate').length,
    rejected: log.filter((line) => line.kind === 'rejected').length,
  };
}

/** The expected events not processed yet: the settle phase waits until there are none. */
export function missingWebhooks(
  expected: readonly ExpectedWebhookEvent[],
  log: readonly ReceiverLogLine[],
): ExpectedWebhookEvent[] {
  const processed = new Set(log.flatMap((line) => (line.kind === 'processed' ? [line.id] : [])));
  return expected.filter((event) => !processed.has(event.id));
}

export function checkWebhooks(
  expected: readonly ExpectedWebhookEvent[],
  log: readonly ReceiverLogLine[],
): WebhookViolation[] {
  const violations: WebhookViolation[] = [];
  const expectedById = new Map(expected.map((event) => [event.id, event]));
  const processedCount = new Map<string, number>();
  for (const line of log) {
    if (line.kind === 'rejected') {
      violations.push({
        kind: 'webhook_bad_signature',
        eventIds: [],
        detail: `a delivery to ${line.merchantId} was rejected: ${line.reason}`,
      });
      continue;
    }
    if (line.kind !== 'processed') continue;
    processedCount.set(line.id, (processedCount.get(line.id) ?? 0) + 1);
    const owed = expectedById.get(line.id);
    if (owed === undefined) {
      violations.push({
        kind: 'webhook_unexpected',
        eventIds: [line.id],
        detail: `${line.type} for ${line.subjectId} (${line.merchantId}) matches no outcome the gateway reports`,
      });
    } else if (
      owed.type !== line.type ||
      owed.merchantId !== line.merchantId ||
      owed.subjectId !== line.subjectId ||
      owed.status !== line.status
    ) {
      violations.push({
        kind: 'webhook_unexpected',
        eventIds: [line.id],
        detail: `received ${line.type} ${line.subjectId} ${line.status} for ${line.merchantId}, owed ${owed.type} ${owed.subjectId} ${owed.status} for ${owed.merchantId}`,
      });
    }
  }
  for (const [id, count] of processedCount) {
    if (count > 1) {
      violations.push({
        kind: 'webhook_processed_twice',
        eventIds: [id],
        detail: `processed ${count} times`,
      });
    }
  }
  for (const event of missingWebhooks(expected, log)) {
    violations.push({
      kind: 'webhook_missing',
      eventIds: [event.id],
      detail: `${event.type} for ${event.subjectId} (${event.merchantId}) never processed`,
    });
  }
  return violations;
}
