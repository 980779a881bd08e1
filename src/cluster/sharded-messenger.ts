import { z } from 'zod';
import type { EntityRegistry } from '../persistence/entity-registry.js';
import type { ActorRef, ActorSystemApi } from '../runtime/actor.js';
import type { EntityAddress, Messenger } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { ShardManager } from './shard-manager.js';
import type { Transport, WireValue } from './transport.js';

export interface ShardedMessengerSettings {
  /**
   * Messages held for shards nobody owns (between a lease's loss and its takeover), over all
   * shards; when full, the oldest is dropped. At-least-once delivery above resends what matters.
   */
  readonly unownedBufferMax: number;
  /**
   * Times a message is routed on by nodes that received it after its shard moved. Bounded so two
   * nodes with crossed views cannot pass a message back and forth.
   */
  readonly forwardHopsMax: number;
}

export const defaultShardedMessengerSettings: ShardedMessengerSettings = {
  unownedBufferMax: 1_000,
  forwardHopsMax: 2,
};

export interface ShardedMessengerOptions {
  readonly shards: ShardManager;
  readonly entities: EntityRegistry;
  readonly system: ActorSystemApi;
  readonly transport: Transport;
  readonly logger: Logger;
  /** Draws this process's session: the reply addresses of its asks name it. */
  readonly random: Random;
  readonly settings?: Partial<ShardedMessengerSettings>;
}

/**
 * An `ActorRef` as it crosses the wire: the node it lives on, the session of the process that
 * made it there, and its path in that process.
 */
const refSchema = z.object({ node: z.string().min(1), session: z.string().min(1), path: z.string().min(1) });
type RefDescriptor = z.infer<typeof refSchema>;
const refKey = '$actorRef';

const frameSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('tell'),
    typeName: z.string().min(1),
    entityId: z.string().min(1),
    hops: z.number().int().min(0),
    message: z.unknown(),
  }),
  z.object({
    kind: z.literal('reply'),
    session: z.string().min(1),
    path: z.string().min(1),
    message: z.unknown(),
  }),
]);
type Frame = z.infer<typeof frameSchema>;

interface Buffered {
  readonly shardId: string;
  readonly address: EntityAddress<unknown>;
  readonly message: unknown;
}

/**
 * Sends entity messages wherever their shard lives: to this node's registry when it owns the
 * shard, in an envelope over the `Transport` when another node does, and into a bounded buffer
 * when nobody does (flushed when ownership changes). A message lost on the way is harmless:
 * everything that matters is delivered at least once above this.
 *
 * **Replies across nodes.** An `ActorRef` inside a message (an ask's `replyTo`) is encoded as
 * `{ node, path }`; the receiving node gives the entity a ref that sends the reply back over the
 * transport to that node, which hands it to the actor at that path (the ask's temporary reply
 * address). Only JSON-compatible data and bigints cross.
 *
 * **Sessions.** A restarted node keeps its node id, and its actor system numbers its asks' reply
 * paths from 1 again (`/remit/temp/ask-1`, ...), so a reply meant for an ask of the process that
 * died could reach an ask of the new one and answer it with another order. Every ref therefore
 * names the session of the process that made it (drawn at start), and a reply for another
 * session is dropped.
 */
export class ShardedMessenger implements Messenger {
  private readonly settings: ShardedMessengerSettings;
  private readonly buffer: Buffered[] = [];
  private droppedCount = 0;
  /** Names this process among every process that has run under this node id. */
  readonly session: string;

  constructor(private readonly options: ShardedMessengerOptions) {
    this.settings = { ...defaultShardedMessengerSettings, ...options.settings };
    this.session = options.random.int(0x7fffffff).toString(36);
    options.transport.onFrame((from, frame) => this.onFrame(from, frame));
    options.shards.onRoutingChanged(() => this.flush());
  }

  /** Messages dropped: buffer full, unknown peer, or a frame that did not parse. */
  get dropped(): number {
    return this.droppedCount;
  }

  tell<M>(address: EntityAddress<M>, message: M): void {
    this.route(address, message, 0);
  }

  private route(address: EntityAddress<unknown>, message: unknown, hops: number): void {
    const shardId = this.options.shards.shardOf(address);
    const owner = this.options.shards.ownerOf(shardId);
    if (owner === this.options.shards.nodeId) {
      this.options.entities.tell(address, message);
      return;
    }
    if (owner === undefined) {
      this.hold({ shardId, address, message });
      return;
    }
    const frame: Frame = {
      kind: 'tell',
      typeName: address.typeName,
      entityId: address.entityId,
      hops,
      message: this.encode(message),
    };
    if (!this.options.transport.send(owner, frame)) this.droppedCount++;
  }

  /** Asks an entity wherever it lives; its reply comes back to this node. */
  ask<M, R>(address: EntityAddress<M>, make: (replyTo: ActorRef<R>) => M, timeoutMs: number): Promise<R> {
    const target: ActorRef<M> = {
      path: `entity:${address.typeName}/${address.entityId}`,
      tell: (message) => this.tell(address, message),
    };
    return this.options.system.ask(target, make, timeoutMs);
  }

  private hold(entry: Buffered): void {
    if (this.buffer.length >= this.settings.unownedBufferMax) {
      this.buffer.shift();
      this.droppedCount++;
    }
    this.buffer.push(entry);
  }

  private flush(): void {
    const waiting = this.buffer.splice(0);
    for (const entry of waiting) {
      if (this.options.shards.ownerOf(entry.shardId) === undefined) this.buffer.push(entry);
      else this.tell(entry.address, entry.message);
    }
  }

  private onFrame(from: string, raw: WireValue): void {
    const parsed = frameSchema.safeParse(raw);
    if (!parsed.success) {
      this.droppedCount++;
      this.options.logger.warn({ from }, 'malformed cluster frame dropped');
      return;
    }
    const frame = parsed.data;
    if (frame.kind === 'reply') {
      if (frame.session !== this.session) {
        // A reply to an ask of an earlier process under this node id: its asker is gone.
        this.droppedCount++;
        return;
      }
      const target = this.options.system.lookup<unknown>(frame.path);
      // The ask may have timed out already: then the reply has nobody to go to.
      target?.tell(this.decode(frame.message));
      return;
    }
    const address: EntityAddress<unknown> = { typeName: frame.typeName, entityId: frame.entityId };
    const message = this.decode(frame.message);
    const shardId = this.options.shards.shardOf(address);
    if (this.options.shards.ownerOf(shardId) === this.options.shards.nodeId) {
      this.options.entities.tell(address, message);
    } else if (frame.hops < this.settings.forwardHopsMax) {
      // Sent on a routing view the sender held; the shard moved since: route it on from here.
      this.route(address, message, frame.hops + 1);
    } else {
      this.droppedCount++;
    }
  }

  /**
   * Replaces every ActorRef by its `{ node, path }` descriptor and leaves out object properties
   * that are `undefined` (an optional field not given, which JSON cannot carry and the receiver
   * reads as absent all the same); the rest is copied as is.
   */
  private encode(value: unknown): unknown {
    if (isActorRef(value)) {
      const remote =
        value instanceof RemoteActorRef
          ? value.descriptor
          : { node: this.options.shards.nodeId, session: this.session, path: value.path };
      return { [refKey]: remote };
    }
    if (Array.isArray(value)) return value.map((item) => this.encode(item));
    if (isPlainObject(value)) {
      return Object.fromEntries(
        Object.entries(value)
          .filter(([, item]) => item !== undefined)
          .map(([key, item]) => [key, this.encode(item)]),
      );
    }
    return value;
  }

  /** Turns every `{ node, path }` descriptor back into a ref: local by path, or one that replies over the wire. */
  private decode(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((item) => this.decode(item));
    if (!isPlainObject(value)) return value;
    if (refKey in value) {
      const descriptor = refSchema.safeParse(value[refKey]);
      if (descriptor.success) return this.refOf(descriptor.data);
    }
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, this.decode(item)]));
  }

  private refOf(descriptor: RefDescriptor): ActorRef<unknown> {
    if (descriptor.node === this.options.shards.nodeId && descriptor.session === this.session) {
      const { system } = this.options;
      return {
        path: descriptor.path,
        tell: (message) => system.lookup<unknown>(descriptor.path)?.tell(message),
      };
    }
    return new RemoteActorRef(descriptor, (message) => {
      const frame: Frame = {
        kind: 'reply',
        session: descriptor.session,
        path: descriptor.path,
        message: this.encode(message),
      };
      if (!this.options.transport.send(descriptor.node, frame)) this.droppedCount++;
    });
  }
}

/** A ref to an actor on another node: a message told to it crosses the transport. */
class RemoteActorRef implements ActorRef<unknown> {
  readonly path: string;

  constructor(
    readonly descriptor: RefDescriptor,
    private readonly send: (message: unknown) => void,
  ) {
    this.path = `remit://${descriptor.node}${descriptor.path}`;
  }

  tell(message: unknown): void {
    this.send(message);
  }
}

function isActorRef(value: unknown): value is ActorRef<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    'path' in value &&
    'tell' in value &&
    typeof value.path === 'string' &&
    typeof value.tell === 'function'
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
