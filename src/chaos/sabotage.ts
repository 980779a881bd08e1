import Database from 'better-sqlite3';
import type { BankClient } from '../bank/bank-client.js';

/**
 * Deliberate bugs, so the harness can prove its checker fails when the system misbehaves. They
 * are injected only from here — the system under test is left as it is — and each one produces
 * the evidence a real bug of the gateway would leave:
 *
 * - `stray-charge`: the harness charges a reference at the bank that the gateway never created.
 *   It stands for a gateway that calls the bank for an order it never made durable (acting before
 *   persisting), which then vanishes in a crash. Expected finding: `charged_unknown`.
 * - `forget-key`: a client sends the late duplicate of some approved orders under a new
 *   idempotency key but files the answer under the original key (load.ts). It stands for a gateway
 *   that loses an idempotency key in a crash and creates a second order for a retry. Expected
 *   findings: `key_many_orders` and `double_charge`.
 * - `drop-event`: after the gateway has stopped, one event in the middle of the longest persistence
 *   id is deleted from its journal. It stands for a journal that lost a write that had been
 *   acknowledged (a broken group commit or fsync). Expected finding: `journal_gap`.
 */
export const sabotageKinds = ['stray-charge', 'forget-key', 'drop-event'] as const;
export type Sabotage = (typeof sabotageKinds)[number];

export function parseSabotage(list: string): Sabotage[] {
  const names = list
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  return names.map((name) => {
    const known = sabotageKinds.find((kind) => kind === name);
    if (known === undefined)
      throw new Error(`unknown sabotage "${name}" (known: ${sabotageKinds.join(', ')})`);
    return known;
  });
}

/** The reference of the stray charge: an order id the gateway can never have made. */
export const strayReference = 'ord_chaos_stray_charge';

/** Charges the stray reference at the bank directly, bypassing the gateway. */
export async function strayCharge(bank: BankClient): Promise<void> {
  const answer = await bank.authorize({
    reference: strayReference,
    merchantId: 'merchant-a',
    amount: 4_200n,
    currency: 'EUR',
    card: { number: '4111111111111111', expMonth: 12, expYear: 2030 },
  });
  if (answer.kind !== 'approved') throw new Error(`the stray charge was ${answer.kind}`);
}

/** Deletes the middle event of the persistence id with the most events; returns what it deleted. */
export function dropJournalEvent(journalPath: string): { persistenceId: string; seqNr: number } {
  const database = new Database(journalPath, { fileMustExist: true });
  try {
    const longest = database
      .prepare(
        'SELECT persistence_id AS persistenceId, MAX(seq_nr) AS maxSeqNr FROM journal GROUP BY persistence_id ORDER BY maxSeqNr DESC LIMIT 1',
      )
      .get() as { persistenceId: string; maxSeqNr: number } | undefined;
    if (longest === undefined || longest.maxSeqNr < 3)
      throw new Error('the journal is too short to drop an event from its middle');
    const seqNr = Math.floor(longest.maxSeqNr / 2);
    database
      .prepare('DELETE FROM journal WHERE persistence_id = ? AND seq_nr = ?')
      .run(longest.persistenceId, seqNr);
    return { persistenceId: longest.persistenceId, seqNr };
  } finally {
    database.close();
  }
}
