import type { Clock } from '../runtime/clock.js';
import type { EntityAddress, Messenger } from '../runtime/entity-address.js';
import type { Random } from '../runtime/random.js';
import type { NetworkFaults } from './faults.js';
import type { Trace } from './trace.js';

export interface NetworkHooks {
  /** A live node's entity is sending (before any fault): the online checkers look here. */
  onSend(address: EntityAddress<unknown>, message: unknown): void;
  /** Hands a message to the node's entities (its EntityRegistry). */
  deliver(node: number, address: EntityAddress<unknown>, message: unknown): void;
  isAlive(node: number): boolean;
}

export interface NetworkStats {
  sent: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  /** Messages that were in flight when their node crashed. */
  lostInCrash: number;
}

/**
 * The network between entities, with per-seed faults: messages dropped, duplicated, held back
 * (which reorders them against later ones) and lost in partitions. Entities on one node still talk
 * through it: it stands for the cluster the design is built for, where Merchant and Executor may
 * live on different machines. Healthy, it hands a message over at once, as EntityRegistry does.
 *
 * Everything it draws comes from its own Random, and a held-back message is delivered by the
 * simulated clock, so a seed replays exactly.
 */
export class SimNetwork {
  healed = false;
  private partitionUntil = Number.NEGATIVE_INFINITY;
  readonly stats: NetworkStats = { sent: 0, dropped: 0, duplicated: 0, delayed: 0, lostInCrash: 0 };

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly faults: NetworkFaults,
    private readonly trace: Trace,
    private readonly hooks: NetworkHooks,
  ) {}

  partition(until: number): void {
    this.partitionUntil = Math.max(this.partitionUntil, until);
  }

  /** The Messenger one node's entities send with. */
  endpoint(node: number): Messenger {
    return {
      tell: <M>(address: EntityAddress<M>, message: M): void => this.send(node, address, message),
    };
  }

  private send(node: number, address: EntityAddress<unknown>, message: unknown): void {
    // A crashed process sends nothing, however long its promise chains live on.
    if (!this.hooks.isAlive(node)) return;
    this.stats.sent++;
    this.hooks.onSend(address, message);
    const what = `${describeMessage(message)} -> ${address.typeName}-${address.entityId}`;
    if (this.healed) {
      this.hooks.deliver(node, address, message);
      return;
    }
    if (this.clock.now() < this.partitionUntil || this.random.chance(this.faults.dropRate)) {
      this.stats.dropped++;
      this.trace.record(`net drop ${what}`);
      return;
    }
    const copies = this.random.chance(this.faults.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let copy = 0; copy < copies; copy++) {
      const delayMs = this.random.chance(this.faults.delayRate)
        ? 1 + this.random.int(this.faults.delayMsMax)
        : 0;
      this.trace.record(
        `net send ${what}${copy > 0 ? ' (duplicate)' : ''}${delayMs > 0 ? ` +${delayMs} ms` : ''}`,
      );
      if (delayMs === 0) {
        this.hooks.deliver(node, address, message);
        continue;
      }
      this.stats.delayed++;
      this.clock.schedule(delayMs, () => {
        // Both ends live on this node: a crash loses what was in flight.
        if (!this.hooks.isAlive(node)) {
          this.stats.lostInCrash++;
          return;
        }
        this.trace.record(`net deliver ${what}`);
        this.hooks.deliver(node, address, message);
      });
    }
  }
}

export function describeMessage(message: unknown): string {
  if (typeof message !== 'object' || message === null) return String(message);
  const type = Reflect.get(message, 'type');
  const orderId = Reflect.get(message, 'orderId');
  const outcome = Reflect.get(message, 'outcome');
  const kind = typeof outcome === 'object' && outcome !== null ? Reflect.get(outcome, 'kind') : undefined;
  return [type, orderId, kind].filter((part) => typeof part === 'string').join(' ');
}
