/**
 * `remit cluster --nodes 3` end to end, as a person runs it: one child process that starts an
 * embedded PostgreSQL, the bank and three `remit node` processes in a folder of its own, on free
 * ports. The spec reads what the command writes (cluster.json) and prints (credentials file, admin
 * token), checks through `/admin/cluster` that every bank's Executor shards sit on exactly the
 * nodes with that bank's role, pushes one order per demo merchant through a different node to
 * `executed`, then SIGTERMs the command and checks that it exits 0 with every process it started
 * gone: the cluster's own process (which serves the bank), the nodes and PostgreSQL's postmaster.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { finalStatusThrough, until } from '../testing/orders-over-http.js';

const mainPath = fileURLToPath(new URL('./main.ts', import.meta.url));

/** cluster.json as issue 20's interface names it, and nothing else. */
const clusterFileSchema = z
  .object({
    databaseUrl: z.string().regex(/^postgres(ql)?:\/\//),
    bankUrl: z.url(),
    nodes: z.array(
      z
        .object({
          nodeId: z.string().min(1),
          url: z.url(),
          roles: z.array(z.string()),
          pid: z.number().int().positive(),
        })
        .strict(),
    ),
  })
  .strict();

const credentialsSchema = z.object({
  merchants: z.array(z.object({ id: z.string(), bank: z.string(), apiKey: z.string() })),
  adminToken: z.string(),
});

const clusterViewSchema = z.object({
  members: z.array(z.object({ nodeId: z.string(), state: z.string() })),
  shards: z.array(z.object({ shard: z.string(), owner: z.string().nullable() })),
});

let folder: string;
let command: ChildProcess;
let exited: Promise<number | null>;
let output = '';

beforeAll(() => {
  folder = mkdtempSync(join(tmpdir(), 'remit-e2e-cluster-command-'));
  // PostgreSQL runs as the unprivileged `postgres` user when the tests run as root: it must reach
  // its folder inside this one.
  chmodSync(folder, 0o755);
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('REMIT_') && name !== 'DATABASE_URL'),
  );
  command = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      mainPath,
      'cluster',
      '--nodes',
      '3',
      '--data',
      join(folder, 'cluster'),
      '--port',
      '0',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  command.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  command.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  exited = new Promise((resolve) => command.once('exit', (code) => resolve(code)));
});

afterAll(async () => {
  // Only after a failure is the command still running; SIGKILL would leave its children behind.
  if (command.exitCode === null && command.signalCode === null) {
    command.kill('SIGTERM');
    await exited;
  }
  rmSync(folder, { recursive: true, force: true });
}, 60_000);

function explain(): string {
  return output.slice(-4_000);
}

/** Gone, or a zombie nobody reaps (in a container, pid 1 may never reap an orphan). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function printed(label: string): string {
  const match = new RegExp(`^${label}: (\\S+)$`, 'm').exec(output);
  if (match?.[1] === undefined) throw new Error(`the command printed no ${label}:\n${explain()}`);
  return match[1];
}

describe('remit cluster', () => {
  it('starts PostgreSQL, the bank and three nodes, serves every merchant, and stops all of it on SIGTERM', async () => {
    const clusterDir = join(folder, 'cluster');
    const clusterFilePath = join(clusterDir, 'cluster.json');
    await until(
      async () => existsSync(clusterFilePath) || command.exitCode !== null,
      'cluster.json written',
      {
        attemptsMax: 1_200,
        explain,
      },
    );
    expect(command.exitCode, explain()).toBeNull();
    const cluster = clusterFileSchema.parse(JSON.parse(readFileSync(clusterFilePath, 'utf8')));
    expect(cluster.nodes.map((node) => node.nodeId)).toEqual(['node-1', 'node-2', 'node-3']);
    for (const node of cluster.nodes) {
      await until(
        async () => (await fetch(`${node.url}/health/ready`)).status === 200,
        `${node.nodeId} ready`,
        { explain },
      );
    }
    const postmasterPid = Number.parseInt(
      readFileSync(join(clusterDir, 'postgres', 'data', 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
      10,
    );
    expect(isGone(postmasterPid)).toBe(false);

    await until(async () => output.includes('admin token: '), 'the admin token printed', { explain });
    const adminToken = printed('admin token');
    // The command runs the cluster (and the bank) in a child of its own process group.
    const clusterPid = Number(/in the cluster's own process, pid (\d+)/.exec(output)?.[1]);
    expect(isGone(clusterPid)).toBe(false);
    const credentials = credentialsSchema.parse(JSON.parse(readFileSync(printed('credentials'), 'utf8')));
    expect(credentials.adminToken).toBe(adminToken);

    const banks = ['bank-a', 'bank-b', 'bank-c'];
    const withRole = (bank: string): string[] =>
      cluster.nodes.filter((node) => node.roles.includes(bank)).map((node) => node.nodeId);
    for (const bank of banks) expect(withRole(bank), bank).toHaveLength(2);
    // Shards settle over a few rounds of placement (a bounded number move at a time).
    let placement = '';
    await until(
      async () => {
        const response = await fetch(`${cluster.nodes[0]?.url}/admin/cluster`, {
          headers: { authorization: `Bearer ${adminToken}` },
        });
        const view = clusterViewSchema.parse(await response.json());
        const owners = (bank: string): string[] => [
          ...new Set(
            view.shards
              .filter((shard) => shard.shard.startsWith(`executor-${bank}/`))
              .map((shard) => shard.owner ?? 'nobody'),
          ),
        ];
        placement = JSON.stringify({ members: view.members, owners: banks.map(owners) });
        return (
          view.members.length === 3 &&
          view.members.every((member) => member.state === 'up') &&
          banks.every((bank) => JSON.stringify(owners(bank).sort()) === JSON.stringify(withRole(bank)))
        );
      },
      'every bank’s Executor shards on exactly the nodes with its role',
      { explain: () => placement },
    );

    const statuses = await Promise.all(
      credentials.merchants.map((merchant, index) => {
        const node = cluster.nodes[index % cluster.nodes.length];
        return finalStatusThrough(node?.url ?? '', merchant.apiKey, `through-${node?.nodeId}`, explain);
      }),
    );
    expect(statuses).toEqual(['executed', 'executed', 'executed']);

    command.kill('SIGTERM');
    expect(await exited, explain()).toBe(0);
    const pids = [command.pid ?? 0, clusterPid, postmasterPid, ...cluster.nodes.map((node) => node.pid)];
    expect(pids.filter((pid) => !isGone(pid))).toEqual([]);
    expect(existsSync(clusterFilePath)).toBe(false);
  }, 120_000);
});
