/**
 * The entity runtime against the in-memory journal: recovery equals live state for random command
 * sequences (with and without snapshots), replies wait for durability, pipelined writes release
 * in order, a failed write restarts the entity from the journal, corruption stops recovery,
 * stash/unstash, passivation, and old event versions read through upcasters.
 *
 * Time is a SimulatedClock; waits are on conditions (`waitFor`), never on sleeps.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { entityAddress } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { replyProbe } from '../testing/decider-spec.js';
import { EntityTestKit, waitFor } from '../testing/entity-test-kit.js';
import {
  type AccountCommand,
  type AccountEvent,
  type AccountReply,
  type AccountState,
  accountDefinition,
} from '../testing/fixtures/account.js';
import { effectsFor } from './effect.js';
import type { EntityDefinition } from './entity.js';
import { EntityRegistry } from './entity-registry.js';
import { EventRegistry } from './serialization.js';

interface World {
  system: ActorSystem;
  clock: SimulatedClock;
  journal: MemoryJournal;
  snapshots: MemorySnapshotStore;
}

const worlds: World[] = [];

function world(): World {
  const clock = new SimulatedClock();
  const created: World = {
    clock,
    system: new ActorSystem({
      name: 'test',
      clock,
      random: new SeededRandom(1),
      logger: silentLogger,
      defaults: { supervision: { minBackoffMs: 10, maxBackoffMs: 100, maxRestarts: 3 } },
    }),
    journal: new MemoryJournal(),
    snapshots: new MemorySnapshotStore(),
  };
  worlds.push(created);
  return created;
}

afterEach(async () => {
  for (const { system, journal } of worlds.splice(0)) {
    await system.terminate();
    await journal.close();
  }
});

function accountKit(w: World, snapshotEveryEvents?: number) {
  return new EntityTestKit({
    definition: accountDefinition(snapshotEveryEvents === undefined ? {} : { snapshotEveryEvents }),
    system: w.system,
    journal: w.journal,
    snapshots: w.snapshots,
    clock: w.clock,
    random: new SeededRandom(2),
  });
}

type Step =
  | { readonly kind: 'deposit'; readonly amount: bigint }
  | { readonly kind: 'withdraw'; readonly amount: bigint }
  | { readonly kind: 'balance' }
  | { readonly kind: 'close' }
  | { readonly kind: 'restart' };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.bigInt({ min: -5n, max: 1000n }).map((amount) => ({ kind: 'deposit', amount }) as const),
  },
  {
    weight: 3,
    arbitrary: fc.bigInt({ min: 0n, max: 1500n }).map((amount) => ({ kind: 'withdraw', amount }) as const),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'balance' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'close' } as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' } as const) },
);

function command(s: Exclude<Step, { kind: 'restart' }>) {
  return (replyTo: import('../runtime/actor.js').ActorRef<AccountReply>): AccountCommand => {
    switch (s.kind) {
      case 'deposit':
        return { type: 'Deposit', amount: s.amount, replyTo };
      case 'withdraw':
        return { type: 'Withdraw', amount: s.amount, replyTo };
      case 'balance':
        return { type: 'GetBalance', replyTo };
      case 'close':
        return { type: 'Close', replyTo };
    }
  };
}

describe('event-sourced entity: recovery equals live state', () => {
  for (const snapshotEveryEvents of [undefined, 3]) {
    it(`holds for random command sequences (${snapshotEveryEvents ? 'snapshots every 3 events' : 'no snapshots'})`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
          const w = world();
          const kit = accountKit(w, snapshotEveryEvents);
          // A model of the account, to check the entity computes the right thing, not only a consistent one.
          let balance = 0n;
          let closed = false;
          let replies = 0;
          for (const s of steps) {
            if (s.kind === 'restart') {
              if (kit.recoveryCount === 0) continue;
              const effectsBefore = kit.sideEffectsRun;
              const recovered = await kit.restart();
              expect(recovered.balance).toBe(balance);
              // Replay ran no side effect: no reply was sent again.
              expect(kit.sideEffectsRun).toBe(effectsBefore);
              continue;
            }
            // EntityTestKit.ask rebuilds from the journal, with and without snapshot, after every command.
            const reply = await kit.ask(command(s));
            replies++;
            if (s.kind === 'deposit' && !closed && s.amount > 0n) balance += s.amount;
            if (s.kind === 'withdraw' && !closed && s.amount > 0n && s.amount <= balance) balance -= s.amount;
            if (s.kind === 'close') closed = true;
            if (reply.type !== 'Rejected') expect(reply.balance).toBe(balance);
            expect(kit.sideEffectsRun).toBe(replies);
          }
          await w.system.terminate();
          await w.journal.close();
          worlds.splice(worlds.indexOf(w), 1);
        }),
        { numRuns: 60, seed: 42 },
      );
    });
  }
});

describe('event-sourced entity: durability and pipelining', () => {
  it('sends no reply before its events are durable, and releases pipelined replies in order', async () => {
    const w = world();
    const kit = accountKit(w);
    await kit.ask((replyTo) => ({ type: 'GetBalance', replyTo }));
    w.journal.holdWrites();
    const probe = replyProbe<AccountReply>();
    for (const amount of [10n, 20n, 30n]) kit.tell({ type: 'Deposit', amount, replyTo: probe });
    kit.tell({ type: 'GetBalance', replyTo: probe });
    await waitFor(() => w.journal.pendingAppends() >= 1);
    // Let the runtime run as far as it can: the commands are decided (pipelined) but nothing is durable.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(probe.received).toEqual([]);
    expect(w.journal.eventsOf(kit.persistenceId)).toHaveLength(0);
    w.journal.releaseWrites();
    await waitFor(() => probe.received.length === 4);
    // Each reply shows the state right after its own events; the read waits behind the writes.
    expect(probe.received).toEqual([
      { type: 'Accepted', balance: 10n },
      { type: 'Accepted', balance: 30n },
      { type: 'Accepted', balance: 60n },
      { type: 'Balance', balance: 60n },
    ]);
    await kit.expectRecoveryMatchesLive();
  });

  it('decides pipelined commands against the pending state, so a rule sees earlier in-flight events', async () => {
    const w = world();
    const kit = accountKit(w);
    await kit.ask((replyTo) => ({ type: 'Deposit', amount: 50n, replyTo }));
    w.journal.holdWrites();
    const probe = replyProbe<AccountReply>();
    kit.tell({ type: 'Withdraw', amount: 40n, replyTo: probe });
    kit.tell({ type: 'Withdraw', amount: 40n, replyTo: probe });
    await waitFor(() => w.journal.pendingAppends() >= 1);
    w.journal.releaseWrites();
    await waitFor(() => probe.received.length === 2);
    expect(probe.received).toEqual([
      { type: 'Accepted', balance: 10n },
      { type: 'Rejected', reason: 'insufficient_funds' },
    ]);
  });

  it('a failed write stops the entity: no reply for it, and the new incarnation recovers from the journal', async () => {
    const w = world();
    const kit = accountKit(w);
    await kit.ask((replyTo) => ({ type: 'Deposit', amount: 5n, replyTo }));
    w.journal.holdWrites();
    const probe = replyProbe<AccountReply>();
    w.journal.failNextAppends(1);
    kit.tell({ type: 'Deposit', amount: 100n, replyTo: probe });
    kit.tell({ type: 'Deposit', amount: 1000n, replyTo: probe });
    await waitFor(() => w.journal.pendingAppends() >= 1);
    const recoveriesBefore = kit.recoveryCount;
    w.journal.releaseWrites();
    // The restart waits for the supervision backoff on the simulated clock.
    for (let i = 0; i < 20 && kit.recoveryCount === recoveriesBefore; i++) await w.clock.advanceAsync(10);
    await waitFor(() => kit.recoveryCount > recoveriesBefore);
    // Neither deposit was answered: the first failed, the second was behind it.
    expect(probe.received).toEqual([]);
    expect(kit.state.balance).toBe(5n);
    expect(await kit.ask((replyTo) => ({ type: 'Deposit', amount: 1n, replyTo }))).toEqual({
      type: 'Accepted',
      balance: 6n,
    });
    expect(w.journal.eventsOf(kit.persistenceId).map((row) => row.seqNr)).toEqual([1, 2]);
  });

  it('starts an entity again after supervision gave up on it, without waiting for a message', async () => {
    const w = world();
    const kit = new EntityTestKit({
      definition: accountDefinition(),
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: new SeededRandom(6),
      settings: { failedRestartDelayMs: 5_000 },
    });
    await kit.ask((replyTo) => ({ type: 'Deposit', amount: 3n, replyTo }));
    const ref = kit.registry.refFor(kit.address);
    let stoppedReason: string | undefined;
    void w.system.whenStopped(ref).then((reason) => {
      stoppedReason = reason.kind;
    });
    // Every write fails: each deposit crashes the entity, until supervision (3 restarts) gives up.
    const failures = w.journal.failAppendsWhere(() => true);
    for (let i = 0; i < 20 && stoppedReason === undefined; i++) {
      kit.tell({ type: 'Deposit', amount: 1n, replyTo: replyProbe<AccountReply>() });
      await w.clock.advanceAsync(200);
    }
    expect(stoppedReason).toBe('failed');
    failures.cancel();
    // No message arrives from now on; the registry alone brings the entity back.
    const recoveriesBefore = kit.recoveryCount;
    await w.clock.advanceAsync(4_000);
    expect(kit.recoveryCount).toBe(recoveriesBefore);
    await w.clock.advanceAsync(1_500);
    await waitFor(() => kit.recoveryCount > recoveriesBefore);
    expect(w.system.lookup(ref.path)).toBeDefined();
    expect(kit.state.balance).toBe(3n);
  });

  it('bounds the pipeline: past pipelineDepthMax the mailbox waits for writes to finish', async () => {
    const w = world();
    const registry = new EntityRegistry({
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: new SeededRandom(3),
      logger: silentLogger,
    });
    registry.register(accountDefinition(), { pipelineDepthMax: 2 });
    const address = entityAddress<AccountCommand>('account', 'bounded');
    await registry.ask(address, (replyTo) => ({ type: 'GetBalance', replyTo }), 1000);
    w.journal.holdWrites();
    const probe = replyProbe<AccountReply>();
    for (let i = 0; i < 5; i++) registry.tell(address, { type: 'Deposit', amount: 1n, replyTo: probe });
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(w.journal.pendingAppends()).toBe(2);
    w.journal.releaseWrites();
    await waitFor(() => probe.received.length === 5);
    expect(w.journal.eventsOf('account-bounded')).toHaveLength(5);
  });
});

describe('event-sourced entity: snapshots, corruption, upcasting', () => {
  it('snapshots every N events, prunes older ones, and recovers from the latest', async () => {
    const w = world();
    const kit = accountKit(w, 3);
    for (let i = 1; i <= 10; i++)
      await kit.ask((replyTo) => ({ type: 'Deposit', amount: BigInt(i), replyTo }));
    // Snapshots were taken at 3, 6 and 9; each new one pruned the one before.
    await waitFor(() => w.snapshots.seqNrsOf(kit.persistenceId).join() === '9');
    const recovered = await kit.restart();
    expect(recovered).toEqual({ balance: 55n, transactions: 10, closed: false });
  });

  it('stops recovery at a corrupt row with an error naming the persistence id and sequence number', async () => {
    const w = world();
    const kit = accountKit(w);
    for (let i = 0; i < 3; i++) await kit.ask((replyTo) => ({ type: 'Deposit', amount: 1n, replyTo }));
    w.journal.corrupt(kit.persistenceId, 2);
    const ref = kit.registry.refFor(kit.address);
    w.system.stop(ref);
    await w.system.whenStopped(ref);
    const fresh = kit.registry.refFor(kit.address);
    const stopped = w.system.whenStopped(fresh);
    for (let i = 0; i < 50; i++) await w.clock.advanceAsync(100);
    const reason = await stopped;
    expect(reason.kind).toBe('failed');
    if (reason.kind !== 'failed') return;
    expect(reason.error.message).toContain('account-test-1');
    expect(reason.error.message).toMatch(/sequence number 2\b/);
  });

  it('recovers an old event version through its upcaster', async () => {
    const w = world();
    w.journal.writeRaw({
      persistenceId: 'account-test-1',
      seqNr: 1,
      type: 'Deposited',
      version: 1,
      payload: '{"value":42}',
      timestamp: w.clock.now(),
    });
    const kit = accountKit(w);
    expect(await kit.ask((replyTo) => ({ type: 'GetBalance', replyTo }))).toEqual({
      type: 'Balance',
      balance: 42n,
    });
  });
});

describe('event-sourced entity: stash and passivation', () => {
  type GateCommand =
    | { readonly type: 'Open' }
    | {
        readonly type: 'Enter';
        readonly who: string;
        readonly replyTo: import('../runtime/actor.js').ActorRef<string>;
      };
  type GateEvent = { readonly type: 'Opened' } | { readonly type: 'Entered'; readonly who: string };
  const gate: EntityDefinition<{ open: boolean; inside: string[] }, GateCommand, GateEvent> = {
    typeName: 'gate',
    initialState: () => ({ open: false, inside: [] }),
    events: new EventRegistry<GateEvent>([
      { type: 'Opened', version: 1, encode: (e) => e, decode: () => ({ type: 'Opened' }) },
      {
        type: 'Entered',
        version: 1,
        encode: (e) => e,
        decode: (json) => ({ type: 'Entered', who: String((json as { who: unknown }).who) }),
      },
    ]),
    decide: (state, command) => {
      const effect = effectsFor<typeof state, GateCommand, GateEvent>();
      if (command.type === 'Open') return effect.persist({ type: 'Opened' }).thenUnstashAll();
      if (!state.open) return effect.stash();
      return effect
        .persist({ type: 'Entered', who: command.who })
        .thenReply(command.replyTo, (s) => s.inside.join(','));
    },
    evolve: (state, event) =>
      event.type === 'Opened' ? { ...state, open: true } : { ...state, inside: [...state.inside, event.who] },
  };

  it('stashes commands until a persisted event unstashes them, in their original order', async () => {
    const w = world();
    const kit = new EntityTestKit({
      definition: gate,
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: new SeededRandom(4),
    });
    const probe = replyProbe<string>();
    kit.tell({ type: 'Enter', who: 'ann', replyTo: probe });
    kit.tell({ type: 'Enter', who: 'bob', replyTo: probe });
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(probe.received).toEqual([]);
    kit.tell({ type: 'Open' });
    await waitFor(() => probe.received.length === 2);
    expect(probe.received).toEqual(['ann', 'ann,bob']);
    await kit.expectRecoveryMatchesLive();
  });

  it('passivates an idle entity; the next message brings it back with its state', async () => {
    const w = world();
    const kit = new EntityTestKit<AccountState, AccountCommand, AccountEvent>({
      definition: accountDefinition(),
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: new SeededRandom(5),
      settings: { passivateAfterMs: 60_000 },
    });
    await kit.ask((replyTo) => ({ type: 'Deposit', amount: 7n, replyTo }));
    const ref = kit.registry.refFor(kit.address);
    const stopped = w.system.whenStopped(ref);
    await w.clock.advanceAsync(59_000);
    expect(w.system.lookup(ref.path)).toBeDefined();
    await w.clock.advanceAsync(2_000);
    expect(await stopped).toEqual({ kind: 'passivated' });
    expect(await kit.ask((replyTo) => ({ type: 'GetBalance', replyTo }))).toEqual({
      type: 'Balance',
      balance: 7n,
    });
    expect(kit.recoveryCount).toBe(2);
  });
});
