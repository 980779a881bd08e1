import type { BankOperation } from '../bank/bank-errors.js';
import type { EntityAddress } from '../runtime/entity-address.js';
import type { Violation } from './invariants.js';
import type { DurableLog } from './sim-journal.js';

/** The event that makes each order status true: a status may be shown only once its event is durable. */
const eventOfStatus: Readonly<Record<string, string>> = {
  new: 'OrderCreated',
  validated: 'OrderValidated',
  rejected: 'OrderRejected',
  executed: 'OrderExecuted',
  declined: 'OrderDeclined',
  failed: 'OrderFailed',
};

const terminalEvents = ['OrderExecuted', 'OrderDeclined', 'OrderFailed'];

/**
 * The bank's records that justify each outcome: a decline may also be the answer to a payment of a
 * reference cancelled before it (`reference_cancelled`), and a failure is always a cancelled one.
 */
const bankStatusesOf: Readonly<Record<string, readonly string[]>> = {
  executed: ['approved'],
  declined: ['declined', 'cancelled'],
  failed: ['cancelled'],
};

/**
 * "Persist, then act", checked at the gateway's edges while a seed runs: at the moment a message
 * leaves an entity, a reply reaches a client, or a call leaves for the bank, the event that
 * justifies it must already be durable in the journal. A crash can take back anything that is not,
 * so anything acted on before that is a promise the system may not keep.
 *
 * It watches only what crosses the edges: a side effect kept inside the process (a waiter table, a
 * log line) is not seen.
 */
export class OnlineChecks {
  private readonly found: Violation[] = [];

  constructor(
    private readonly log: DurableLog,
    private readonly now: () => number,
    private readonly enabled: boolean,
    /** The bank's durable record of a reference: approved, declined, cancelled, or none. */
    private readonly bankStatusOf: (reference: string) => string | undefined = () => undefined,
  ) {}

  get violations(): readonly Violation[] {
    return this.found;
  }

  /** A message one entity sends another. */
  onMessage(address: EntityAddress<unknown>, message: unknown): void {
    if (!this.enabled || typeof message !== 'object' || message === null) return;
    const type = Reflect.get(message, 'type');
    const orderId = Reflect.get(message, 'orderId');
    if (typeof orderId !== 'string') return;
    const to = `${address.typeName}-${address.entityId}`;
    switch (type) {
      case 'ExecuteOrder':
        this.require(orderId, 'OrderValidated', 'merchant-', `ExecuteOrder to ${to}`);
        return;
      case 'ConfirmExecuteOrder':
        this.require(orderId, 'ExecutionRequested', 'executor-', `ConfirmExecuteOrder to ${to}`);
        return;
      case 'ProcessExecutionResult': {
        const outcome = Reflect.get(message, 'outcome');
        const kind =
          typeof outcome === 'object' && outcome !== null ? Reflect.get(outcome, 'kind') : undefined;
        // The Executor reports the bank's answer as soon as it has it: that answer is durable in the
        // bank's ledger (and an inquiry gives it again after a crash), or in the Executor's journal.
        const settled = this.log
          .factsOf(orderId)
          .some(
            (fact) =>
              fact.type === 'ExecutionSettled' &&
              fact.persistenceId.startsWith('executor-') &&
              fact.outcomeKind === kind,
          );
        const atBank = bankStatusesOf[String(kind)]?.includes(this.bankStatusOf(orderId) ?? '') === true;
        if (!settled && !atBank) {
          this.report(
            orderId,
            `ProcessExecutionResult ${String(kind)} to ${to}`,
            "ExecutionSettled or the bank's record",
          );
        }
        return;
      }
      case 'ConfirmResult': {
        const finished = terminalEvents.some((event) => this.log.has(orderId, event, 'merchant-'));
        if (!finished) this.report(orderId, `ConfirmResult to ${to}`, 'a terminal Merchant event');
        return;
      }
      default:
        return;
    }
  }

  /** A reply to a client's ProcessNewOrder, as the Merchant emits it. */
  onReply(reply: {
    readonly type: string;
    readonly order?: { readonly id: string; readonly status: string };
    readonly orderId?: string;
  }): void {
    if (!this.enabled) return;
    // "Processed earlier" sends the client to the read model: the order must be durable by now.
    if (reply.type === 'OrderProcessedEarlier' && reply.orderId !== undefined) {
      this.require(reply.orderId, 'OrderCreated', 'merchant-', `${reply.type} reply`);
    }
    if (reply.order === undefined) return;
    const { id, status } = reply.order;
    this.require(id, 'OrderCreated', 'merchant-', `${reply.type} reply`);
    const event = eventOfStatus[status];
    if (event !== undefined) this.require(id, event, 'merchant-', `${reply.type} reply showing ${status}`);
  }

  /** A call leaving for the bank. */
  onBankCall(operation: BankOperation, reference: string): void {
    if (!this.enabled) return;
    if (operation === 'refund' || operation === 'inquireRefund') {
      // A refund's reference is its refund id: the Executor must have recorded it first.
      this.require(reference, 'RefundExecutionRequested', 'executor-', `bank ${operation}`);
      return;
    }
    this.require(reference, 'ExecutionRequested', 'executor-', `bank ${operation}`);
    if (operation === 'authorize' && this.log.has(reference, 'ExecutionSettled', 'executor-')) {
      // The outcome is known and durable: authorizing again is executing the order twice (the bank's
      // own deduplication is the only thing between this and a second charge).
      this.found.push({
        invariant: 'executor.no-authorization-after-outcome',
        detail: `authorization of ${reference} sent after its outcome was durable`,
        at: this.now(),
      });
    }
  }

  private require(orderId: string, type: string, prefix: string, what: string): void {
    if (!this.log.has(orderId, type, prefix)) this.report(orderId, what, type);
  }

  private report(orderId: string, what: string, missing: string): void {
    this.found.push({
      invariant: 'durability.acted-before-durable',
      detail: `${what} for ${orderId} before ${missing} was durable`,
      at: this.now(),
    });
  }
}
