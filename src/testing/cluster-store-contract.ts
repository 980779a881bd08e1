import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ClusterStore, ClusterStoreTiming, Member } from '../cluster/cluster-store.js';

/** What a backend hands the contract suite: a fresh, empty database of the cluster's tables. */
export interface ClusterStoreContractFixture {
  /** The first node's handle on the database. */
  readonly store: ClusterStore;
  /**
   * Another node's handle on the same database (its own connections where the backend has any), for
   * races. Closed by `teardown`.
   */
  openNode(): Promise<ClusterStore>;
  /**
   * Lets `ms` of the store's time pass. In memory it advances the injected clock; in PostgreSQL,
   * whose `now()` a test cannot move, it moves every stored time `ms` into the past, which every
   * judgment of age and expiry sees the same way.
   */
  passTime(ms: number): Promise<void>;
  teardown(): Promise<void>;
}

/** Long enough that the real time a test takes (PostgreSQL) never decides an outcome. */
export const contractTiming: ClusterStoreTiming = { memberTimeoutMs: 5_000, leaseTtlMs: 4_000 };

/** A margin of store time that no test's own run time comes near. */
const marginMs = 1_000;

const nodeA = { nodeId: 'node-a', address: '10.0.0.1:7100', roles: ['bank-a'] };
const nodeB = { nodeId: 'node-b', address: '10.0.0.2:7100', roles: [] };

/**
 * The behaviour every cluster store must show, whatever it is built on: membership judged by the
 * store's clock, leases whose epoch rises on every take, renewal by the owner only, takeover only
 * after expiry or release, one winner of every race. A backend joins with one line:
 * `describeClusterStoreContract('postgres', async (timing) => ({ ... }))`.
 */
export function describeClusterStoreContract(
  name: string,
  setup: (timing: ClusterStoreTiming) => Promise<ClusterStoreContractFixture>,
): void {
  describe(`cluster store contract: ${name}`, () => {
    let fixture: ClusterStoreContractFixture;
    let store: ClusterStore;

    beforeEach(async () => {
      fixture = await setup(contractTiming);
      store = fixture.store;
    });

    afterEach(async () => {
      vi.useRealTimers();
      await fixture.teardown();
    });

    const memberOf = async (nodeId: string): Promise<Member | undefined> =>
      (await store.members()).members.find((member) => member.nodeId === nodeId);

    describe('membership', () => {
      it('joins with incarnation 1, then one more on every join, and lists members up, by node id', async () => {
        expect(await store.join(nodeB)).toEqual({ nodeId: 'node-b', incarnation: 1 });
        expect(await store.join(nodeA)).toEqual({ nodeId: 'node-a', incarnation: 1 });
        expect(await store.join({ ...nodeA, address: '10.0.0.9:7100' })).toEqual({
          nodeId: 'node-a',
          incarnation: 2,
        });
        const view = await store.members();
        expect(view.members.map(({ heartbeatAgeMs: _age, ...member }) => member)).toEqual([
          { ...nodeA, address: '10.0.0.9:7100', incarnation: 2, state: 'up' },
          { ...nodeB, incarnation: 1, state: 'up' },
        ]);
        for (const member of view.members) expect(member.heartbeatAgeMs).toBeLessThan(marginMs);
      });

      it('lists no member of an empty cluster, with the store time', async () => {
        const view = await store.members();
        expect(view.members).toEqual([]);
        expect(Number.isSafeInteger(view.now)).toBe(true);
      });

      it('keeps a heartbeating member up and declares a silent one down after memberTimeoutMs', async () => {
        const a = await store.join(nodeA);
        const b = await store.join(nodeB);
        for (let beat = 0; beat < 4; beat++) {
          await fixture.passTime(contractTiming.memberTimeoutMs - marginMs);
          expect(await store.heartbeat(a)).toBe(true);
        }
        expect((await memberOf('node-a'))?.state).toBe('up');
        expect((await memberOf('node-b'))?.state).toBe('down');
        expect((await memberOf('node-b'))?.heartbeatAgeMs).toBeGreaterThan(contractTiming.memberTimeoutMs);
        // A member declared down cannot come back by heartbeating: it must join again.
        expect(await store.heartbeat(b)).toBe(false);
        expect((await memberOf('node-b'))?.state).toBe('down');
        expect(await store.join(nodeB)).toEqual({ nodeId: 'node-b', incarnation: 2 });
        expect((await memberOf('node-b'))?.state).toBe('up');
      });

      it('refuses the heartbeat of a replaced incarnation, and of an unknown node', async () => {
        const first = await store.join(nodeA);
        const second = await store.join(nodeA);
        expect(await store.heartbeat(first)).toBe(false);
        expect(await store.heartbeat(second)).toBe(true);
        expect(await store.heartbeat({ nodeId: 'node-z', incarnation: 1 })).toBe(false);
        expect(await store.leave(first)).toBe(false);
        expect((await memberOf('node-a'))?.state).toBe('up');
      });

      it('marks a leaving member leaving while it heartbeats, and down once it stops', async () => {
        const a = await store.join(nodeA);
        expect(await store.leave(a)).toBe(true);
        await fixture.passTime(contractTiming.memberTimeoutMs - marginMs);
        expect(await store.heartbeat(a)).toBe(true);
        expect((await memberOf('node-a'))?.state).toBe('leaving');
        await fixture.passTime(contractTiming.memberTimeoutMs + marginMs);
        expect((await memberOf('node-a'))?.state).toBe('down');
      });
    });

    describe('leases', () => {
      it('grants a new shard at epoch 1 for leaseTtlMs of store time, and lists it', async () => {
        const lease = await store.acquireLease('orders/7', 'node-a');
        expect(lease).toMatchObject({ shardId: 'orders/7', owner: 'node-a', epoch: 1 });
        const view = await store.leases();
        expect(lease?.expiresAt).toBeGreaterThan(view.now + contractTiming.leaseTtlMs - marginMs);
        expect(lease?.expiresAt).toBeLessThanOrEqual(view.now + contractTiming.leaseTtlMs);
        expect(view.leases).toEqual([
          { shardId: 'orders/7', owner: 'node-a', epoch: 1, expiresAt: lease?.expiresAt, acquirable: false },
        ]);
      });

      it('refuses a takeover before expiry and allows it after, raising the epoch on every takeover', async () => {
        expect((await store.acquireLease('orders/1', 'node-a'))?.epoch).toBe(1);
        await fixture.passTime(contractTiming.leaseTtlMs - marginMs);
        expect(await store.acquireLease('orders/1', 'node-b')).toBeUndefined();
        await fixture.passTime(marginMs);
        expect((await store.leases()).leases[0]?.acquirable).toBe(true);
        expect((await store.acquireLease('orders/1', 'node-b'))?.epoch).toBe(2);
        expect(await store.acquireLease('orders/1', 'node-a')).toBeUndefined();
        await fixture.passTime(contractTiming.leaseTtlMs);
        expect((await store.acquireLease('orders/1', 'node-a'))?.epoch).toBe(3);
        expect((await store.leases()).leases).toMatchObject([
          { shardId: 'orders/1', owner: 'node-a', epoch: 3 },
        ]);
      });

      it('raises the epoch when the owner takes its own lease again, which makes the old epoch stale', async () => {
        const first = await store.acquireLease('orders/2', 'node-a');
        const second = await store.acquireLease('orders/2', 'node-a');
        expect(second?.epoch).toBe(2);
        if (first === undefined) expect.fail('the first acquire failed');
        expect(await store.renewLease(first)).toBeUndefined();
        expect(await store.releaseLease(first)).toBe(false);
      });

      it('renews for the owner at its epoch only, keeping the epoch, and never after expiry', async () => {
        const lease = await store.acquireLease('orders/3', 'node-a');
        if (lease === undefined) expect.fail('acquire failed');
        await fixture.passTime(contractTiming.leaseTtlMs - marginMs);
        const renewed = await store.renewLease(lease);
        expect(renewed).toMatchObject({ shardId: 'orders/3', owner: 'node-a', epoch: 1 });
        expect(renewed?.expiresAt).toBeGreaterThan(lease.expiresAt);
        expect(await store.renewLease({ ...lease, owner: 'node-b' })).toBeUndefined();
        expect(await store.renewLease({ ...lease, epoch: 2 })).toBeUndefined();
        // Renewed, it outlives its first term: no one may take it when that term would have ended.
        await fixture.passTime(marginMs + 1);
        expect(await store.acquireLease('orders/3', 'node-b')).toBeUndefined();
        // Expired, it cannot be renewed, even though no one has taken it.
        await fixture.passTime(contractTiming.leaseTtlMs);
        expect(await store.renewLease(lease)).toBeUndefined();
        expect((await store.leases()).leases).toMatchObject([
          { owner: 'node-a', epoch: 1, acquirable: true },
        ]);
      });

      it('takes many shards at once: the free, released, expired and its own ones, never another’s', async () => {
        const others = await store.acquireLease('orders/20', 'node-b');
        const own = await store.acquireLease('orders/21', 'node-a');
        const released = await store.acquireLease('orders/22', 'node-b');
        if (others === undefined || own === undefined || released === undefined)
          expect.fail('acquire failed');
        expect(await store.releaseLease(released)).toBe(true);
        const grants = await store.acquireLeases(
          ['orders/20', 'orders/21', 'orders/22', 'orders/23', 'orders/23'],
          'node-a',
        );
        expect(new Map(grants.map((grant) => [grant.shardId, grant.epoch]))).toEqual(
          new Map([
            ['orders/21', 2],
            ['orders/22', 2],
            ['orders/23', 1],
          ]),
        );
        expect(grants.every((grant) => grant.owner === 'node-a')).toBe(true);
        expect(await store.acquireLeases([], 'node-a')).toEqual([]);
        // Once node-b's lease expired, it is taken too, at a raised epoch.
        await fixture.passTime(contractTiming.leaseTtlMs + 1);
        expect(await store.acquireLeases(['orders/20'], 'node-a')).toMatchObject([
          { shardId: 'orders/20', epoch: 2 },
        ]);
      });

      it('renews many leases of one owner at once: those it holds at their epoch and unexpired only', async () => {
        const held = await Promise.all(
          ['orders/10', 'orders/11', 'orders/12', 'orders/13'].map((shardId) =>
            store.acquireLease(shardId, 'node-a'),
          ),
        );
        const [kept, taken, stale, released] = held;
        if (kept === undefined || taken === undefined || stale === undefined || released === undefined)
          expect.fail('acquire failed');
        await fixture.passTime(contractTiming.leaseTtlMs - marginMs);
        expect(await store.renewLease(taken)).toBeDefined();
        const again = await store.acquireLease(stale.shardId, 'node-a');
        expect(await store.releaseLease(released)).toBe(true);
        expect(await store.renewLeases('node-a', [])).toEqual([]);

        const renewed = await store.renewLeases('node-a', [kept, taken, stale, released]);
        expect(renewed.map((grant) => grant.shardId).sort()).toEqual(['orders/10', 'orders/11']);
        for (const grant of renewed) {
          expect(grant).toMatchObject({ owner: 'node-a', epoch: 1 });
          expect(grant.expiresAt).toBeGreaterThan(kept.expiresAt);
        }
        // The stale epoch's lease did not move; the renewed ones outlive their first term.
        const view = await store.leases();
        expect(view.leases.find((lease) => lease.shardId === stale.shardId)).toMatchObject({
          epoch: 2,
          expiresAt: again?.expiresAt,
        });
        await fixture.passTime(marginMs + 1);
        expect(await store.acquireLease('orders/10', 'node-b')).toBeUndefined();
        // Expired, none is renewed.
        await fixture.passTime(contractTiming.leaseTtlMs);
        expect(await store.renewLeases('node-a', [kept, taken])).toEqual([]);
      });

      it('releases for the owner only; a released lease is free at once and its epoch rises when taken', async () => {
        const lease = await store.acquireLease('orders/4', 'node-a');
        if (lease === undefined) expect.fail('acquire failed');
        expect(await store.releaseLease({ ...lease, owner: 'node-b' })).toBe(false);
        expect(await store.acquireLease('orders/4', 'node-b')).toBeUndefined();
        expect(await store.releaseLease(lease)).toBe(true);
        expect((await store.leases()).leases).toMatchObject([
          { shardId: 'orders/4', owner: undefined, epoch: 1, acquirable: true },
        ]);
        expect(await store.renewLease(lease)).toBeUndefined();
        expect((await store.acquireLease('orders/4', 'node-b'))?.epoch).toBe(2);
      });

      it('lets exactly one of two nodes racing for a shard win, new or expired', async () => {
        const other = await fixture.openNode();
        const shards = Array.from({ length: 20 }, (_, index) => `orders/${index}`);
        const race = () =>
          Promise.all(
            shards.map(async (shardId) => {
              const [a, b] = await Promise.all([
                store.acquireLease(shardId, 'node-a'),
                other.acquireLease(shardId, 'node-b'),
              ]);
              return [a, b].filter((grant) => grant !== undefined);
            }),
          );
        for (const winners of await race()) expect(winners.map((grant) => grant.epoch)).toEqual([1]);
        await fixture.passTime(contractTiming.leaseTtlMs + marginMs);
        for (const winners of await race()) expect(winners.map((grant) => grant.epoch)).toEqual([2]);
        const owners = new Map((await store.leases()).leases.map((lease) => [lease.shardId, lease.owner]));
        for (const shardId of shards) expect(['node-a', 'node-b']).toContain(owners.get(shardId));
      });
    });

    describe('time', () => {
      it("judges by the store's clock: a node clock hours ahead or behind changes nothing", async () => {
        const a = await store.join(nodeA);
        const lease = await store.acquireLease('orders/5', 'node-a');
        for (const skewMs of [3_600_000, -3_600_000]) {
          vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + skewMs });
          expect(await store.heartbeat(a)).toBe(true);
          expect((await memberOf('node-a'))?.state).toBe('up');
          expect(await store.acquireLease('orders/5', 'node-b')).toBeUndefined();
          expect((await store.leases()).leases).toMatchObject([
            { owner: 'node-a', epoch: 1, acquirable: false },
          ]);
          if (lease === undefined) expect.fail('acquire failed');
          expect(await store.renewLease(lease)).toMatchObject({ epoch: 1 });
          vi.useRealTimers();
        }
      });
    });
  });
}
