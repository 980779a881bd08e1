import type { ActorRef, ActorSystemApi } from '../runtime/actor.js';
import { ActorSystemTerminatedError } from '../runtime/actor-system.js';
import type { Clock } from '../runtime/clock.js';
import type { EntityAddress, EntityAsker, Messenger } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Fence, Journal, SnapshotStore } from '../store/journal.js';
import {
  defaultEntitySettings,
  type EntityDefinition,
  type EntityObserver,
  type EntitySettings,
  persistenceIdOf,
} from './entity.js';
import { EntityActor, type EntitySignal } from './entity-actor.js';

export interface EntityRegistryOptions {
  readonly system: ActorSystemApi;
  readonly journal: Journal;
  readonly snapshots?: SnapshotStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /**
   * How entities send to other entities. Defaults to this registry; tests put a lossy transport
   * here, and a cluster puts its shard regions here.
   */
  readonly messenger?: Messenger;
  readonly observer?: EntityObserver;
  /** In a cluster: which entities this node may run, and the fence of each one's writes. */
  readonly ownership?: EntityOwnership;
}

/**
 * Which entities this process may run. A cluster answers from the shard leases it holds, so an
 * entity starts only on the owner of its shard and writes only under that shard's lease.
 */
export interface EntityOwnership {
  /**
   * The lease the entity's writes must carry, or `undefined` when its shard is not this node's
   * (the entity must not start here).
   */
  fenceFor(address: EntityAddress<unknown>): Fence | undefined;
}

/** A message or ask for an entity whose shard this node does not own. */
export class EntityNotOwnedError extends Error {
  override readonly name = 'EntityNotOwnedError';
  constructor(readonly persistenceId: string) {
    super(`entity ${persistenceId} belongs to a shard this node does not own`);
  }
}

interface Registration {
  readonly definition: EntityDefinition<unknown, unknown, { readonly type: string }>;
  readonly settings: EntitySettings;
}

/**
 * Starts entities on demand, by address: the first message to `(type, id)` spawns it (which
 * recovers it from the journal); a passivated or failed entity is simply spawned again by the next
 * message. At most one incarnation per address runs in this process, because the actor name is
 * derived from the address.
 */
export class EntityRegistry implements Messenger, EntityAsker {
  private readonly registrations = new Map<string, Registration>();
  /** Running entities by persistence id, so the ones of a shard can be stopped together. */
  private readonly running = new Map<string, { address: EntityAddress<unknown>; ref: ActorRef<unknown> }>();

  constructor(private readonly options: EntityRegistryOptions) {}

  register<S, C, E extends { readonly type: string }>(
    definition: EntityDefinition<S, C, E>,
    settings: Partial<EntitySettings> = {},
  ): void {
    if (this.registrations.has(definition.typeName)) {
      throw new Error(`entity type ${definition.typeName} is registered twice`);
    }
    this.registrations.set(definition.typeName, {
      definition: definition as unknown as Registration['definition'],
      settings: { ...defaultEntitySettings, ...settings },
    });
  }

  /** Drops the message (with a log line) when the entity's shard is not this node's. */
  tell<M>(address: EntityAddress<M>, message: M): void {
    let ref: ActorRef<M>;
    try {
      ref = this.refFor(address);
    } catch (error) {
      if (!(error instanceof EntityNotOwnedError)) throw error;
      // At-least-once delivery above resends it to whichever node owns the shard then.
      this.options.logger.debug(
        { persistenceId: error.persistenceId },
        'message for an entity not owned here dropped',
      );
      return;
    }
    ref.tell(message);
  }

  ask<M, R>(address: EntityAddress<M>, make: (replyTo: ActorRef<R>) => M, timeoutMs: number): Promise<R> {
    let ref: ActorRef<M>;
    try {
      ref = this.refFor(address);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.options.system.ask(ref, make, timeoutMs);
  }

  /**
   * Stops every running entity `select` picks (a shard about to be handed over or lost) and
   * resolves once they have stopped: each finishes its current message first.
   */
  async stopWhere(select: (address: EntityAddress<unknown>) => boolean): Promise<void> {
    const stopping: Promise<unknown>[] = [];
    for (const { address, ref } of this.running.values()) {
      if (!select(address)) continue;
      this.options.system.stop(ref);
      stopping.push(this.options.system.whenStopped(ref));
    }
    await Promise.all(stopping);
  }

  /** The addresses of the entities running in this process. */
  runningAddresses(): EntityAddress<unknown>[] {
    return [...this.running.values()].map((entry) => entry.address);
  }

  /** The live incarnation's ref, spawning (and so recovering) the entity if none runs. */
  refFor<M>(address: EntityAddress<M>): ActorRef<M> {
    const name = persistenceIdOf(address);
    const path = `/${this.options.system.name}/${name}`;
    const live = this.options.system.lookup<M>(path);
    if (live !== undefined) return live;
    return this.spawn(address, name) as ActorRef<M>;
  }

  private spawn(address: EntityAddress<unknown>, name: string): ActorRef<unknown> {
    const registration = this.registrations.get(address.typeName);
    if (registration === undefined) throw new Error(`no entity type ${address.typeName} is registered`);
    const { definition, settings } = registration;
    const { system, journal, snapshots, clock, random, logger, observer, ownership } = this.options;
    const fence = ownership?.fenceFor(address);
    if (ownership !== undefined && fence === undefined) throw new EntityNotOwnedError(name);
    const dependencies = {
      journal,
      clock,
      random,
      logger,
      messenger: this.options.messenger ?? this,
      ...(snapshots === undefined ? {} : { snapshots }),
      ...(observer === undefined ? {} : { observer }),
      ...(fence === undefined ? {} : { fence }),
    };
    const ref = system.spawn<unknown | EntitySignal>(
      name,
      (context) => new EntityActor(definition, address.entityId, name, context, dependencies, settings),
      {
        ...(settings.passivateAfterMs === undefined ? {} : { passivateAfterMs: settings.passivateAfterMs }),
        ...(settings.mailboxCapacity === undefined ? {} : { mailboxCapacity: settings.mailboxCapacity }),
        ...(settings.stashCapacity === undefined ? {} : { stashCapacity: settings.stashCapacity }),
      },
    );
    this.running.set(name, { address, ref });
    void system.whenStopped(ref).then((reason) => {
      if (this.running.get(name)?.ref === ref) this.running.delete(name);
      if (reason.kind === 'failed') this.reviveLater(address, settings.failedRestartDelayMs, reason.error);
    });
    return ref;
  }

  /**
   * An entity that supervision gave up on may still own work nobody else will ask about — bank
   * calls to settle, deliveries to resend. Only the journal can say, so it is started again (and
   * recovers) after a pause, for as long as it keeps failing: a store that is down for a while, or
   * a corrupt row, shows as a failure logged every `failedRestartDelayMs`, never as silence.
   */
  private reviveLater(address: EntityAddress<unknown>, delayMs: number, error: Error): void {
    const name = persistenceIdOf(address);
    this.options.logger.error(
      { persistenceId: name, error: error.message, retryInMs: delayMs },
      'entity stopped after repeated failures; it will be started again',
    );
    this.options.clock.schedule(delayMs, () => {
      try {
        this.refFor(address);
      } catch (spawnError) {
        // The system is shutting down, or the shard is another node's now: nothing to revive here.
        if (spawnError instanceof EntityNotOwnedError) return;
        if (!(spawnError instanceof ActorSystemTerminatedError)) throw spawnError;
      }
    });
  }
}
