/**
 * At-least-once delivery plus idempotent receiving = effectively-once processing, shown over a
 * transport that loses half the messages and duplicates a fifth: every parcel is confirmed, the
 * recipient processes each delivery id exactly once, a producer restarted mid-way resends what
 * was unconfirmed, and a recipient restarted mid-way keeps its deduplication (from the store).
 *
 * Everything runs on a SimulatedClock and a SeededRandom, so a run is the same every time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { persistenceIdOf } from '../persistence/entity.js';
import { EntityRegistry } from '../persistence/entity-registry.js';
import { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { type EntityAddress, entityAddress, type Messenger } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import { type Random, SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { waitFor } from '../testing/entity-test-kit.js';
import {
  type Parcel,
  recipientAddress,
  recipientDefinition,
  type SenderCommand,
  type SenderState,
  type SendReply,
  senderDefinition,
} from '../testing/fixtures/courier.js';

/** Loses and duplicates messages between entities, like a real network under stress. */
class LossyTransport implements Messenger {
  target: Messenger | undefined;
  sent = 0;
  dropped = 0;
  duplicated = 0;
  blackhole = false;

  constructor(
    private readonly random: Random,
    private readonly dropRate: number,
    private readonly duplicateRate: number,
  ) {}

  tell<M>(address: EntityAddress<M>, message: M): void {
    this.sent++;
    if (this.blackhole || this.random.chance(this.dropRate)) {
      this.dropped++;
      return;
    }
    this.target?.tell(address, message);
    if (this.random.chance(this.duplicateRate)) {
      this.duplicated++;
      this.target?.tell(address, message);
    }
  }
}

interface Setup {
  clock: SimulatedClock;
  system: ActorSystem;
  journal: MemoryJournal;
  registry: EntityRegistry;
  transport: LossyTransport;
  sender: EntityAddress<SenderCommand>;
  senderState: () => SenderState | undefined;
}

const running: Setup[] = [];

afterEach(async () => {
  for (const setup of running.splice(0)) {
    await setup.system.terminate();
    await setup.journal.close();
  }
});

function setup(options: {
  dropRate: number;
  duplicateRate: number;
  unconfirmedMax?: number;
  seed?: number;
}): Setup {
  const clock = new SimulatedClock();
  const random = new SeededRandom(options.seed ?? 7);
  const system = new ActorSystem({ name: 'delivery', clock, random: random.fork(), logger: silentLogger });
  const journal = new MemoryJournal();
  const transport = new LossyTransport(random.fork(), options.dropRate, options.duplicateRate);
  let senderState: SenderState | undefined;
  const registry = new EntityRegistry({
    system,
    journal,
    clock,
    random: random.fork(),
    logger: silentLogger,
    messenger: transport,
    observer: {
      onRecovered: (persistenceId, state) => {
        if (persistenceId === 'sender-s1') senderState = state as SenderState;
      },
      onDurable: (persistenceId, state) => {
        if (persistenceId === 'sender-s1') senderState = state as SenderState;
      },
    },
  });
  transport.target = registry;
  registry.register(
    senderDefinition({
      unconfirmedMax: options.unconfirmedMax ?? 10_000,
      redeliverIntervalMs: 1_000,
      backoff: { minBackoffMs: 1_000, maxBackoffMs: 8_000, randomFactor: 0.2 },
    }),
  );
  registry.register(recipientDefinition({ retentionMs: 24 * 3_600_000, cleanupIntervalMs: 3_600_000 }));
  const result: Setup = {
    clock,
    system,
    journal,
    registry,
    transport,
    sender: entityAddress<SenderCommand>('sender', 's1'),
    senderState: () => senderState,
  };
  running.push(result);
  return result;
}

async function send(s: Setup, deliveryId: string): Promise<SendReply> {
  return s.registry.ask<SenderCommand, SendReply>(
    s.sender,
    (replyTo) => ({ type: 'Send', deliveryId, content: `content of ${deliveryId}`, replyTo }),
    5_000,
  );
}

/** Advances simulated time until the sender's outbox is empty, or fails after `msMax`. */
async function untilAllConfirmed(s: Setup, msMax = 600_000): Promise<void> {
  for (let elapsed = 0; elapsed < msMax; elapsed += 500) {
    if (s.senderState()?.outbox.size === 0) return;
    await s.clock.advanceAsync(500);
  }
  throw new Error(`still unconfirmed after ${msMax} ms: ${s.senderState()?.outbox.size}`);
}

function processedIds(s: Setup): string[] {
  return s.journal
    .eventsOf(persistenceIdOf(recipientAddress))
    .map((row) => (JSON.parse(row.payload) as { deliveryId: string }).deliveryId);
}

describe('at-least-once delivery with an idempotent receiver', () => {
  it('over a transport that drops half and duplicates a fifth, every parcel is confirmed and processed once', async () => {
    const s = setup({ dropRate: 0.5, duplicateRate: 0.2 });
    const ids = Array.from({ length: 200 }, (_, i) => `parcel-${i}`);
    for (const id of ids) expect(await send(s, id)).toEqual({ type: 'Queued' });
    await untilAllConfirmed(s);
    const processed = processedIds(s);
    expect(processed).toHaveLength(ids.length);
    expect(new Set(processed)).toEqual(new Set(ids));
    expect(s.senderState()?.confirmed).toBe(ids.length);
    // The transport really was hostile, and redelivery really happened.
    expect(s.transport.dropped).toBeGreaterThan(150);
    expect(s.transport.duplicated).toBeGreaterThan(20);
    expect(s.transport.sent).toBeGreaterThan(2 * ids.length);
  });

  it('a producer restarted mid-way resends every unconfirmed delivery after recovery', async () => {
    const s = setup({ dropRate: 0, duplicateRate: 0 });
    s.transport.blackhole = true;
    for (let i = 0; i < 20; i++) await send(s, `p-${i}`);
    expect(s.senderState()?.outbox.size).toBe(20);
    // Kill the producer while nothing is confirmed, then heal the network.
    const ref = s.registry.refFor(s.sender);
    s.system.stop(ref);
    await s.system.whenStopped(ref);
    s.transport.blackhole = false;
    const sentBefore = s.transport.sent;
    s.registry.refFor(s.sender);
    // Recovery alone — no timer, no new command — resends all 20 at once.
    await waitFor(() => s.transport.sent - sentBefore >= 20);
    await untilAllConfirmed(s);
    expect(processedIds(s)).toHaveLength(20);
  });

  it('a recipient restarted mid-way still refuses to process a duplicate (deduplication is durable)', async () => {
    const s = setup({ dropRate: 0, duplicateRate: 0 });
    for (let i = 0; i < 10; i++) await send(s, `d-${i}`);
    await untilAllConfirmed(s);
    const recipient = s.registry.refFor(recipientAddress);
    s.system.stop(recipient);
    await s.system.whenStopped(recipient);
    // Replay the same parcels, as a producer that lost its confirmations would.
    const from = entityAddress<SenderCommand>('sender', 's1');
    for (let i = 0; i < 10; i++) {
      const parcel: Parcel = { type: 'Parcel', deliveryId: `d-${i}`, content: `content of d-${i}`, from };
      s.registry.tell(recipientAddress, parcel);
    }
    const confirmationsBefore = s.transport.sent;
    await waitFor(() => s.transport.sent - confirmationsBefore >= 10);
    expect(processedIds(s)).toHaveLength(10);
    expect(await s.journal.isProcessed(persistenceIdOf(recipientAddress), { id: 'd-3', time: 0 })).toBe(true);
  });

  it('a duplicate that arrives while the first copy is still being written is not processed again', async () => {
    const s = setup({ dropRate: 0, duplicateRate: 0 });
    const from = entityAddress<SenderCommand>('sender', 's1');
    const parcel: Parcel = { type: 'Parcel', deliveryId: 'twin', content: 'twin', from };
    // Start the recipient, then hold the journal so the first copy's write stays in flight.
    s.registry.refFor(recipientAddress);
    await waitFor(() => s.system.lookup('/delivery/recipient-r1') !== undefined);
    s.journal.holdWrites();
    s.registry.tell(recipientAddress, parcel);
    s.registry.tell(recipientAddress, parcel);
    await waitFor(() => s.journal.pendingAppends() === 1);
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    // Neither copy is confirmed before the write is durable.
    expect(s.transport.sent).toBe(0);
    s.journal.releaseWrites();
    await waitFor(() => s.transport.sent === 2);
    expect(processedIds(s)).toEqual(['twin']);
  });

  it('expires processed-message records after the retention window, on the cleanup timer', async () => {
    const s = setup({ dropRate: 0, duplicateRate: 0 });
    await send(s, 'old');
    await untilAllConfirmed(s);
    const receiverId = persistenceIdOf(recipientAddress);
    expect(await s.journal.isProcessed(receiverId, { id: 'old', time: 0 })).toBe(true);
    await s.clock.advanceAsync(23 * 3_600_000);
    expect(await s.journal.isProcessed(receiverId, { id: 'old', time: 0 })).toBe(true);
    await s.clock.advanceAsync(2 * 3_600_000);
    expect(await s.journal.isProcessed(receiverId, { id: 'old', time: 0 })).toBe(false);
  });

  it('a producer with unconfirmed deliveries does not passivate, so redelivery goes on', async () => {
    const s = setup({ dropRate: 0, duplicateRate: 0 });
    const system = s.system;
    const registry = new EntityRegistry({
      system,
      journal: s.journal,
      clock: s.clock,
      random: new SeededRandom(11),
      logger: silentLogger,
      messenger: s.transport,
    });
    registry.register(
      senderDefinition({
        unconfirmedMax: 10,
        redeliverIntervalMs: 1_000,
        backoff: { minBackoffMs: 1_000, maxBackoffMs: 1_000, randomFactor: 0 },
      }),
      { passivateAfterMs: 5_000 },
    );
    const sender = entityAddress<SenderCommand>('sender', 'lazy');
    s.transport.blackhole = true;
    await registry.ask<SenderCommand, SendReply>(
      sender,
      (replyTo) => ({ type: 'Send', deliveryId: 'x-1', content: 'x', replyTo }),
      5_000,
    );
    const ref = registry.refFor(sender);
    await s.clock.advanceAsync(60_000);
    // Still alive and still resending, long after the idle time.
    expect(system.lookup(ref.path)).toBeDefined();
    expect(s.transport.sent).toBeGreaterThan(30);
  });

  it('refuses new work when the unconfirmed bound is reached', async () => {
    const s = setup({ dropRate: 0, duplicateRate: 0, unconfirmedMax: 5 });
    s.transport.blackhole = true;
    for (let i = 0; i < 5; i++) expect(await send(s, `b-${i}`)).toEqual({ type: 'Queued' });
    expect(await send(s, 'b-5')).toEqual({ type: 'Refused', reason: 'outbox_full' });
    s.transport.blackhole = false;
    await untilAllConfirmed(s);
    expect(await send(s, 'b-5')).toEqual({ type: 'Queued' });
  });
});
