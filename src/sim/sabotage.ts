import type { NodeVariants } from '../node/assemble-node.js';
import { type CreatedOrder, OrderService, type OrderView } from '../node/order-service.js';
import type { executorDefinition } from '../payments/executor.js';
import type { merchantDefinition } from '../payments/merchant.js';
import type { Messenger } from '../runtime/entity-address.js';
import type { FenceCheck } from '../store/journal.js';

/**
 * Deliberately broken variants of the real entities, built from the real definitions without
 * touching production code. They exist to prove the simulator's checkers can fail: a simulator
 * that passes a broken system proves nothing about a working one.
 */
export type Sabotage =
  | 'executor-without-deduplication'
  | 'merchant-confirms-before-durable'
  | 'api-without-replay-check'
  | 'journal-ignores-fence';

export const sabotages: readonly Sabotage[] = [
  'executor-without-deduplication',
  'merchant-confirms-before-durable',
  'api-without-replay-check',
  'journal-ignores-fence',
];

/** Sabotages of the cluster: they break nothing on one node, so they run with several. */
export const clusterSabotages: readonly Sabotage[] = ['journal-ignores-fence'];

/**
 * The fence check the seed's journal and snapshot store write under: the cluster store, or for
 * `journal-ignores-fence` one that passes every fence — the epoch check skipped, so a node that
 * lost its shard while paused still writes when it continues.
 */
export function fenceCheckFor(sabotage: Sabotage | undefined, store: FenceCheck): FenceCheck {
  return sabotage === 'journal-ignores-fence' ? { isCurrent: () => true } : store;
}

/** The node's parts a sabotage replaces (see `assembleNode`'s variants). */
export function sabotagedVariants(sabotage: Sabotage | undefined): NodeVariants {
  switch (sabotage) {
    case undefined:
    case 'journal-ignores-fence':
      return {};
    case 'executor-without-deduplication':
      return { executor: executorWithoutDeduplication };
    case 'merchant-confirms-before-durable':
      return { merchant: merchantConfirmingBeforeDurable };
    case 'api-without-replay-check':
      return {
        orderService: (parts) =>
          new OrderServiceWithoutReplayCheck(
            parts.entities,
            parts.vault,
            parts.queries,
            parts.clock,
            parts.settings,
          ),
      };
    default:
      return assertNever(sabotage);
  }
}

/**
 * The Executor without its idempotent receiver: a redelivered `ExecuteOrder` that arrives after the
 * order's result was confirmed (and the execution forgotten) is taken for a new order and executed
 * again — a second ExecutionRequested and a second authorization of the reference, which only the
 * bank's own deduplication keeps from becoming a second charge.
 */
export function executorWithoutDeduplication(
  definition: ReturnType<typeof executorDefinition>,
): ReturnType<typeof executorDefinition> {
  return { ...definition, deduplication: undefined };
}

/**
 * A Merchant that confirms the Executor's result as soon as it decides to record it, before the
 * event is durable (the classic "ack, then write" bug). If the write then fails or the node
 * crashes, the Executor has already forgotten the order: the Merchant's order stays in flight for
 * ever, although the bank may have charged it.
 */
export function merchantConfirmingBeforeDurable(
  definition: ReturnType<typeof merchantDefinition>,
  network: Messenger,
): ReturnType<typeof merchantDefinition> {
  return {
    ...definition,
    decide: (...[state, command]: Parameters<typeof definition.decide>) => {
      if (command.type === 'ProcessExecutionResult' && state.inFlight.has(command.orderId)) {
        network.tell(command.executor, { type: 'ConfirmResult', orderId: command.orderId });
      }
      return definition.decide(state, command);
    },
  };
}

/**
 * The API without its replay check: a request whose key names a known order is answered with that
 * order whatever its body — a client that reused a key for another payment is told it went through
 * (with the first payment's amount), instead of getting the key-reuse error.
 */
class OrderServiceWithoutReplayCheck extends OrderService {
  protected override async replay(
    known: OrderView,
    _requestHash: string,
    deadline: number,
  ): Promise<CreatedOrder> {
    return { order: await this.awaitTerminal(known, deadline), replayed: true };
  }
}

function assertNever(value: never): never {
  throw new Error(`unexpected: ${JSON.stringify(value)}`);
}
