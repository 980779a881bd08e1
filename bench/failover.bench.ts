/**
 * Failover time of a three-node cluster, as a merchant's system sees it.
 *
 * Starts an embedded PostgreSQL (fsync on), the bank simulator and three `remit node` processes
 * (roles: every bank on two nodes) and keeps a light steady load on every merchant through every
 * node. Then, round after round: finds the node that owns merchant-a's shard (`GET /admin/cluster`),
 * SIGKILLs it (or, in a graceful round, SIGTERMs it), and from that moment places a new
 * merchant-a order every `--probe-interval-ms` through the surviving nodes (`Prefer: wait`), until
 * one is answered with its terminal status: that answer's arrival is the round's failover time.
 * Meanwhile it watches the shard's lease row in PostgreSQL, to say where the time went: the lease
 * left at the kill, its takeover by another node, and what came after (the entities' recovery and
 * the request's own path). Then it starts the node again and waits until the shards have settled
 * on all three before the next round. Prints JSON.
 *
 * Run: `npm run bench:failover -- --kills 20 --graceful 20 --json failover.json` (see bench/README.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { sleep } from '../src/chaos/timing.js';
import { defaultPostgresSettings } from '../src/store/postgres/postgres-settings.js';
import { gitCommit, progressOf, runBenchmark } from './cluster/bench-run.js';
import { type ClusterNode, type RunningCluster, startThreeNodeCluster } from './cluster/cluster-processes.js';
import {
  type ClusterView,
  fetchClusterView,
  merchantEntityId,
  occupiedShardOf,
  settledOn,
  shardHolding,
  shardLogEvents,
  summarize,
  warningCounts,
} from './cluster/cluster-view.js';
import { AnswerCounts, type OrderAnswer, placeOrder } from './cluster/orders.js';
import { numberFlag } from './gateway/flags.js';

const usage = `Usage: npm run bench:failover -- [flags]

  --kills N             SIGKILL rounds (default 20)
  --graceful N          SIGTERM rounds, alternating with the kills (default 20; 0: none)
  --probe-interval-ms M a new merchant-a order through a surviving node every M ms after the
                        kill, until one is answered terminal (default 200)
  --wait S              Prefer: wait=S of every order (default 5)
  --round-timeout S     a round without a terminal answer this long after the kill fails (default 60)
  --settle-timeout S    how long the restarted node may take to rejoin and the shards to settle (default 300)
  --json FILE           also write the result there
  --keep-data           keep the temp folder (PostgreSQL, bank, nodes' data) and print its path`;

/** The target for the failover time with the default settings. */
const target = { medianMs: 5_000, worstMs: 10_000 } as const;
/** The merchant whose shard's owner each round takes down. */
const affectedMerchant = 'merchant-a';
/** The light steady load: one order in flight per node and merchant, this long between them. */
const backgroundPauseMs = 250;
/** Probes outstanding at most in a round (at 200 ms apart, 15 s of waiting is 75). */
const probesInFlightMax = 128;
/** How often the lease row and the cluster view are read while waiting for something. */
const leasePollMs = 25;
const settlePollMs = 250;
/** The load runs this long before each kill, so the victim is serving when it dies. */
const steadyBeforeKillMs = 2_000;
/** A request without an answer this long after its `Prefer: wait` is abandoned. */
const requestTimeoutBeyondWaitMs = 10_000;
const adminTimeoutMs = 5_000;
/** Starts of a signalled node before the run gives up (a start can fail; the report says why). */
const restartAttemptsMax = 3;
/** Retries of reading the cluster view before a round, while a node may still be warming up. */
const viewAttemptsMax = 40;

type RoundKind = 'kill' | 'graceful';

interface Settings {
  readonly kills: number;
  readonly graceful: number;
  readonly probeIntervalMs: number;
  readonly waitS: number;
  readonly roundTimeoutMs: number;
  readonly settleTimeoutMs: number;
  readonly json: string | undefined;
  readonly keepData: boolean;
}

function parseSettings(args: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...args],
    options: {
      kills: { type: 'string' },
      graceful: { type: 'string' },
      'probe-interval-ms': { type: 'string' },
      wait: { type: 'string' },
      'round-timeout': { type: 'string' },
      'settle-timeout': { type: 'string' },
      json: { type: 'string' },
      'keep-data': { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  return {
    kills: numberFlag(values.kills, 20, '--kills', { integer: true, zero: true }),
    graceful: numberFlag(values.graceful, 20, '--graceful', { integer: true, zero: true }),
    probeIntervalMs: numberFlag(values['probe-interval-ms'], 200, '--probe-interval-ms', { integer: true }),
    waitS: numberFlag(values.wait, 5, '--wait', { integer: true }),
    roundTimeoutMs: numberFlag(values['round-timeout'], 60, '--round-timeout', { integer: false }) * 1_000,
    settleTimeoutMs:
      numberFlag(values['settle-timeout'], 300, '--settle-timeout', { integer: false }) * 1_000,
    json: values.json,
    keepData: values['keep-data'] === true,
  };
}

/** One round's figures, in milliseconds from the signal. */
interface RoundSample {
  readonly round: number;
  readonly kind: RoundKind;
  readonly victim: string;
  readonly shard: string;
  /** Whether the victim also ran bank-a's Executor (merchant-a's bank). */
  readonly victimRanBankAExecutor: boolean;
  /** The lease's time left when the signal was sent (database clock). */
  readonly leaseLeftAtSignalMs: number | null;
  /** The victim's last heartbeat's age when the signal was sent (database clock). */
  readonly heartbeatAgeAtSignalMs: number | null;
  /** First seen with no owner (expired or released), by polling every 25 ms. */
  readonly leaseUnownedSeenMs: number | null;
  /** First seen held by another node. */
  readonly newOwnerMs: number | null;
  readonly newOwner: string | null;
  readonly epochBefore: number | null;
  readonly epochAfter: number | null;
  /** The failover time: the first merchant-a order answered with its terminal status. */
  readonly firstTerminalMs: number | null;
  readonly firstTerminal: {
    readonly status: string;
    readonly through: string;
    readonly sentMs: number;
    readonly latencyMs: number;
  } | null;
  /**
   * From the new owner's log: its first shard acquisition after the signal, its acquisition of
   * merchant-a's shard, and how many shards it acquired from the first up to that one (a round
   * acquires them one statement at a time).
   */
  readonly newOwnerLog: {
    readonly firstAcquiredMs: number;
    readonly shardAcquiredMs: number | null;
    readonly acquiredUpToShard: number;
    readonly acquiredInRound: number;
  } | null;
  /** Graceful rounds: the victim logged merchant-a's shard handed over (stopped and released). */
  readonly handedOverMs: number | null;
  /** The signalled process's exit (graceful rounds: how long its handover took). */
  readonly exitedMs: number | null;
  /** Probes sent before the first terminal answer arrived, and how they were answered. */
  readonly probesSent: number;
  readonly probeAnswers: Record<string, number>;
  /** Every probe: sent and answered (ms from the signal), its answer, the node it went through. */
  readonly probes: readonly ProbeRecord[];
  /** From the signal until the node answered ready again, and until the shards settled. */
  readonly restartedMs: number | null;
  /** Starts of the node that failed before one succeeded: the first line of each one's error. */
  readonly restartFailures: readonly string[];
  readonly settledMs: number | null;
}

async function main(args: readonly string[]): Promise<number> {
  const settings = parseSettings(args);
  if (settings === undefined) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const folder = mkdtempSync(path.join(os.tmpdir(), 'remit-bench-failover-'));
  const startedAt = new Date().toISOString();
  let cluster: RunningCluster | undefined;
  let background: BackgroundLoad | undefined;
  try {
    progress(`starting PostgreSQL, the bank and three nodes in ${folder}`);
    cluster = await startThreeNodeCluster(folder);
    const running = cluster;
    const merchant = running.credentials.merchants.find((entry) => entry.id === affectedMerchant);
    if (merchant === undefined) throw new Error(`no ${affectedMerchant} in credentials.json`);
    const firstView = await viewOfAnyNode(running);
    progress('cluster up; light load on every merchant through every node');
    background = new BackgroundLoad(running, settings.waitS);
    background.start();
    const leases = new pg.Client({
      connectionString: running.database.url,
      application_name: 'remit-bench-failover',
    });
    await leases.connect();
    const samples: RoundSample[] = [];
    const plan = roundPlan(settings.kills, settings.graceful);
    try {
      for (const [index, kind] of plan.entries()) {
        if (abort.signal.aborted) break;
        await sleep(steadyBeforeKillMs, abort.signal);
        const sample = await runRound(index + 1, kind, running, merchant.apiKey, leases, settings);
        samples.push(sample);
        progress(
          `round ${index + 1}/${plan.length} ${kind} ${sample.victim}: first terminal ${sample.firstTerminalMs ?? '—'} ms ` +
            `(lease left ${sample.leaseLeftAtSignalMs ?? '?'} ms, new owner ${sample.newOwner ?? '—'} at ${sample.newOwnerMs ?? '—'} ms), ` +
            `settled after ${sample.settledMs ?? '—'} ms`,
        );
      }
    } finally {
      await leases.end().catch(() => undefined);
    }
    await background.stop();
    const warnings = Object.fromEntries(
      running.nodes.map((node) => [node.nodeId, warningCounts(node.process.outputTail())]),
    );
    const result = report(settings, args, startedAt, firstView, samples, background.counts, warnings);
    const text = `${JSON.stringify(result, null, 2)}\n`;
    process.stdout.write(text);
    if (settings.json !== undefined) await writeFile(settings.json, text);
    return abort.signal.aborted ? 130 : samples.some((sample) => sample.firstTerminalMs === null) ? 1 : 0;
  } finally {
    await background?.stop();
    await cluster?.stop();
    if (settings.keepData) {
      // The nodes' logs (info, no access logs) beside their data, for reading a round's timeline.
      for (const node of cluster?.nodes ?? []) {
        await writeFile(path.join(folder, `${node.nodeId}.log`), node.process.outputTail());
      }
      progress(`data and node logs kept in ${folder}`);
    } else rmSync(folder, { recursive: true, force: true });
  }
}

/** Kills and graceful rounds alternating, so both see the same machine over the run. */
function roundPlan(kills: number, graceful: number): RoundKind[] {
  const plan: RoundKind[] = [];
  for (let index = 0; index < Math.max(kills, graceful); index++) {
    if (index < kills) plan.push('kill');
    if (index < graceful) plan.push('graceful');
  }
  return plan;
}

async function runRound(
  round: number,
  kind: RoundKind,
  cluster: RunningCluster,
  apiKey: string,
  leases: pg.Client,
  settings: Settings,
): Promise<RoundSample> {
  const view = await viewOfAnyNode(cluster);
  const shard = shardHolding(view, merchantEntityId(affectedMerchant));
  if (shard?.owner === null || shard === undefined)
    throw new Error(`${affectedMerchant}'s shard has no owner`);
  const victim = cluster.nodes.find((node) => node.nodeId === shard.owner);
  if (victim === undefined) throw new Error(`${affectedMerchant}'s shard is owned by unknown ${shard.owner}`);
  const survivors = cluster.nodes.filter((node) => node !== victim);
  const bankAExecutor = occupiedShardOf(view, 'executor-bank-a');
  const before = await leaseAndHeartbeat(leases, shard.shard, victim.nodeId);

  const signalledAtEpochMs = Date.now();
  const signalledAt = performance.now();
  const exited = kind === 'kill' ? victim.process.kill() : victim.process.stop();
  const exitedMs = exited.then(() => Math.round(performance.now() - signalledAt));
  const lease = watchLease(leases, shard.shard, victim.nodeId, signalledAt, settings.roundTimeoutMs);
  const probes = await probeUntilTerminal(survivors, apiKey, signalledAt, round, settings);
  const takeover = await lease;
  const exitedAfter = await exitedMs;

  const restartFailures = await restart(victim);
  const restartedMs = Math.round(performance.now() - signalledAt);
  const settled = await waitUntilSettled(cluster, victim, settings.settleTimeoutMs);
  await probes.remaining;
  const sinceSignal = (epochMs: number): number => epochMs - signalledAtEpochMs;
  const newOwner = cluster.nodes.find((node) => node.nodeId === takeover.newOwner);
  const acquired = (
    newOwner === undefined ? [] : shardLogEvents(newOwner.process.outputTail(), signalledAtEpochMs)
  ).filter((event) => event.what === 'shard acquired' && event.atEpochMs < signalledAtEpochMs + restartedMs);
  const shardIndex = acquired.findIndex((event) => event.shardId === shard.shard);
  const handedOver = shardLogEvents(victim.process.outputTail(), signalledAtEpochMs).find(
    (event) => event.what === 'shard handed over' && event.shardId === shard.shard,
  );
  return {
    round,
    kind,
    victim: victim.nodeId,
    shard: shard.shard,
    victimRanBankAExecutor: bankAExecutor?.owner === victim.nodeId,
    leaseLeftAtSignalMs: before?.leaseLeftMs ?? null,
    heartbeatAgeAtSignalMs: before?.heartbeatAgeMs ?? null,
    leaseUnownedSeenMs: takeover.unownedSeenMs,
    newOwnerMs: takeover.newOwnerMs,
    newOwner: takeover.newOwner,
    epochBefore: before?.epoch ?? null,
    epochAfter: takeover.epoch,
    firstTerminalMs: probes.first === undefined ? null : probes.first.answeredMs,
    firstTerminal:
      probes.first === undefined
        ? null
        : {
            status: probes.first.status,
            through: probes.first.through,
            sentMs: probes.first.sentMs,
            latencyMs: probes.first.answeredMs - probes.first.sentMs,
          },
    newOwnerLog:
      acquired[0] === undefined
        ? null
        : {
            firstAcquiredMs: sinceSignal(acquired[0].atEpochMs),
            shardAcquiredMs: shardIndex < 0 ? null : sinceSignal(acquired[shardIndex]?.atEpochMs ?? 0),
            acquiredUpToShard: shardIndex + 1,
            acquiredInRound: acquired.length,
          },
    handedOverMs: handedOver === undefined ? null : sinceSignal(handedOver.atEpochMs),
    exitedMs: exitedAfter,
    probesSent: probes.sent,
    probeAnswers: probes.counts.toJSON(),
    probes: probes.records,
    restartedMs,
    restartFailures,
    settledMs: settled ? Math.round(performance.now() - signalledAt) : null,
  };
}

/**
 * Starts the node again, up to `restartAttemptsMax` times: a start that fails is recorded (the
 * report shows why) rather than ending the run, so one bad start does not lose every round after it.
 */
async function restart(node: ClusterNode): Promise<string[]> {
  const failures: string[] = [];
  for (let attempt = 1; attempt <= restartAttemptsMax; attempt++) {
    try {
      await node.process.start();
      return failures;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const reason = message.split('\n').find((line) => line.startsWith('remit:')) ?? message.split('\n')[0];
      failures.push(reason ?? 'unknown');
      progress(`${node.nodeId} did not start (attempt ${attempt}): ${reason}`);
    }
  }
  throw new Error(`${node.nodeId} did not start in ${restartAttemptsMax} attempts: ${failures.join('; ')}`);
}

/** The lease's time left and the victim's heartbeat age, both by the database's clock. */
async function leaseAndHeartbeat(
  client: pg.Client,
  shardId: string,
  nodeId: string,
): Promise<{ leaseLeftMs: number; heartbeatAgeMs: number | null; epoch: number } | undefined> {
  const schema = client.escapeIdentifier(defaultPostgresSettings.schema);
  const { rows } = await client.query<{ left_ms: number; age_ms: number | null; epoch: string }>(
    `SELECT extract(epoch FROM l.expires_at - now()) * 1000 AS left_ms,
            (SELECT extract(epoch FROM now() - m.last_heartbeat_at) * 1000 FROM ${schema}.cluster_members m WHERE m.node_id = $2) AS age_ms,
            l.epoch
       FROM ${schema}.shard_leases l WHERE l.shard_id = $1`,
    [shardId, nodeId],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    leaseLeftMs: Math.round(Number(row.left_ms)),
    heartbeatAgeMs: row.age_ms === null ? null : Math.round(Number(row.age_ms)),
    epoch: Number(row.epoch),
  };
}

interface Takeover {
  readonly unownedSeenMs: number | null;
  readonly newOwnerMs: number | null;
  readonly newOwner: string | null;
  readonly epoch: number | null;
}

/** Polls the shard's lease row until another node holds it (or `timeoutMs` passes). */
async function watchLease(
  client: pg.Client,
  shardId: string,
  victim: string,
  signalledAt: number,
  timeoutMs: number,
): Promise<Takeover> {
  const schema = client.escapeIdentifier(defaultPostgresSettings.schema);
  let unownedSeenMs: number | null = null;
  const pollsMax = Math.ceil(timeoutMs / leasePollMs);
  for (let poll = 0; poll < pollsMax; poll++) {
    const { rows } = await client.query<{ owner: string | null; epoch: string; expired: boolean }>(
      `SELECT owner, epoch, expires_at <= now() AS expired FROM ${schema}.shard_leases WHERE shard_id = $1`,
      [shardId],
    );
    const elapsed = Math.round(performance.now() - signalledAt);
    const row = rows[0];
    if (row !== undefined) {
      const unowned = row.owner === null || row.expired;
      if (unowned && unownedSeenMs === null) unownedSeenMs = elapsed;
      if (!unowned && row.owner !== victim) {
        return { unownedSeenMs, newOwnerMs: elapsed, newOwner: row.owner, epoch: Number(row.epoch) };
      }
    }
    await sleep(leasePollMs);
  }
  return { unownedSeenMs, newOwnerMs: null, newOwner: null, epoch: null };
}

interface ProbeRecord {
  readonly sentMs: number;
  readonly answeredMs: number;
  readonly answer: string;
  readonly through: string;
}

interface ProbeOutcome {
  readonly first: { answeredMs: number; sentMs: number; status: string; through: string } | undefined;
  readonly sent: number;
  readonly counts: AnswerCounts;
  /** Filled as probes are answered, also after the round (those still in flight). */
  readonly records: ProbeRecord[];
  /** Settles once every probe still in flight has been answered (or timed out). */
  readonly remaining: Promise<unknown>;
}

/**
 * From the signal on, a new merchant-a order every `probeIntervalMs` through the survivors in
 * turn, until one is answered with its terminal status or the round times out.
 */
async function probeUntilTerminal(
  survivors: readonly ClusterNode[],
  apiKey: string,
  signalledAt: number,
  round: number,
  settings: Settings,
): Promise<ProbeOutcome> {
  const counts = new AnswerCounts();
  const records: ProbeRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  let first: ProbeOutcome['first'];
  let found: () => void = () => undefined;
  const foundFirst = new Promise<void>((resolve) => {
    found = resolve;
  });
  const deadline = signalledAt + settings.roundTimeoutMs;
  let sent = 0;
  const probesMax = Math.ceil(settings.roundTimeoutMs / settings.probeIntervalMs) + 1;
  for (let index = 0; index < probesMax && first === undefined && performance.now() < deadline; index++) {
    const through = survivors[index % survivors.length];
    if (through !== undefined && inFlight.size < probesInFlightMax) {
      const sentMs = Math.round(performance.now() - signalledAt);
      sent++;
      const probe = placeOrder({
        nodeUrl: through.url,
        apiKey,
        idempotencyKey: `failover-${round}-${index}-${process.pid}`,
        cardSequence: nextCard(),
        waitSeconds: settings.waitS,
        timeoutMs: settings.waitS * 1_000 + requestTimeoutBeyondWaitMs,
      }).then((answer: OrderAnswer) => {
        counts.add(answer);
        records.push({
          sentMs,
          answeredMs: Math.round(performance.now() - signalledAt),
          answer:
            answer.kind === 'terminal'
              ? answer.status
              : answer.kind === 'accepted'
                ? 'accepted'
                : answer.error,
          through: through.nodeId,
        });
        if (answer.kind === 'terminal' && first === undefined) {
          first = {
            answeredMs: Math.round(performance.now() - signalledAt),
            sentMs,
            status: answer.status,
            through: through.nodeId,
          };
          found();
        }
      });
      const tracked = probe.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    }
    await Promise.race([sleep(settings.probeIntervalMs), foundFirst]);
  }
  return { first, sent, counts, records, remaining: Promise.all([...inFlight]) };
}

/** Polls the restarted node's view until every shard has settled on the three nodes. */
async function waitUntilSettled(
  cluster: RunningCluster,
  restarted: ClusterNode,
  timeoutMs: number,
): Promise<boolean> {
  const nodeIds = cluster.nodes.map((node) => node.nodeId);
  const pollsMax = Math.ceil(timeoutMs / settlePollMs);
  for (let poll = 0; poll < pollsMax; poll++) {
    const view = await fetchClusterView(restarted.url, cluster.credentials.adminToken, adminTimeoutMs).catch(
      () => undefined,
    );
    if (view !== undefined && settledOn(view, nodeIds)) return true;
    await sleep(settlePollMs);
  }
  return false;
}

async function viewOfAnyNode(cluster: RunningCluster): Promise<ClusterView> {
  let lastError: unknown;
  for (let attempt = 0; attempt < viewAttemptsMax; attempt++) {
    const node = cluster.nodes[attempt % cluster.nodes.length];
    if (node?.process.running === true) {
      try {
        return await fetchClusterView(node.url, cluster.credentials.adminToken, adminTimeoutMs);
      } catch (error) {
        lastError = error;
      }
    }
    await sleep(settlePollMs);
  }
  throw new Error(`no node answered GET /admin/cluster: ${String(lastError)}`);
}

let cardSequence = 0;
/** Cards are distinct across the whole run (background load and probes), so no velocity rule fires. */
function nextCard(): number {
  return cardSequence++;
}

/**
 * The light steady load: for every node and merchant one loop, one order in flight, a pause
 * between orders. A loop whose node is down waits for it.
 */
class BackgroundLoad {
  readonly counts = new AnswerCounts();
  private readonly stopping = new AbortController();
  private loops: Promise<void>[] = [];
  private sequence = 0;

  constructor(
    private readonly cluster: RunningCluster,
    private readonly waitS: number,
  ) {}

  start(): void {
    for (const node of this.cluster.nodes) {
      for (const merchant of this.cluster.credentials.merchants) {
        this.loops.push(this.loop(node, merchant.apiKey));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.loops);
    this.loops = [];
  }

  private async loop(node: ClusterNode, apiKey: string): Promise<void> {
    while (!this.stopping.signal.aborted) {
      if (node.process.running) {
        const answer = await placeOrder({
          nodeUrl: node.url,
          apiKey,
          idempotencyKey: `background-${process.pid}-${this.sequence++}`,
          cardSequence: nextCard(),
          waitSeconds: this.waitS,
          timeoutMs: this.waitS * 1_000 + requestTimeoutBeyondWaitMs,
        });
        if (!this.stopping.signal.aborted) this.counts.add(answer);
      }
      await sleep(backgroundPauseMs, this.stopping.signal);
    }
  }
}

function phases(samples: readonly RoundSample[], kind: RoundKind): Record<string, unknown> {
  const values = (pick: (sample: RoundSample) => number | null): number[] =>
    samples.map(pick).filter((value): value is number => value !== null);
  const firstTerminal = summarize(values((sample) => sample.firstTerminalMs));
  return {
    rounds: samples.length,
    failedRounds: samples.filter((sample) => sample.firstTerminalMs === null).length,
    firstTerminalMs: firstTerminal,
    targetMet:
      firstTerminal.median === null || firstTerminal.worst === null
        ? null
        : firstTerminal.median <= target.medianMs && firstTerminal.worst <= target.worstMs,
    newLeaseHeldMs: summarize(values((sample) => sample.newOwnerMs)),
    where: {
      ...(kind === 'kill'
        ? {
            leaseLeftAtSignalMs: summarize(values((sample) => sample.leaseLeftAtSignalMs)),
            firstAcquireAfterExpiryMs: summarize(
              values((sample) =>
                sample.newOwnerLog === null || sample.leaseLeftAtSignalMs === null
                  ? null
                  : sample.newOwnerLog.firstAcquiredMs - Math.max(0, sample.leaseLeftAtSignalMs),
              ),
            ),
            takeoverAfterExpiryMs: summarize(
              values((sample) =>
                sample.newOwnerMs === null || sample.leaseLeftAtSignalMs === null
                  ? null
                  : sample.newOwnerMs - Math.max(0, sample.leaseLeftAtSignalMs),
              ),
            ),
          }
        : { handedOverMs: summarize(values((sample) => sample.handedOverMs)) }),
      shardAcquiredAfterFirstAcquireMs: summarize(
        values((sample) =>
          sample.newOwnerLog?.shardAcquiredMs === null || sample.newOwnerLog === null
            ? null
            : sample.newOwnerLog.shardAcquiredMs - sample.newOwnerLog.firstAcquiredMs,
        ),
      ),
      shardsAcquiredUpToMerchantShard: summarize(
        values((sample) => (sample.newOwnerLog === null ? null : sample.newOwnerLog.acquiredUpToShard)),
      ),
      firstTerminalAfterNewOwnerMs: summarize(
        values((sample) =>
          sample.firstTerminalMs === null || sample.newOwnerMs === null
            ? null
            : sample.firstTerminalMs - sample.newOwnerMs,
        ),
      ),
      winningOrderLatencyMs: summarize(values((sample) => sample.firstTerminal?.latencyMs ?? null)),
      exitedMs: summarize(values((sample) => sample.exitedMs)),
      settledMs: summarize(values((sample) => sample.settledMs)),
    },
  };
}

function report(
  settings: Settings,
  args: readonly string[],
  startedAt: string,
  view: ClusterView,
  samples: readonly RoundSample[],
  background: AnswerCounts,
  warnings: Record<string, Record<string, number>>,
): Record<string, unknown> {
  return {
    benchmark:
      'remit cluster failover: signal to the owner of merchant-a’s shard → first terminal answer for merchant-a through another node',
    command: `npm run bench:failover -- ${args.join(' ')}`.trim(),
    startedAt,
    commit: gitCommit(),
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      loadAverage1m5m15mAtEnd: os.loadavg().map((value) => Math.round(value * 100) / 100),
    },
    setup:
      'embedded PostgreSQL (fsync on), remit bank, three remit node processes under tsx (node-1 bank-a,bank-b; node-2 bank-b,bank-c; node-3 bank-a,bank-c), all on this machine',
    clusterSettings: view.settings,
    settings: {
      kills: settings.kills,
      graceful: settings.graceful,
      probeIntervalMs: settings.probeIntervalMs,
      preferWaitS: settings.waitS,
      roundTimeoutMs: settings.roundTimeoutMs,
      backgroundLoad: `one order in flight per node and merchant, ${backgroundPauseMs} ms apart`,
    },
    target: { ...target, with: 'the default cluster settings' },
    kill: phases(
      samples.filter((sample) => sample.kind === 'kill'),
      'kill',
    ),
    graceful: phases(
      samples.filter((sample) => sample.kind === 'graceful'),
      'graceful',
    ),
    backgroundAnswers: background.toJSON(),
    nodeWarningsByMessage: warnings,
    samples,
  };
}

const progress = progressOf('bench:failover');

runBenchmark('bench:failover', () => main(process.argv.slice(2)));
