import type { Violation } from './invariants.js';

/**
 * Bugs the simulator found in the system that are not fixed yet (see docs/simulation.md,
 * "Findings"). They are listed so a run can tell them from new failures — never to hide them: a
 * seed that shows one still fails, and `npm run sim` still exits 1. Remove an entry with its fix.
 */
export interface KnownIssue {
  readonly id: string;
  readonly summary: string;
  /** The invariants it breaks; a seed is explained by it only if every violation is one of these. */
  readonly invariants: readonly string[];
  /** It shows only in seeds where entities were stopped or passivated (faults off by default). */
  readonly needsStops: boolean;
}

export const knownIssues: readonly KnownIssue[] = [
  {
    id: 'stopped-entity-not-revived',
    summary:
      'A Merchant or Executor stopped outright (system.stop, the "entity-stop" fault) is started ' +
      'again only by the next message for it; an Executor with a bank call under way then loses ' +
      'the answer and the order stays validated. Production never stops an entity outright (it ' +
      'passivates, which a busy entity refuses, or the whole node goes down), so this is latent.',
    invariants: [
      'liveness.quiescent',
      'orders.terminal',
      'ledger.charged-not-executed',
      'executor.result-confirmed',
      'readmodel.agrees',
    ],
    needsStops: true,
  },
];

export interface SeedConditions {
  readonly entityStops: number;
  readonly passivation: boolean;
}

/** The known issues that explain every violation of a seed, or undefined if any is unexplained. */
export function explainedBy(
  violations: readonly Violation[],
  conditions: SeedConditions,
): string[] | undefined {
  if (violations.length === 0) return [];
  const stops = conditions.entityStops > 0 || conditions.passivation;
  const applicable = knownIssues.filter((issue) => !issue.needsStops || stops);
  const ids = new Set<string>();
  for (const violation of violations) {
    // "… and N more like it" lines carry the invariant of the lines they summarise.
    const matching = applicable.filter((candidate) => candidate.invariants.includes(violation.invariant));
    if (matching.length === 0) return undefined;
    for (const issue of matching) ids.add(issue.id);
  }
  return [...ids];
}
