import { Map as ImmutableMap, isImmutable, isOrdered, isValueObject } from 'immutable';
import { expect } from 'vitest';
import {
  defaultEntitySettings,
  type EntityDefinition,
  type EntitySettings,
  persistenceIdOf,
} from '../persistence/entity.js';
import { EntityRegistry } from '../persistence/entity-registry.js';
import { recoverState } from '../persistence/recovery.js';
import type { ActorRef, ActorSystemApi } from '../runtime/actor.js';
import type { Clock } from '../runtime/clock.js';
import { type EntityAddress, entityAddress, type Messenger } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Journal, SnapshotStore } from '../store/journal.js';

/**
 * Persistent collections (immutable.js) built by different sequences of operations hold equal
 * content in differently shaped trees; compare them by content, element by element.
 */
expect.addEqualityTesters([
  function immutableContentEquals(a: unknown, b: unknown, customTesters) {
    if (!isImmutable(a) || !isImmutable(b)) return undefined;
    if (ImmutableMap.isMap(a) !== ImmutableMap.isMap(b) || isOrdered(a) !== isOrdered(b)) return false;
    if (ImmutableMap.isMap(a) && ImmutableMap.isMap(b) && !isOrdered(a)) {
      // Unordered maps: same keys, equal values, whatever the iteration order.
      const left = a as ImmutableMap<unknown, unknown>;
      const right = b as ImmutableMap<unknown, unknown>;
      if (left.size !== right.size) return false;
      for (const [key, value] of left) {
        if (!right.has(key) || !this.equals(value, right.get(key), customTesters)) return false;
      }
      return true;
    }
    return this.equals(a.toArray(), b.toArray(), customTesters);
  },
  /**
   * Other value objects (`equals` and `hashCode`, immutable.js's protocol) say themselves what
   * equal content is: a structure whose internal layout depends on its history, rebuilt from a
   * snapshot with another layout, holds the same values.
   */
  function valueObjectEquals(a: unknown, b: unknown) {
    if (isImmutable(a) || isImmutable(b) || !isValueObject(a) || !isValueObject(b)) return undefined;
    return a.equals(b);
  },
]);

export interface EntityTestKitOptions<S, C, E extends { readonly type: string }> {
  readonly definition: EntityDefinition<S, C, E>;
  readonly system: ActorSystemApi;
  readonly journal: Journal;
  readonly snapshots?: SnapshotStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly entityId?: string;
  readonly settings?: Partial<EntitySettings>;
  readonly messenger?: Messenger;
  readonly askTimeoutMs?: number;
}

/**
 * Runs one real entity (the production runtime, journal and all) and, after every command,
 * rebuilds its state from the journal — from the latest snapshot and from scratch — and checks
 * both equal the live state. Any event that `evolve` does not fully capture, or any state change
 * made outside `evolve`, fails the test at the command that caused it.
 */
export class EntityTestKit<S, C, E extends { readonly type: string }> {
  readonly address: EntityAddress<C>;
  readonly persistenceId: string;
  readonly registry: EntityRegistry;
  private live: { state: S; seqNr: number } | undefined;
  private recoveries = 0;
  /** Side effects the entity has run, across all its incarnations. */
  sideEffectsRun = 0;

  constructor(private readonly options: EntityTestKitOptions<S, C, E>) {
    const entityId = options.entityId ?? 'test-1';
    this.address = entityAddress<C>(options.definition.typeName, entityId);
    this.persistenceId = persistenceIdOf(this.address);
    this.registry = new EntityRegistry({
      system: options.system,
      journal: options.journal,
      clock: options.clock,
      random: options.random,
      logger: silentLogger,
      ...(options.snapshots === undefined ? {} : { snapshots: options.snapshots }),
      ...(options.messenger === undefined ? {} : { messenger: options.messenger }),
      observer: {
        onRecovered: (persistenceId, state, seqNr) => {
          if (persistenceId !== this.persistenceId) return;
          this.live = { state: state as S, seqNr };
          this.recoveries++;
        },
        onDurable: (persistenceId, state, seqNr) => {
          if (persistenceId === this.persistenceId) this.live = { state: state as S, seqNr };
        },
        onSideEffect: (persistenceId) => {
          if (persistenceId === this.persistenceId) this.sideEffectsRun++;
        },
      },
    });
    this.registry.register(options.definition, options.settings);
  }

  /** Sends a command, waits for its reply, then checks recovery reproduces the live state. */
  async ask<R>(make: (replyTo: ActorRef<R>) => C): Promise<R> {
    const reply = await this.registry.ask(this.address, make, this.options.askTimeoutMs ?? 5_000);
    await this.expectRecoveryMatchesLive();
    return reply;
  }

  tell(command: C): void {
    this.registry.tell(this.address, command);
  }

  /**
   * Sends a command nobody answers (a message from another entity, a timer's), waits until `handled`
   * says its effects are visible, then checks recovery reproduces the live state.
   */
  async tellAndCheck(command: C, handled: () => boolean): Promise<S> {
    this.tell(command);
    await waitFor(handled);
    await this.expectRecoveryMatchesLive();
    return this.state;
  }

  /** The entity's durable state as the live incarnation holds it. */
  get state(): S {
    if (this.live === undefined) throw new Error('the entity has not started yet');
    return this.live.state;
  }

  get recoveryCount(): number {
    return this.recoveries;
  }

  /** Rebuilds the state from the journal, with or without the latest snapshot. */
  async rebuild(useSnapshot: boolean): Promise<S> {
    const recovered = await recoverState(
      this.options.definition,
      this.address.entityId,
      this.persistenceId,
      this.options.journal,
      this.options.snapshots,
      {
        pageSize: this.options.settings?.recoveryPageSize ?? defaultEntitySettings.recoveryPageSize,
        useSnapshot,
      },
    );
    return recovered.state;
  }

  async expectRecoveryMatchesLive(): Promise<void> {
    const live = this.state;
    expect(await this.rebuild(false)).toEqual(live);
    expect(await this.rebuild(true)).toEqual(live);
  }

  /** Stops the live incarnation and starts a new one from the journal; returns its state. */
  async restart(): Promise<S> {
    const ref = this.registry.refFor(this.address);
    const before = this.recoveries;
    this.options.system.stop(ref);
    await this.options.system.whenStopped(ref);
    this.registry.refFor(this.address);
    await waitFor(() => this.recoveries > before);
    return this.state;
  }

  /** Restarts the entity from the journal and expects the state it had before. */
  async expectRestartKeepsState(): Promise<S> {
    const before = this.state;
    const after = await this.restart();
    expect(after).toEqual(before);
    return after;
  }

  /** The events in the journal, decoded. */
  async events(): Promise<E[]> {
    const rows = await this.options.journal.read(this.persistenceId, 1);
    return rows.map((row) => this.options.definition.events.deserialize(row));
  }
}

/** Waits until `condition` holds, letting I/O and promise callbacks run; fails after `roundsMax`. */
export async function waitFor(condition: () => boolean, roundsMax = 10_000): Promise<void> {
  for (let round = 0; round < roundsMax; round++) {
    if (condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error(`condition not met after ${roundsMax} rounds`);
}
