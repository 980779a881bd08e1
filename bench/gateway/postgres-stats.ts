/**
 * What a PostgreSQL server does for the benchmark: the CPU of its processes (from /proc, when it
 * runs on this machine) and its own counters (`pg_stat_database`, `pg_stat_io`,
 * `pg_stat_user_tables`), sampled at the window's start and end so the difference is the window's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';

/** The server's counters at one moment; a field is undefined where this server version has no such view. */
export interface PostgresCounters {
  readonly commits: number;
  readonly rollbacks: number;
  /** Milliseconds backends spent running statements in this database (`active_time`). */
  readonly activeMs: number;
  /** WAL written, fsynced, and milliseconds spent fsyncing (PostgreSQL 18's `pg_stat_io`, object `wal`). */
  readonly wal: { readonly writes: number; readonly fsyncs: number } | undefined;
  readonly walBytes: number | undefined;
  /** Rows inserted, updated, deleted and read by index, per table of the schema. */
  readonly tables: Readonly<Record<string, TableCounters>>;
  /**
   * Statements executed, by statement (`pg_stat_statements`, when the server loads it): each one
   * is a round trip of the client, BEGIN and COMMIT included, as node-postgres does not pipeline.
   */
  readonly statements: ReadonlyMap<string, StatementCounters> | undefined;
}

export interface StatementCounters {
  readonly query: string;
  readonly calls: number;
  readonly totalMs: number;
}

/** Statement texts are cut to this length in the report. */
const statementTextMax = 160;

export interface TableCounters {
  readonly inserted: number;
  readonly updated: number;
  readonly deleted: number;
  readonly indexScans: number;
}

/** Waiting for one statistics query. */
const statsQueryTimeoutMs = 10_000;

/**
 * Reads the counters over a connection of its own (one short session per sample, so the
 * benchmark's own session is a small part of what the server counts: a handful of statements).
 * `pg_stat_database` is flushed by backends at most once a second, so a window of many seconds is
 * what makes these exact enough.
 */
export async function samplePostgresCounters(
  url: string,
  schema: string,
): Promise<PostgresCounters | undefined> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'remit-bench-stats',
    query_timeout: statsQueryTimeoutMs,
    connectionTimeoutMillis: statsQueryTimeoutMs,
  });
  try {
    await client.connect();
    // Statistics a backend has not flushed yet are invisible; ask for a fresh snapshot.
    await client.query('SELECT pg_stat_clear_snapshot()');
    const database = await client.query<{ commits: string; rollbacks: string; active_ms: string | null }>(
      'SELECT xact_commit AS commits, xact_rollback AS rollbacks, active_time AS active_ms FROM pg_stat_database WHERE datname = current_database()',
    );
    const row = database.rows[0];
    if (row === undefined) return undefined;
    const wal = await optional(async () => {
      const result = await client.query<{ writes: string | null; fsyncs: string | null }>(
        "SELECT sum(writes) AS writes, sum(fsyncs) AS fsyncs FROM pg_stat_io WHERE object = 'wal'",
      );
      const io = result.rows[0];
      return io === undefined
        ? undefined
        : { writes: Number(io.writes ?? 0), fsyncs: Number(io.fsyncs ?? 0) };
    });
    const walBytes = await optional(async () => {
      const result = await client.query<{ wal_bytes: string }>('SELECT wal_bytes FROM pg_stat_wal');
      const bytes = result.rows[0]?.wal_bytes;
      return bytes === undefined ? undefined : Number(bytes);
    });
    const tableRows = await client.query<{
      relname: string;
      n_tup_ins: string;
      n_tup_upd: string;
      n_tup_del: string;
      idx_scan: string | null;
    }>(
      'SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, idx_scan FROM pg_stat_user_tables WHERE schemaname = $1',
      [schema],
    );
    const tables: Record<string, TableCounters> = {};
    for (const table of tableRows.rows) {
      tables[table.relname] = {
        inserted: Number(table.n_tup_ins),
        updated: Number(table.n_tup_upd),
        deleted: Number(table.n_tup_del),
        indexScans: Number(table.idx_scan ?? 0),
      };
    }
    const statements = await optional(async () => {
      // Only the node's own statements: this module's sessions name themselves.
      const result = await client.query<{ queryid: string; query: string; calls: string; total_ms: number }>(
        `SELECT s.queryid::text AS queryid, s.query, s.calls, s.total_exec_time AS total_ms
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat%' AND s.query NOT LIKE '%pg_database%'`,
      );
      return new Map(
        result.rows.map((statement) => [
          statement.queryid,
          {
            query: statement.query.replace(/\s+/g, ' ').slice(0, statementTextMax),
            calls: Number(statement.calls),
            totalMs: Number(statement.total_ms),
          },
        ]),
      );
    });
    return {
      commits: Number(row.commits),
      rollbacks: Number(row.rollbacks),
      activeMs: Number(row.active_ms ?? 0),
      wal,
      walBytes,
      tables,
      statements,
    };
  } catch (error) {
    process.stderr.write(`bench: could not read PostgreSQL's statistics: ${String(error)}\n`);
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A query of a view some server versions lack (outside any transaction): undefined instead of an error. */
async function optional<T>(query: () => Promise<T | undefined>): Promise<T | undefined> {
  try {
    return await query();
  } catch {
    return undefined;
  }
}

/** Loads `pg_stat_statements` into the database the node uses; false where the server lacks it. */
export async function enableStatementStats(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: statsQueryTimeoutMs });
  try {
    await client.connect();
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await client.query('SELECT pg_stat_statements_reset()');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * CPU seconds of a PostgreSQL server: the postmaster, every process it runs now (backends, WAL
 * writer, checkpointer, …), and the children it has already reaped (`cutime` + `cstime`), so a
 * backend that ended inside the window still counts. Undefined once the postmaster has gone.
 */
export function postgresServerCpuSeconds(postmaster: number, ticksPerSecond: number): number | undefined {
  const own = statFields(postmaster);
  if (own === undefined) return undefined;
  // After the ')' that closes the command name: utime, stime, cutime, cstime are fields 11-14.
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    // Field 4, the parent's pid, is index 1 after the command name.
    if (fields === undefined || Number(fields[1]) !== postmaster) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return Number.isFinite(ticks) ? ticks / ticksPerSecond : undefined;
}

function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
