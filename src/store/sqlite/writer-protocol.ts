import type { AppendRequest } from '../journal.js';
import type { BatchResult, SnapshotRow, VaultRow } from './store-writes.js';

/** What the writer thread is asked to do, in order. Each op is answered once, by its id. */
export type WriteOp =
  | { readonly kind: 'append'; readonly batch: readonly AppendRequest[] }
  | { readonly kind: 'saveSnapshot'; readonly row: SnapshotRow }
  | { readonly kind: 'deleteSnapshots'; readonly persistenceId: string; readonly beforeSeqNr: number }
  | { readonly kind: 'purgeProcessed'; readonly receiverId: string; readonly beforeTimestamp: number }
  | { readonly kind: 'vault'; readonly path: string; readonly rows: readonly VaultRow[] };

/** What each op answers. */
export interface WriteResults {
  readonly append: BatchResult;
  readonly saveSnapshot: undefined;
  readonly deleteSnapshots: undefined;
  readonly purgeProcessed: number;
  readonly vault: undefined;
}

export interface WriterSettings {
  /** The journal file (already created and migrated by the opening thread). */
  readonly journalPath: string;
  readonly busyTimeoutMs: number;
}

export type WriterRequest = { readonly id: number; readonly op: WriteOp };

export type WriterReply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | {
      readonly id: number;
      readonly ok: false;
      readonly error: { readonly name: string; readonly message: string };
    };
