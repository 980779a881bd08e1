import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { StoreUnavailableError } from '../store/journal.js';
import { describeClusterStoreContract } from '../testing/cluster-store-contract.js';
import { MemoryClusterStore } from './memory-cluster-store.js';

describeClusterStoreContract('memory', async (timing) => {
  const clock = new SimulatedClock();
  const store = new MemoryClusterStore(clock, timing);
  return {
    store,
    // One instance is the one database every simulated node shares.
    openNode: async () => store,
    passTime: async (ms) => {
      clock.advance(ms);
    },
    teardown: () => store.close(),
  };
});

describe('MemoryClusterStore while unavailable', () => {
  it('refuses every call as an unreachable database would, and answers again afterwards', async () => {
    const clock = new SimulatedClock();
    const store = new MemoryClusterStore(clock, { memberTimeoutMs: 500, leaseTtlMs: 400 });
    const self = await store.join({ nodeId: 'a', address: 'a:1', roles: [] });
    store.unavailable = true;
    await expect(store.heartbeat(self)).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.acquireLease('merchants/0', 'a')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.leases()).rejects.toBeInstanceOf(StoreUnavailableError);
    store.unavailable = false;
    expect(await store.heartbeat(self)).toBe(true);
  });
});
