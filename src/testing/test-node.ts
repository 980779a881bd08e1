import { classifySimulatedBankError } from '../bank/simulated-bank.js';
import { type AssembledNode, type AssembleNodeOptions, assembleNode } from '../node/assemble-node.js';
import { MemoryVaultStorage } from '../payments/card-vault.js';
import type { BankPort } from '../payments/executor-protocol.js';
import type { Clock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Journal } from '../store/journal.js';
import type { MemoryJournal } from '../store/memory/memory-journal.js';
import { JournalQueries } from './journal-queries.js';

/** The vault key of every test node: a vault made with it tokenizes as the node's does. */
export const testVaultKey = Buffer.alloc(32, 7);

export interface TestNodeOptions
  extends Partial<Omit<AssembleNodeOptions, 'stores' | 'bank' | 'clock' | 'random'>> {
  readonly clock: Clock;
  readonly random: Random;
  /** Usually the simulated bank of `bank/simulated-bank.ts`. */
  readonly bank: BankPort;
  /** The store the read model stand-in folds; the entities write to `journal` (a wrapper of it) if given. */
  readonly memory: MemoryJournal;
  readonly journal?: Journal;
  readonly stores?: Partial<AssembleNodeOptions['stores']>;
}

/**
 * The node of `assembleNode` for in-process tests: a fixed vault key over in-memory vault storage,
 * the simulated bank's error classes, no logs, and the journal folded as its read model.
 */
export function testNode(options: TestNodeOptions): AssembledNode {
  const { memory, journal, stores, ...rest } = options;
  return assembleNode({
    vaultKey: testVaultKey,
    classifyBankError: classifySimulatedBankError,
    logger: silentLogger,
    ...rest,
    stores: {
      journal: journal ?? memory,
      vault: new MemoryVaultStorage(),
      queries: new JournalQueries(memory),
      ...stores,
    },
  });
}
