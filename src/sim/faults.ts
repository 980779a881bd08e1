import { assertNever } from '../runtime/assert-never.js';
import type { Random } from '../runtime/random.js';

/**
 * The faults of one seed. Each seed draws its own profile from its own stream, so a batch of seeds
 * covers calm runs, runs with one kind of trouble, and runs where everything goes wrong at once;
 * the same seed always draws the same profile.
 */
export interface FaultProfile {
  /** How long faults are injected before everything is healed. */
  readonly faultPhaseMs: number;
  /** Simulated time advanced per step: a step is drawn from 1..stepMsMax. */
  readonly stepMsMax: number;
  readonly network: NetworkFaults;
  /** A client's answer lost on the way back (the HTTP response): the client retries. */
  readonly clientReplyLossRate: number;
  readonly journal: JournalFaults;
  /**
   * Per step: chance that one entity is stopped outright (`system.stop`). Off by default: nothing in
   * the gateway stops a Merchant or an Executor that way, and nothing revives one so stopped.
   */
  readonly entityStopRate: number;
  /** Entities passivate after this long idle; 0 = never, as the gateway runs them. Off by default. */
  readonly passivateAfterMs: number;
  /** Per step: chance that one entity's next write fails, crashing it into a supervised restart. */
  readonly entityCrashRate: number;
  /** Per step: chance the whole node crashes (actors, projection, in-flight messages all gone). */
  readonly nodeCrashRate: number;
  /** A crashed node comes back after 0..nodeDowntimeMsMax. */
  readonly nodeDowntimeMsMax: number;
  readonly bank: BankFaultProfile;
  /** Faults of a seed that runs a cluster (`nodes` > 1); absent for one node. */
  readonly cluster?: ClusterFaults;
}

/** What can go wrong between the nodes of a cluster and their shared database. */
export interface ClusterFaults {
  /** Pauses of one node (SIGSTOP, then SIGCONT) per simulated minute. */
  readonly pausesPerMinute: number;
  /** Every pause outlasts a lease, so the node's shards are taken over while it is stopped. */
  readonly pauseMsMin: number;
  readonly pauseMsMax: number;
  /** Times per simulated minute the database (cluster store, journal, snapshots) cannot be reached. */
  readonly databaseOutagesPerMinute: number;
  readonly databaseOutageMsMax: number;
  /** Each node's clock is off the database's by a constant drawn from ±clockSkewMsMax. */
  readonly clockSkewMsMax: number;
}

export interface NetworkFaults {
  readonly dropRate: number;
  readonly duplicateRate: number;
  /** Chance a message is held back (which also reorders it against later ones). */
  readonly delayRate: number;
  readonly delayMsMax: number;
  /** Per step: chance a partition starts (every message dropped) for up to partitionMsMax. */
  readonly partitionRate: number;
  readonly partitionMsMax: number;
}

export interface JournalFaults {
  /** Per step: chance a window of failing writes starts, lasting up to windowMsMax. */
  readonly failureWindowRate: number;
  /** Within a window, the chance each append fails. */
  readonly failureRate: number;
  /** Per step: chance a window of slow writes starts. */
  readonly slowWindowRate: number;
  readonly slowWriteMsMax: number;
  readonly windowMsMax: number;
  /** Per step: chance the store goes down (every append fails) for up to outageMsMax. */
  readonly outageRate: number;
  /** Long enough for supervision to give up on entities (10 restarts within a minute). */
  readonly outageMsMax: number;
}

export interface BankFaultProfile {
  /** The gateway's deadline per bank call (the real default is 10 s). */
  readonly requestTimeoutMs: number;
  /** The bank answers 503 and processes nothing (the bank simulator's errorRate). */
  readonly errorRate: number;
  /** A would-be approval is declined do_not_honor (the bank simulator's declineRate). */
  readonly declineRate: number;
  /** The request never reaches the bank: the gateway times out. */
  readonly lostRequestRate: number;
  /** The bank processes the request, the answer never arrives: the gateway times out. */
  readonly lostAnswerRate: number;
  /** The bank processes the request, then the connection breaks (BankConnectionLostError). */
  readonly connectionLostRate: number;
  /** One way latency is drawn from 0..latencyMsMax; past the timeout the call times out. */
  readonly latencyMsMax: number;
  /** Per step: chance an outage starts (every call refused before reaching the bank). */
  readonly outageRate: number;
  readonly outageMsMax: number;
}

export const calmFaults: FaultProfile = {
  faultPhaseMs: 10_000,
  stepMsMax: 100,
  network: {
    dropRate: 0,
    duplicateRate: 0,
    delayRate: 0,
    delayMsMax: 0,
    partitionRate: 0,
    partitionMsMax: 0,
  },
  clientReplyLossRate: 0,
  journal: {
    failureWindowRate: 0,
    failureRate: 0,
    slowWindowRate: 0,
    slowWriteMsMax: 0,
    windowMsMax: 0,
    outageRate: 0,
    outageMsMax: 0,
  },
  entityStopRate: 0,
  passivateAfterMs: 0,
  entityCrashRate: 0,
  nodeCrashRate: 0,
  nodeDowntimeMsMax: 0,
  bank: {
    requestTimeoutMs: 10_000,
    errorRate: 0,
    declineRate: 0,
    lostRequestRate: 0,
    lostAnswerRate: 0,
    connectionLostRate: 0,
    latencyMsMax: 0,
    outageRate: 0,
    outageMsMax: 0,
  },
};

/** Some seeds leave a kind of fault out entirely: bugs that need one fault alone show up too. */
function maybe(random: Random, probability: number, value: () => number): number {
  return random.chance(probability) ? value() : 0;
}

function between(random: Random, min: number, max: number): number {
  return min + random.next() * (max - min);
}

function intBetween(random: Random, min: number, max: number): number {
  return min + random.int(max - min + 1);
}

export function drawFaultProfile(random: Random): FaultProfile {
  return {
    faultPhaseMs: intBetween(random, 15_000, 60_000),
    stepMsMax: intBetween(random, 5, 400),
    network: {
      dropRate: maybe(random, 0.6, () => between(random, 0.01, 0.3)),
      duplicateRate: maybe(random, 0.6, () => between(random, 0.01, 0.3)),
      delayRate: maybe(random, 0.6, () => between(random, 0.05, 0.6)),
      delayMsMax: intBetween(random, 5, 15_000),
      partitionRate: maybe(random, 0.3, () => between(random, 0.001, 0.01)),
      partitionMsMax: intBetween(random, 100, 10_000),
    },
    clientReplyLossRate: maybe(random, 0.4, () => between(random, 0.01, 0.3)),
    journal: {
      failureWindowRate: maybe(random, 0.5, () => between(random, 0.002, 0.02)),
      failureRate: between(random, 0.05, 0.6),
      slowWindowRate: maybe(random, 0.5, () => between(random, 0.002, 0.02)),
      slowWriteMsMax: intBetween(random, 1, 800),
      windowMsMax: intBetween(random, 100, 8_000),
      outageRate: maybe(random, 0.2, () => between(random, 0.0002, 0.002)),
      outageMsMax: intBetween(random, 10_000, 90_000),
    },
    entityStopRate: maybe(random, 0.5, () => between(random, 0.001, 0.02)),
    passivateAfterMs: maybe(random, 0.5, () => intBetween(random, 200, 10_000)),
    entityCrashRate: maybe(random, 0.5, () => between(random, 0.001, 0.02)),
    nodeCrashRate: maybe(random, 0.5, () => between(random, 0.0005, 0.006)),
    nodeDowntimeMsMax: intBetween(random, 0, 10_000),
    bank: {
      requestTimeoutMs: [2_000, 5_000, 10_000][random.int(3)] ?? 10_000,
      errorRate: maybe(random, 0.5, () => between(random, 0.01, 0.4)),
      declineRate: maybe(random, 0.4, () => between(random, 0.01, 0.2)),
      lostRequestRate: maybe(random, 0.4, () => between(random, 0.01, 0.3)),
      lostAnswerRate: maybe(random, 0.5, () => between(random, 0.01, 0.4)),
      connectionLostRate: maybe(random, 0.3, () => between(random, 0.01, 0.2)),
      latencyMsMax: [5, 200, 3_000, 15_000][random.int(4)] ?? 5,
      outageRate: maybe(random, 0.3, () => between(random, 0.001, 0.01)),
      outageMsMax: intBetween(random, 500, 30_000),
    },
  };
}

/** A cluster's faults, drawn from their own stream so a seed's other faults stay as they are. */
export function drawClusterFaults(
  random: Random,
  timing: { readonly leaseTtlMs: number; readonly memberTimeoutMs: number },
): ClusterFaults {
  return {
    pausesPerMinute: maybe(random, 0.7, () => between(random, 1, 6)),
    pauseMsMin: timing.leaseTtlMs + 1,
    pauseMsMax: intBetween(random, timing.leaseTtlMs + 1, timing.memberTimeoutMs * 3),
    databaseOutagesPerMinute: maybe(random, 0.5, () => between(random, 0.5, 3)),
    databaseOutageMsMax: intBetween(random, 100, timing.leaseTtlMs * 2),
    clockSkewMsMax: maybe(random, 0.5, () => intBetween(random, 1, 500)),
  };
}

/** One line per profile, for the trace: what this seed is made of. */
export function describeProfile(profile: FaultProfile): string {
  const round = (value: number): string => (Number.isInteger(value) ? String(value) : value.toFixed(3));
  const flat = (prefix: string, record: object): string[] =>
    Object.entries(record).map(([key, value]) =>
      typeof value === 'number'
        ? `${prefix}${key}=${round(value)}`
        : flat(`${prefix}${key}.`, value).join(' '),
    );
  return flat('', profile).join(' ');
}

/** Kinds of fault a run can leave out (`--without`) or, for those off by default, add (`--with`). */
export const faultKinds = [
  'entity-stop',
  'passivation',
  'entity-crash',
  'node-crash',
  'network',
  'journal',
  'bank',
  'client-reply-loss',
  'node-pause',
  'database-outage',
] as const;
export type FaultKind = (typeof faultKinds)[number];

export function withoutFaults(profile: FaultProfile, kinds: readonly FaultKind[]): FaultProfile {
  let result = profile;
  for (const kind of kinds) {
    switch (kind) {
      case 'entity-stop':
        result = { ...result, entityStopRate: 0 };
        break;
      case 'passivation':
        result = { ...result, passivateAfterMs: 0 };
        break;
      case 'entity-crash':
        result = { ...result, entityCrashRate: 0 };
        break;
      case 'node-crash':
        result = { ...result, nodeCrashRate: 0 };
        break;
      case 'network':
        result = { ...result, network: calmFaults.network };
        break;
      case 'journal':
        result = { ...result, journal: calmFaults.journal };
        break;
      case 'bank':
        // Business declines stay: they are the bank's answers, not faults.
        result = { ...result, bank: { ...calmFaults.bank, declineRate: result.bank.declineRate } };
        break;
      case 'client-reply-loss':
        result = { ...result, clientReplyLossRate: 0 };
        break;
      case 'node-pause':
        if (result.cluster !== undefined)
          result = { ...result, cluster: { ...result.cluster, pausesPerMinute: 0 } };
        break;
      case 'database-outage':
        if (result.cluster !== undefined)
          result = { ...result, cluster: { ...result.cluster, databaseOutagesPerMinute: 0 } };
        break;
      default:
        assertNever(kind);
    }
  }
  return result;
}

/**
 * Faults a seed leaves out unless asked for (`--with`): ways an entity can stop that the gateway as
 * built never uses. They find real trouble (docs/simulation.md, "Findings"), but trouble a
 * production node cannot run into today; they are for whoever turns passivation on.
 */
export const faultsOffByDefault: readonly FaultKind[] = ['entity-stop', 'passivation'];

export function disabledFaults(options: {
  readonly with?: readonly FaultKind[];
  readonly without?: readonly FaultKind[];
}): FaultKind[] {
  const enabled = new Set(options.with ?? []);
  const disabled = faultsOffByDefault.filter((kind) => !enabled.has(kind));
  for (const kind of options.without ?? []) if (!disabled.includes(kind)) disabled.push(kind);
  return disabled;
}
