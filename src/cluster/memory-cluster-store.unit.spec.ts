import { SimulatedClock } from '../runtime/clock.js';
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
