import type { ExecutorServices } from '../payments/bank-calls.js';
import { type ExecutorSettings, executorDefinition } from '../payments/executor.js';
import { type MerchantSettings, merchantDefinition } from '../payments/merchant.js';
import type { OrderWaiters } from '../payments/order-waiters.js';
import type { Messenger } from '../persistence/entity.js';

/**
 * Deliberately broken variants of the real entities, built from the real definitions without
 * touching production code. They exist to prove the simulator's checkers can fail: a simulator
 * that passes a broken system proves nothing about a working one.
 */
export type Sabotage = 'executor-without-deduplication' | 'merchant-confirms-before-durable';

export const sabotages: readonly Sabotage[] = [
  'executor-without-deduplication',
  'merchant-confirms-before-durable',
];

/**
 * The Executor without its idempotent receiver: a redelivered `ExecuteOrder` that arrives after the
 * order's result was confirmed (and the execution forgotten) is taken for a new order and executed
 * again — a second ExecutionRequested and a second authorization of the reference, which only the
 * bank's own deduplication keeps from becoming a second charge.
 */
export function executorWithoutDeduplication(services: ExecutorServices, settings: ExecutorSettings) {
  return { ...executorDefinition(services, settings), deduplication: undefined };
}

/**
 * A Merchant that confirms the Executor's result as soon as it decides to record it, before the
 * event is durable (the classic "ack, then write" bug). If the write then fails or the node
 * crashes, the Executor has already forgotten the order: the Merchant's order stays in flight for
 * ever, although the bank may have charged it.
 */
export function merchantConfirmingBeforeDurable(
  waiters: OrderWaiters,
  settings: MerchantSettings,
  network: Messenger,
) {
  const definition = merchantDefinition(waiters, settings);
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
