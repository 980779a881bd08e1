import type { ActorRef, ActorSystemApi } from '../runtime/actor.js';
import { ActorSystemTerminatedError } from '../runtime/actor-system.js';
import type { Clock } from '../runtime/clock.js';
import type { EntityAddress, Messenger } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Journal, SnapshotStore } from '../store/journal.js';
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
export class EntityRegistry implements Messenger {
  private readonly registrations = new Map<string, Registration>();

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

  tell<M>(address: EntityAddress<M>, message: M): void {
    this.refFor(address).tell(message);
  }

  ask<M, R>(address: EntityAddress<M>, make: (replyTo: ActorRef<R>) => M, timeoutMs: number): Promise<R> {
    return this.options.system.ask(this.refFor(address), make, timeoutMs);
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
    const { system, journal, snapshots, clock, random, logger, observer } = this.options;
    const dependencies = {
      journal,
      clock,
      random,
      logger,
      messenger: this.options.messenger ?? this,
      ...(snapshots === undefined ? {} : { snapshots }),
      ...(observer === undefined ? {} : { observer }),
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
    void system.whenStopped(ref).then((reason) => {
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
        // The system is shutting down: nothing left to revive.
        if (!(spawnError instanceof ActorSystemTerminatedError)) throw spawnError;
      }
    });
  }
}
