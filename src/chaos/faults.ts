import type { BankFaults } from '../bank/bank-protocol.js';
import { noFaults } from '../bank/bank-protocol.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Random } from '../runtime/random.js';
import type { ManagedProcess } from './processes.js';
import { monotonicMs, sleep } from './timing.js';

/**
 * The chaos schedule: when to SIGKILL or pause which process, and which faults the bank injects
 * when. `planChaos` is pure — a seed gives the same plan every time — and `runChaosPlan` carries it
 * out against real processes. Real processes do not keep the plan's time exactly (a restart takes
 * as long as it takes), so a seed reproduces the plan, not the run.
 */

/**
 * A node is the gateway (`remit start`, the only node of a single-node run) or one `remit node` of
 * a cluster, named by its index in the run's list of nodes.
 */
export type Disruption =
  | { readonly kind: 'kill-node'; readonly node: number; readonly atMs: number; readonly downMs: number }
  | { readonly kind: 'pause-node'; readonly node: number; readonly atMs: number; readonly downMs: number }
  /** SIGTERM (a graceful stop: a cluster node hands its shards over), then a start after `downMs`. */
  | { readonly kind: 'stop-node'; readonly node: number; readonly atMs: number; readonly downMs: number }
  | { readonly kind: 'kill-bank'; readonly atMs: number; readonly downMs: number }
  | { readonly kind: 'pause-bank'; readonly atMs: number; readonly downMs: number }
  | { readonly kind: 'kill-database'; readonly atMs: number; readonly downMs: number };

export interface FaultChange {
  readonly atMs: number;
  readonly faults: BankFaults;
}

export interface ChaosPlan {
  readonly disruptions: readonly Disruption[];
  readonly faultChanges: readonly FaultChange[];
}

export interface PlanLimits {
  /** Most disruptions in one plan, whatever the duration and interval. */
  readonly disruptionsMax: number;
  /** Most bank-fault changes in one plan. */
  readonly faultChangesMax: number;
  /** Bank faults change every 1..2 × this. */
  readonly faultIntervalMs: number;
  /** A killed process stays down up to this long before it is started again. */
  readonly downMaxMs: number;
  /**
   * A paused process stays stopped 500 ms up to this long: longer than a client's request timeout
   * and the gateway's execution deadline, so pauses cause client timeouts and failed orders too.
   */
  readonly pauseMaxMs: number;
  /** A killed or stopped node stays down up to this long before it is started again. */
  readonly nodeDownMaxMs: number;
  /** A paused node stays stopped from this long up to `nodePauseMaxMs`. */
  readonly nodePauseMinMs: number;
  readonly nodePauseMaxMs: number;
}

export const defaultPlanLimits: PlanLimits = {
  disruptionsMax: 10_000,
  faultChangesMax: 10_000,
  faultIntervalMs: 2_000,
  downMaxMs: 1_000,
  pauseMaxMs: 5_000,
  nodeDownMaxMs: 1_000,
  nodePauseMinMs: 500,
  nodePauseMaxMs: 5_000,
};

/**
 * The limits of a cluster run, from its lease timing. A killed or stopped node stays down up to
 * two lease TTLs: some restart while their old leases still hold (and take them back under a new
 * epoch), others after the other nodes have taken their shards over. A paused node stays stopped
 * longer than a lease TTL and a heartbeat, so another node has taken its shards when it continues
 * and its first writes meet the epoch check, and up to one TTL longer than that.
 */
export function clusterPlanLimits(timing: { leaseTtlMs: number; heartbeatIntervalMs: number }): PlanLimits {
  return {
    ...defaultPlanLimits,
    nodeDownMaxMs: 2 * timing.leaseTtlMs,
    nodePauseMinMs: timing.leaseTtlMs + timing.heartbeatIntervalMs + 500,
    nodePauseMaxMs: 2 * timing.leaseTtlMs + timing.heartbeatIntervalMs + 500,
  };
}

/** What the plan may disrupt besides the bank. */
export interface PlanTargets {
  /** The harness runs the database server itself, so it may SIGKILL it and start it again. */
  readonly database: boolean;
  /**
   * How many nodes serve the merchants: 1 is the single gateway; from 2 on the plan also stops
   * nodes gracefully, and picks which node each node step hits.
   */
  readonly nodes: number;
}

const singleGateway: PlanTargets = { database: false, nodes: 1 };

/**
 * Disruptions come every 0.5..1.5 × `killIntervalMs`. The first is always a node SIGKILL, so
 * that every run — even a short one — exercises recovery from a crash; the next ones are the
 * other kinds in a seeded order, so a run with as many disruptions as kinds has each kind at
 * least once; after that, most kill a node and the rest kill or pause the bank, pause (or, in a
 * cluster, gracefully stop) a node, or (when the harness owns it) kill the database server.
 *
 * The runner carries the steps out one after the other, each ending with its process up again,
 * so at most one node is down (killed, stopped or paused) at any moment by the plan: with two or
 * more nodes, never all of them, and each bank's Executor keeps the other node of its role.
 */
export function planChaos(
  random: Random,
  durationMs: number,
  killIntervalMs: number,
  limits: PlanLimits = defaultPlanLimits,
  targets: PlanTargets = singleGateway,
): ChaosPlan {
  const kinds = targets.nodes > 1 ? [...otherKinds, 'stop-node' as const] : otherKinds;
  const others = targets.database ? [...kinds, 'kill-database' as const] : kinds;
  const firstKinds: Disruption['kind'][] = ['kill-node', ...shuffled(random, others)];
  const disruptions: Disruption[] = [];
  let atMs = killIntervalMs * (0.5 + random.next());
  while (atMs < durationMs && disruptions.length < limits.disruptionsMax) {
    const kind = firstKinds[disruptions.length] ?? randomKind(random, targets);
    disruptions.push(disruption(random, kind, atMs, limits, targets.nodes));
    atMs += killIntervalMs * (0.5 + random.next());
  }
  const faultChanges: FaultChange[] = [];
  let faultAtMs = 0;
  while (faultAtMs < durationMs && faultChanges.length < limits.faultChangesMax) {
    faultChanges.push({ atMs: faultAtMs, faults: bankFaults(random) });
    faultAtMs += limits.faultIntervalMs * (1 + random.next());
  }
  return { disruptions, faultChanges };
}

const otherKinds: readonly Disruption['kind'][] = ['pause-node', 'kill-bank', 'pause-bank'];

function shuffled<T>(random: Random, values: readonly T[]): T[] {
  const copy = [...values];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = random.int(index + 1);
    const value = copy[index];
    const swapped = copy[other];
    if (value === undefined || swapped === undefined) continue;
    copy[index] = swapped;
    copy[other] = value;
  }
  return copy;
}

function randomKind(random: Random, targets: PlanTargets): Disruption['kind'] {
  const draw = random.next();
  // A fifth of the database-owning runs' later disruptions kill the database server; the other
  // kinds keep their proportions among the rest.
  if (targets.database) {
    if (draw < 0.2) return 'kill-database';
    return randomKind(random, { ...targets, database: false });
  }
  // A cluster's node steps split three ways; the bank keeps its share.
  if (targets.nodes > 1) {
    if (draw < 0.35) return 'kill-node';
    if (draw < 0.55) return 'pause-node';
    if (draw < 0.75) return 'stop-node';
    if (draw < 0.875) return 'kill-bank';
    return 'pause-bank';
  }
  if (draw < 0.55) return 'kill-node';
  if (draw < 0.7) return 'pause-node';
  if (draw < 0.85) return 'kill-bank';
  return 'pause-bank';
}

function disruption(
  random: Random,
  kind: Disruption['kind'],
  atMs: number,
  limits: PlanLimits,
  nodes: number,
): Disruption {
  switch (kind) {
    case 'kill-node':
    case 'stop-node':
      return { kind, node: pickNode(random, nodes), atMs, downMs: random.int(limits.nodeDownMaxMs + 1) };
    case 'pause-node':
      return {
        kind,
        node: pickNode(random, nodes),
        atMs,
        downMs: pauseMs(random, limits.nodePauseMinMs, limits.nodePauseMaxMs),
      };
    case 'kill-bank':
    case 'kill-database':
      return { kind, atMs, downMs: random.int(limits.downMaxMs + 1) };
    case 'pause-bank':
      return { kind, atMs, downMs: pauseMs(random, 500, limits.pauseMaxMs) };
    default:
      return assertNever(kind, 'disruption');
  }
}

/** The single gateway takes no draw: a single-node plan spends its seed on timing and kinds alone. */
function pickNode(random: Random, nodes: number): number {
  return nodes > 1 ? random.int(nodes) : 0;
}

function pauseMs(random: Random, minMs: number, maxMs: number): number {
  return minMs + random.int(Math.max(1, maxMs - minMs));
}

/** A calm bank a quarter of the time; otherwise some latency and a mix of errors and lost answers. */
function bankFaults(random: Random): BankFaults {
  if (random.chance(0.25)) return noFaults;
  const pick = (values: readonly number[]): number => values[random.int(values.length)] ?? 0;
  return {
    latencyMs: pick([0, 20, 100, 300]),
    declineRate: pick([0, 0, 0.05]),
    errorRate: pick([0, 0.05, 0.2]),
    timeoutRate: pick([0, 0.02, 0.1]),
  };
}

/** What the chaos did to one node. */
export interface NodeDisruptionCounts {
  kills: number;
  pauses: number;
  /** Graceful stops (SIGTERM); `stopsForced` of them lingered past the stop timeout and were killed. */
  stops: number;
  stopsForced: number;
  /** Starts after a kill, a stop or an exit of its own. */
  restarts: number;
}

export interface DisruptionCounts {
  nodeKills: number;
  nodePauses: number;
  nodeStops: number;
  nodeRestarts: number;
  /** The same, node by node (`gateway` in a single-node run, `node-1`… in a cluster). */
  byNode: Record<string, NodeDisruptionCounts>;
  bankKills: number;
  bankRestarts: number;
  bankPauses: number;
  /** SIGKILLs of the database server (its postmaster) and its starts after them. */
  databaseKills: number;
  databaseRestarts: number;
  faultChanges: number;
  /** Processes found dead without the harness killing them, and started again. */
  unexpectedExitsRestarted: number;
}

export function emptyDisruptionCounts(nodeNames: readonly string[]): DisruptionCounts {
  return {
    nodeKills: 0,
    nodePauses: 0,
    nodeStops: 0,
    nodeRestarts: 0,
    byNode: Object.fromEntries(
      nodeNames.map((name) => [name, { kills: 0, pauses: 0, stops: 0, stopsForced: 0, restarts: 0 }]),
    ),
    bankKills: 0,
    bankRestarts: 0,
    bankPauses: 0,
    databaseKills: 0,
    databaseRestarts: 0,
    faultChanges: 0,
    unexpectedExitsRestarted: 0,
  };
}

/** A database server the harness runs itself and may SIGKILL and start again. */
export interface KillableServer {
  /** SIGKILL of the server's main process (PostgreSQL's postmaster), waiting until it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same data and port; resolves once it accepts connections. */
  restart(): Promise<void>;
}

export interface ChaosTargets {
  /** The processes that serve the merchants: the gateway alone, or the nodes of a cluster. */
  readonly nodes: readonly ManagedProcess[];
  readonly bank: ManagedProcess;
  /** Present when the harness owns the database server; the plan's `kill-database` steps need it. */
  readonly database?: KillableServer | undefined;
  /** Sets the bank's faults; false when the bank did not take them. */
  setBankFaults(faults: BankFaults): Promise<boolean>;
  log(line: string): void;
}

/** How often the runner looks for a process that died on its own while waiting for the next step. */
const watchIntervalMs = 250;

/**
 * Carries out the plan until it ends or `stop` aborts. A step under way when `stop` aborts is
 * finished (a killed process is started again, a paused one continued), so the system is whole
 * when this resolves. The bank forgets its faults when it restarts; they are set again.
 */
export async function runChaosPlan(
  plan: ChaosPlan,
  targets: ChaosTargets,
  stop: AbortSignal,
  counts: DisruptionCounts,
): Promise<void> {
  const startedMs = monotonicMs();
  let currentFaults: BankFaults = noFaults;
  let faultsApplied = true;

  const restartBank = async (): Promise<void> => {
    await targets.bank.start();
    counts.bankRestarts++;
    faultsApplied = await targets.setBankFaults(currentFaults);
  };

  const nodeCounts = (node: ManagedProcess): NodeDisruptionCounts => {
    const found = counts.byNode[node.spec.name];
    if (found === undefined) throw new Error(`the counts have no node ${node.spec.name}`);
    return found;
  };
  const restartNode = async (node: ManagedProcess): Promise<void> => {
    await node.start();
    counts.nodeRestarts++;
    nodeCounts(node).restarts++;
  };
  const nodeAt = (index: number): ManagedProcess => {
    const node = targets.nodes[index];
    if (node === undefined) throw new Error(`the plan names node ${index} of ${targets.nodes.length}`);
    return node;
  };

  /**
   * A process that died on its own is started again (and counted), so the run goes on. Only the
   * disruptions loop calls this, between its steps, so it never races a kill-and-restart of its own.
   */
  const reviveCrashed = async (): Promise<void> => {
    if (targets.bank.crashed) {
      targets.log('the bank exited on its own; starting it again');
      await restartBank();
      counts.unexpectedExitsRestarted++;
    }
    for (const node of targets.nodes) {
      if (!node.crashed) continue;
      targets.log(`${node.spec.name} exited on its own; starting it again`);
      await restartNode(node);
      counts.unexpectedExitsRestarted++;
    }
  };

  const waitUntil = async (atMs: number, watch: boolean): Promise<void> => {
    for (;;) {
      const remainingMs = startedMs + atMs - monotonicMs();
      if (remainingMs <= 0 || stop.aborted) return;
      await sleep(Math.min(remainingMs, watchIntervalMs), stop);
      if (watch) await reviveCrashed();
    }
  };

  const faultsLoop = async (): Promise<void> => {
    for (const change of plan.faultChanges) {
      await waitUntil(change.atMs, false);
      if (stop.aborted) return;
      currentFaults = change.faults;
      faultsApplied = await targets.setBankFaults(currentFaults);
      counts.faultChanges++;
    }
  };

  const disruptionsLoop = async (): Promise<void> => {
    for (const step of plan.disruptions) {
      await waitUntil(step.atMs, true);
      if (stop.aborted) return;
      switch (step.kind) {
        case 'kill-node': {
          const node = nodeAt(step.node);
          targets.log(`kill-node ${node.spec.name}, down for ${step.downMs} ms`);
          await node.kill();
          counts.nodeKills++;
          nodeCounts(node).kills++;
          await sleep(step.downMs);
          await restartNode(node);
          break;
        }
        case 'pause-node': {
          const node = nodeAt(step.node);
          targets.log(`pause-node ${node.spec.name} for ${step.downMs} ms`);
          node.pause();
          counts.nodePauses++;
          nodeCounts(node).pauses++;
          await sleep(step.downMs);
          node.resume();
          break;
        }
        case 'stop-node': {
          const node = nodeAt(step.node);
          targets.log(`stop-node ${node.spec.name} (SIGTERM), down for ${step.downMs} ms`);
          const graceful = await node.stop();
          counts.nodeStops++;
          nodeCounts(node).stops++;
          if (!graceful) {
            nodeCounts(node).stopsForced++;
            targets.log(`${node.spec.name} did not stop on SIGTERM in time and was killed`);
          }
          await sleep(step.downMs);
          await restartNode(node);
          break;
        }
        case 'kill-bank':
          targets.log(`kill-bank for ${step.downMs} ms`);
          await targets.bank.kill();
          counts.bankKills++;
          await sleep(step.downMs);
          await restartBank();
          break;
        case 'pause-bank':
          targets.log(`pause-bank for ${step.downMs} ms`);
          targets.bank.pause();
          counts.bankPauses++;
          await sleep(step.downMs);
          targets.bank.resume();
          // A fault change sent while the bank was stopped was lost.
          if (!faultsApplied) faultsApplied = await targets.setBankFaults(currentFaults);
          break;
        case 'kill-database':
          if (targets.database === undefined)
            throw new Error('the plan kills a database the harness does not own');
          targets.log(`kill-database for ${step.downMs} ms`);
          await targets.database.kill();
          counts.databaseKills++;
          await sleep(step.downMs);
          await targets.database.restart();
          counts.databaseRestarts++;
          break;
        default:
          assertNever(step, 'disruption');
      }
    }
    // The plan may end well before the run does: keep watching for crashes until it is over.
    await waitUntil(Number.POSITIVE_INFINITY, true);
  };

  await Promise.all([faultsLoop(), disruptionsLoop()]);
}
