import { orderIdFor } from '../payments/order.js';

/**
 * The invariants checked after every seed, as pure functions of what the seed observed. They know
 * nothing about how the observation was made, so each can be tested on hand-made observations
 * (invariants.unit.spec.ts) — a checker that cannot fail proves nothing.
 */

export interface Violation {
  /** A stable name of the invariant, e.g. `ledger.charged-not-executed`. */
  readonly invariant: string;
  readonly detail: string;
  /** Simulated time (ms since the seed's start) for online checks. */
  readonly at?: number;
}

/** An order as one source shows it: the Merchant (live or recovered) or the read model. */
export interface ObservedOrder {
  readonly id: string;
  readonly merchantId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly status: string;
  readonly amount: bigint;
  readonly currency: string;
  readonly reason: string | undefined;
  readonly authorizationCode: string | undefined;
}

/**
 * An answer the API's OrderService gave a client request (whether or not the client received it):
 * an order, or an error.
 */
export interface ObservedAnswer {
  /** Its place among every answer of the seed, in the order they were given. */
  readonly seq: number;
  readonly order:
    | { readonly id: string; readonly requestHash: string; readonly status: string; readonly amount: bigint }
    | undefined;
  /** The API error's HTTP status and code; 500 `internal` for anything that is not an API error. */
  readonly error: { readonly status: number; readonly code: string } | undefined;
  /** False when the answer was lost on its way to the client. */
  readonly received: boolean;
  /** The cluster node (slot) that answered; absent on one node. */
  readonly node?: number;
}

export interface ObservedRequest {
  readonly merchantId: string;
  readonly idempotencyKey: string;
  readonly orderId: string;
  readonly requestHash: string;
  readonly variant: string;
  /** The client got a final answer: a terminal order or the key-reuse error. */
  readonly answered: boolean;
  readonly answers: readonly ObservedAnswer[];
}

export interface ObservedCreation {
  readonly merchantId: string;
  readonly orderId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
}

/** The Executor side of one order, from the executor journals. */
export interface ObservedExecution {
  readonly requested: number;
  readonly settled: readonly string[];
  readonly confirmed: number;
}

/** A bank ledger record (the ground truth of what was charged). */
export interface ObservedPayment {
  readonly reference: string;
  readonly merchantId: string;
  readonly status: 'approved' | 'declined' | 'cancelled';
  readonly amount: number;
  readonly currency: string | undefined;
  readonly authorizationCode: string | undefined;
  readonly declineReason: string | undefined;
  readonly requestCount: number;
}

export interface SeedObservation {
  /** Everything settled (or the heal phase's time ran out first). */
  readonly quiescent: boolean;
  /** What was still pending when the heal phase ended, if it was not quiescent. */
  readonly pending: readonly string[];
  readonly requests: readonly ObservedRequest[];
  /** Per persistence id, the sequence numbers stored, in storage order. */
  readonly journals: ReadonlyArray<{ readonly persistenceId: string; readonly seqNrs: readonly number[] }>;
  readonly creations: readonly ObservedCreation[];
  /** The Merchants' orders rebuilt from their journals with the real `evolve`. */
  readonly recovered: ReadonlyMap<string, ObservedOrder>;
  /**
   * The live Merchants' answers to GetOrder at the end (undefined: it did not know the order — right
   * for a finished order, which only the read model and the process's recently finished ones hold).
   */
  readonly live: ReadonlyMap<string, ObservedOrder | undefined>;
  readonly readModel: ReadonlyMap<string, ObservedOrder>;
  readonly executions: ReadonlyMap<string, ObservedExecution>;
  readonly payments: readonly ObservedPayment[];
  /** Violations the online checkers found while the seed ran. */
  readonly online: readonly Violation[];
  /** Every committed append of a seed that runs a cluster, in commit order; absent for one node. */
  readonly writes?: readonly ObservedWrite[];
}

/** One committed append, with its writer and the fence it carried. */
export interface ObservedWrite {
  readonly persistenceId: string;
  readonly fromSeqNr: number;
  readonly events: number;
  /** The process (node incarnation) that appended it. */
  readonly writer: string;
  readonly shardId: string | undefined;
  readonly epoch: number | undefined;
  /** Whether the fence held in the cluster store at the commit, asked independently of the journal. */
  readonly fenceHeld: boolean | undefined;
}

const terminal: ReadonlySet<string> = new Set(['rejected', 'executed', 'declined', 'failed']);
/** Listing every instance of a broken invariant tells no more than the first few. */
const detailsPerInvariantMax = 5;

export function checkInvariants(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [
    ...observation.online,
    ...checkQuiescence(observation),
    ...checkClients(observation),
    ...checkOneOrderPerKey(observation),
    ...checkTerminal(observation),
    ...checkLedger(observation),
    ...checkExecutions(observation),
    ...checkJournals(observation),
    ...checkViews(observation),
    ...checkWriters(observation.writes ?? []),
  ];
  return capPerInvariant(violations);
}

/**
 * Fenced ownership, from the journal's side. In a cluster every write of an entity carries its
 * shard's lease as a fence, and:
 * - `cluster.fenced-writes`: the fence held in the cluster store when the write committed — a write
 *   from an owner whose lease was taken over (a paused node) never became durable;
 * - `cluster.one-writer-per-epoch`: along an entity's sequence numbers, each epoch was written by
 *   one process, and epochs never go down — no two owners' events interleave.
 */
export function checkWriters(writes: readonly ObservedWrite[]): Violation[] {
  const violations: Violation[] = [];
  const bySequence = new Map<string, ObservedWrite[]>();
  for (const write of writes) {
    const what = `${write.persistenceId}#${write.fromSeqNr} by ${write.writer}`;
    if (write.epoch === undefined) {
      violations.push({ invariant: 'cluster.fenced-writes', detail: `${what} carried no fence` });
    } else if (write.fenceHeld === false) {
      violations.push({
        invariant: 'cluster.fenced-writes',
        detail: `${what} committed at epoch ${write.epoch} of ${write.shardId} after that lease was lost`,
      });
    }
    const list = bySequence.get(write.persistenceId);
    if (list === undefined) bySequence.set(write.persistenceId, [write]);
    else list.push(write);
  }
  for (const [persistenceId, list] of bySequence) {
    const writerOfEpoch = new Map<number, string>();
    let previous: ObservedWrite | undefined;
    for (const write of [...list].sort((a, b) => a.fromSeqNr - b.fromSeqNr)) {
      if (write.epoch === undefined) continue;
      const first = writerOfEpoch.get(write.epoch);
      if (first === undefined) writerOfEpoch.set(write.epoch, write.writer);
      else if (first !== write.writer) {
        violations.push({
          invariant: 'cluster.one-writer-per-epoch',
          detail: `${persistenceId} has events of epoch ${write.epoch} from ${first} and ${write.writer}`,
        });
      }
      if (previous?.epoch !== undefined && write.epoch < previous.epoch) {
        violations.push({
          invariant: 'cluster.one-writer-per-epoch',
          detail: `${persistenceId}#${write.fromSeqNr} (epoch ${write.epoch}, ${write.writer}) follows epoch ${previous.epoch} (${previous.writer})`,
        });
      }
      previous = write;
    }
  }
  return violations;
}

export function checkQuiescence(observation: SeedObservation): Violation[] {
  if (observation.quiescent) return [];
  return [
    {
      invariant: 'liveness.quiescent',
      detail: `not settled when the heal phase ended: ${observation.pending.slice(0, 10).join('; ')}`,
    },
  ];
}

/** How far along its lifecycle a status is: an order's answers may never go back. */
const progress: Readonly<Record<string, number>> = {
  new: 0,
  validated: 1,
  rejected: 2,
  executed: 2,
  declined: 2,
  failed: 2,
};

/**
 * Every client request got an answer, and every answer told the truth: about the key (one order per
 * key, a replay answers the same order, another body gets the key-reuse error), and for good — no
 * answer that a crash later takes back (an order answered exists, and ends as it was answered).
 */
export function checkClients(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  const creations = new Map(observation.creations.map((creation) => [creation.orderId, creation]));
  const answersOf = new Map<
    string,
    Array<{
      readonly seq: number;
      readonly status: string;
      readonly what: string;
      readonly node: number | undefined;
    }>
  >();
  for (const request of observation.requests) {
    const what = `${request.merchantId}/${request.idempotencyKey} (${request.variant})`;
    if (!request.answered) {
      violations.push({ invariant: 'client.answered', detail: `${what} never got an answer` });
    }
    const created = creations.get(request.orderId);
    for (const answer of request.answers) {
      if (answer.order !== undefined) {
        violations.push(...checkOrderAnswer(observation, request, what, answer.order, created !== undefined));
        const list = answersOf.get(answer.order.id) ?? [];
        list.push({ seq: answer.seq, status: answer.order.status, what, node: answer.node });
        answersOf.set(answer.order.id, list);
      } else if (answer.error !== undefined) {
        violations.push(...checkErrorAnswer(request, what, answer.error, created));
      }
    }
  }
  for (const [orderId, answers] of answersOf) {
    const inOrder = [...answers].sort((left, right) => left.seq - right.seq);
    for (let index = 1; index < inOrder.length; index++) {
      const before = inOrder[index - 1];
      const after = inOrder[index];
      if (before === undefined || after === undefined) continue;
      // On one node answers never go back. In a cluster an in-flight answer may trail a terminal
      // one: a request whose wait for the Merchant (on another node, over a slow or lossy link)
      // runs out is answered from the read model, which trails the journal and cannot be updated
      // while the database is unreachable; the client polls again. A terminal answer never trails
      // another, and never a different one.
      const inCluster = before.node !== undefined || after.node !== undefined;
      const backwards =
        (progress[after.status] ?? 0) < (progress[before.status] ?? 0) &&
        (!inCluster || progress[after.status] === 2);
      const otherEnd =
        progress[before.status] === 2 && progress[after.status] === 2 && before.status !== after.status;
      if (backwards || otherEnd) {
        violations.push({
          invariant: 'client.replay-same-order',
          detail: `order ${orderId} was answered ${before.status} (${before.what}), then ${after.status} (${after.what})`,
        });
      }
    }
  }
  return violations;
}

function checkOrderAnswer(
  observation: SeedObservation,
  request: ObservedRequest,
  what: string,
  order: NonNullable<ObservedAnswer['order']>,
  created: boolean,
): Violation[] {
  const violations: Violation[] = [];
  if (order.id !== request.orderId) {
    violations.push({
      invariant: 'client.same-order',
      detail: `${what} was answered about order ${order.id}, not ${request.orderId}`,
    });
  }
  if (order.requestHash !== request.requestHash) {
    violations.push({
      invariant: 'client.answer-own-body',
      detail: `${what} was answered with order ${order.id} of another body (amount ${order.amount}), not the key-reuse error`,
    });
  }
  if (!created) {
    violations.push({
      invariant: 'client.answer-exists',
      detail: `${what} was answered order ${order.id} ${order.status}, but no OrderCreated is in the journal`,
    });
    return violations;
  }
  const recovered = observation.recovered.get(order.id);
  if (recovered === undefined) return violations;
  const answeredEnd = progress[order.status] === 2;
  const holds = answeredEnd
    ? recovered.status === order.status
    : order.status !== 'validated' || (recovered.status !== 'new' && recovered.status !== 'rejected');
  if (!holds) {
    violations.push({
      invariant: 'client.answer-holds',
      detail: `${what} was answered order ${order.id} ${order.status}, but it ended ${recovered.status}`,
    });
  }
  return violations;
}

function checkErrorAnswer(
  request: ObservedRequest,
  what: string,
  error: NonNullable<ObservedAnswer['error']>,
  created: ObservedCreation | undefined,
): Violation[] {
  if (error.code === 'idempotency_key_reused') {
    if (created !== undefined && created.requestHash !== request.requestHash) return [];
    return [
      {
        invariant: 'client.key-reuse-truthful',
        detail: `${what} was told its key was used with another body, but ${created === undefined ? 'no order exists for it' : 'the order has this body'}`,
      },
    ];
  }
  if (error.status >= 500 && error.status !== 503) {
    return [
      { invariant: 'client.no-server-error', detail: `${what} was answered ${error.status} ${error.code}` },
    ];
  }
  return [];
}

/** One order id per (merchant, idempotency key), created once. */
export function checkOneOrderPerKey(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  const byKey = new Map<string, ObservedCreation[]>();
  for (const creation of observation.creations) {
    const key = `${creation.merchantId}/${creation.idempotencyKey}`;
    const list = byKey.get(key);
    if (list === undefined) byKey.set(key, [creation]);
    else list.push(creation);
    const expected = orderIdFor(creation.merchantId, creation.idempotencyKey);
    if (creation.orderId !== expected) {
      violations.push({
        invariant: 'orders.id-from-key',
        detail: `${key} created order ${creation.orderId}, expected ${expected}`,
      });
    }
  }
  for (const [key, list] of byKey) {
    if (list.length > 1) {
      violations.push({
        invariant: 'orders.one-per-key',
        detail: `${key} has ${list.length} OrderCreated events: ${list.map((creation) => creation.orderId).join(', ')}`,
      });
    }
  }
  return violations;
}

/** Every order the gateway accepted (persisted) ends terminal. */
export function checkTerminal(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  for (const creation of observation.creations) {
    const order = observation.recovered.get(creation.orderId);
    if (order === undefined) {
      violations.push({
        invariant: 'orders.recoverable',
        detail: `order ${creation.orderId} is created in the journal but not in the recovered Merchant`,
      });
    } else if (!terminal.has(order.status)) {
      violations.push({
        invariant: 'orders.terminal',
        detail: `order ${order.id} (${order.merchantId}/${order.idempotencyKey}) ended ${order.status}`,
      });
    }
  }
  return violations;
}

/**
 * The bank's ledger agrees with the Merchants: executed ⇔ charged exactly once with the same
 * merchant, amount and currency; nothing charged for anything else; declined as the bank declined;
 * failed only when the bank settled the reference as cancelled.
 */
export function checkLedger(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  const byReference = new Map<string, ObservedPayment[]>();
  for (const payment of observation.payments) {
    const list = byReference.get(payment.reference);
    if (list === undefined) byReference.set(payment.reference, [payment]);
    else list.push(payment);
  }
  for (const [reference, list] of byReference) {
    if (list.length > 1) {
      violations.push({
        invariant: 'ledger.one-record-per-reference',
        detail: `reference ${reference} has ${list.length} ledger records`,
      });
    }
  }
  for (const order of observation.recovered.values()) {
    const payment = byReference.get(order.id)?.[0];
    const what = `order ${order.id} (${order.status})`;
    switch (order.status) {
      case 'executed':
        if (payment?.status !== 'approved') {
          violations.push({
            invariant: 'ledger.executed-charged',
            detail: `${what} has bank record ${payment?.status ?? 'none'}`,
          });
        } else if (
          BigInt(payment.amount) !== order.amount ||
          payment.currency !== order.currency ||
          payment.merchantId !== order.merchantId ||
          payment.authorizationCode !== order.authorizationCode
        ) {
          violations.push({
            invariant: 'ledger.executed-same-payment',
            detail: `${what}: ${order.merchantId} ${order.amount} ${order.currency} ${order.authorizationCode} vs bank ${payment.merchantId} ${payment.amount} ${payment.currency} ${payment.authorizationCode}`,
          });
        }
        break;
      case 'declined': {
        const agrees =
          (payment?.status === 'declined' && payment.declineReason === order.reason) ||
          (payment?.status === 'cancelled' && order.reason === 'reference_cancelled');
        if (!agrees) {
          violations.push({
            invariant: 'ledger.declined-as-bank-declined',
            detail: `${what} reason ${order.reason}, bank record ${payment?.status ?? 'none'} ${payment?.declineReason ?? ''}`,
          });
        }
        break;
      }
      case 'failed':
        // Ended by its Merchant, unacknowledged at its deadline: never sent, or cancelled when an
        // ExecuteOrder still on its way reached an Executor past the deadline.
        if (order.reason === 'bank_unreachable') {
          if (payment !== undefined && payment.status !== 'cancelled') {
            violations.push({
              invariant: 'ledger.failed-not-charged',
              detail: `${what} (bank_unreachable) has bank record ${payment.status}: it must never have been sent, or cancelled`,
            });
          }
        } else if (payment?.status !== 'cancelled') {
          violations.push({
            invariant: 'ledger.failed-not-charged',
            detail: `${what} (${order.reason}) has bank record ${payment?.status ?? 'none'}: failed needs the bank's cancel`,
          });
        }
        break;
      case 'rejected':
        if (payment !== undefined) {
          violations.push({
            invariant: 'ledger.rejected-never-sent',
            detail: `${what} reached the bank: ${payment.status}`,
          });
        }
        break;
      default:
        if (payment?.status === 'approved') {
          violations.push({
            invariant: 'ledger.charged-not-executed',
            detail: `${what} is charged at the bank but not executed`,
          });
        }
    }
  }
  for (const payment of observation.payments) {
    const order = observation.recovered.get(payment.reference);
    if (order === undefined) {
      violations.push({
        invariant: 'ledger.known-reference',
        detail: `bank record ${payment.reference} (${payment.status}) is no order of the gateway`,
      });
    } else if (payment.status === 'approved' && order.status !== 'executed' && terminal.has(order.status)) {
      violations.push({
        invariant: 'ledger.charged-not-executed',
        detail: `order ${order.id} is charged at the bank but ended ${order.status}`,
      });
    }
  }
  return violations;
}

/**
 * Each validated order was executed once: exactly one ExecutionRequested (a second one means a
 * redelivered ExecuteOrder was executed again), at most one bank outcome, agreeing with the
 * Merchant's status, and confirmed back.
 */
export function checkExecutions(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  const outcomeOf: Record<string, string> = { executed: 'executed', declined: 'declined', failed: 'failed' };
  for (const [orderId, execution] of observation.executions) {
    if (execution.requested > 1) {
      violations.push({
        invariant: 'executor.executed-once',
        detail: `order ${orderId} has ${execution.requested} ExecutionRequested events`,
      });
    }
    if (execution.settled.length > execution.requested) {
      violations.push({
        invariant: 'executor.settled-once',
        detail: `order ${orderId} was settled ${execution.settled.length} times`,
      });
    }
    const order = observation.recovered.get(orderId);
    const expected = order === undefined ? undefined : outcomeOf[order.status];
    for (const kind of execution.settled) {
      if (expected !== undefined && kind !== expected) {
        violations.push({
          invariant: 'executor.same-outcome',
          detail: `order ${orderId} settled ${kind} at the Executor but is ${order?.status} at the Merchant`,
        });
      }
    }
  }
  for (const order of observation.recovered.values()) {
    if (order.status === 'rejected') {
      if (observation.executions.has(order.id)) {
        violations.push({
          invariant: 'executor.rejected-never-sent',
          detail: `rejected order ${order.id} reached an Executor`,
        });
      }
      continue;
    }
    if (!terminal.has(order.status)) continue;
    const execution = observation.executions.get(order.id);
    if (execution === undefined || execution.requested === 0) {
      // An order its Merchant ended unacknowledged never needed an Executor.
      if (order.status === 'failed' && order.reason === 'bank_unreachable') continue;
      violations.push({
        invariant: 'executor.executed-once',
        detail: `order ${order.id} is ${order.status} without an ExecutionRequested`,
      });
    } else if (observation.quiescent && execution.confirmed < execution.settled.length) {
      violations.push({
        invariant: 'executor.result-confirmed',
        detail: `order ${order.id}: the Merchant never confirmed the Executor's result`,
      });
    }
  }
  return violations;
}

/** Every journal's sequence numbers run 1, 2, 3, … without gaps or repeats. */
export function checkJournals(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  for (const journal of observation.journals) {
    const broken = journal.seqNrs.findIndex((seqNr, index) => seqNr !== index + 1);
    if (broken >= 0) {
      violations.push({
        invariant: 'journal.contiguous',
        detail: `${journal.persistenceId}: position ${broken + 1} holds seqNr ${journal.seqNrs[broken]}`,
      });
    }
  }
  return violations;
}

/**
 * The read model and the live Merchants show what the journals say. Only compared once the seed is
 * quiescent: while work is in flight the read model legitimately trails the journal.
 */
export function checkViews(observation: SeedObservation): Violation[] {
  const violations: Violation[] = [];
  if (!observation.quiescent) return violations;
  for (const order of observation.recovered.values()) {
    const row = observation.readModel.get(order.id);
    const readDiff = row === undefined ? 'missing' : differences(order, row);
    if (readDiff !== '') {
      violations.push({ invariant: 'readmodel.agrees', detail: `order ${order.id}: ${readDiff}` });
    }
    if (observation.live.size > 0) {
      const live = observation.live.get(order.id);
      // A finished order leaves the Merchant's memory (the read model has it): not knowing it is
      // right. An order in flight must be known, and whatever the Merchant says must agree.
      const liveDiff =
        live === undefined
          ? terminal.has(order.status)
            ? ''
            : 'in flight but unknown to the live Merchant'
          : differences(order, live);
      if (liveDiff !== '') {
        violations.push({
          invariant: 'merchant.live-equals-recovered',
          detail: `order ${order.id}: ${liveDiff}`,
        });
      }
    }
  }
  for (const id of observation.readModel.keys()) {
    if (!observation.recovered.has(id)) {
      violations.push({
        invariant: 'readmodel.agrees',
        detail: `read model has order ${id} no Merchant has`,
      });
    }
  }
  return violations;
}

function differences(expected: ObservedOrder, actual: ObservedOrder): string {
  const fields: Array<keyof ObservedOrder> = [
    'merchantId',
    'idempotencyKey',
    'requestHash',
    'status',
    'amount',
    'currency',
    'reason',
    'authorizationCode',
  ];
  return fields
    .filter((field) => expected[field] !== actual[field])
    .map((field) => `${field} ${String(actual[field])} (journal: ${String(expected[field])})`)
    .join(', ');
}

function capPerInvariant(violations: readonly Violation[]): Violation[] {
  const counts = new Map<string, number>();
  const kept: Violation[] = [];
  for (const violation of violations) {
    const count = (counts.get(violation.invariant) ?? 0) + 1;
    counts.set(violation.invariant, count);
    if (count <= detailsPerInvariantMax) kept.push(violation);
  }
  for (const [invariant, count] of counts) {
    if (count > detailsPerInvariantMax) {
      kept.push({ invariant, detail: `… and ${count - detailsPerInvariantMax} more like it` });
    }
  }
  return kept;
}
