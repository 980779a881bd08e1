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

export type Disruption =
  | { readonly kind: 'kill-gateway'; readonly atMs: number; readonly downMs: number }
  | { readonly kind: 'pause-gateway'; readonly atMs: number; readonly downMs: number }
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
}

export const defaultPlanLimits: PlanLimits = {
  disruptionsMax: 10_000,
  faultChangesMax: 10_000,
  faultIntervalMs: 2_000,
  downMaxMs: 1_000,
  pauseMaxMs: 5_000,
};

/** What the plan may disrupt besides the gateway and the bank. */
export interface PlanTargets {
  /** The harness runs the database server itself, so it may SIGKILL it and start it again. */
  readonly database: boolean;
}

/**
 * Disruptions come every 0.5..1.5 × `killIntervalMs`. The first is always a gateway SIGKILL, so
 * that every run — even a short one — exercises recovery from a crash; the next ones are the
 * other kinds in a seeded order, so a run with as many disruptions as kinds has each kind at
 * least once; after that, most kill the gateway and the rest kill or pause the bank, pause the
 * gateway or (when the harness owns it) kill the database server.
 */
export function planChaos(
  random: Random,
  durationMs: number,
  killIntervalMs: number,
  limits: PlanLimits = defaultPlanLimits,
  targets: PlanTargets = { database: false },
): ChaosPlan {
  const others = targets.database ? [...otherKinds, 'kill-database' as const] : otherKinds;
  const firstKinds: Disruption['kind'][] = ['kill-gateway', ...shuffled(random, others)];
  const disruptions: Disruption[] = [];
  let atMs = killIntervalMs * (0.5 + random.next());
  while (atMs < durationMs && disruptions.length < limits.disruptionsMax) {
    const kind = firstKinds[disruptions.length] ?? randomKind(random, targets);
    disruptions.push(disruption(random, kind, atMs, limits));
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

const otherKinds: readonly Disruption['kind'][] = ['pause-gateway', 'kill-bank', 'pause-bank'];

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
    return randomKind(random, { database: false });
  }
  if (draw < 0.55) return 'kill-gateway';
  if (draw < 0.7) return 'pause-gateway';
  if (draw < 0.85) return 'kill-bank';
  return 'pause-bank';
}

function disruption(random: Random, kind: Disruption['kind'], atMs: number, limits: PlanLimits): Disruption {
  switch (kind) {
    case 'kill-gateway':
    case 'kill-bank':
    case 'kill-database':
      return { kind, atMs, downMs: random.int(limits.downMaxMs + 1) };
    case 'pause-gateway':
    case 'pause-bank':
      return { kind, atMs, downMs: pauseMs(random, limits) };
    default:
      return assertNever(kind, 'disruption');
  }
}

function pauseMs(random: Random, limits: PlanLimits): number {
  return 500 + random.int(Math.max(1, limits.pauseMaxMs - 500));
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

export interface DisruptionCounts {
  gatewayKills: number;
  gatewayRestarts: number;
  gatewayPauses: number;
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

export function emptyDisruptionCounts(): DisruptionCounts {
  return {
    gatewayKills: 0,
    gatewayRestarts: 0,
    gatewayPauses: 0,
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
  readonly gateway: ManagedProcess;
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
    if (targets.gateway.crashed) {
      targets.log('the gateway exited on its own; starting it again');
      await targets.gateway.start();
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
      targets.log(`${step.kind} for ${step.downMs} ms`);
      switch (step.kind) {
        case 'kill-gateway':
          await targets.gateway.kill();
          counts.gatewayKills++;
          await sleep(step.downMs);
          await targets.gateway.start();
          counts.gatewayRestarts++;
          break;
        case 'pause-gateway':
          targets.gateway.pause();
          counts.gatewayPauses++;
          await sleep(step.downMs);
          targets.gateway.resume();
          break;
        case 'kill-bank':
          await targets.bank.kill();
          counts.bankKills++;
          await sleep(step.downMs);
          await restartBank();
          break;
        case 'pause-bank':
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
