/**
 * The chaos plan is a pure function of the seed: the same seed gives the same kills, pauses and
 * bank faults; every run starts with a node SIGKILL and, given as many disruptions as kinds, has
 * each kind; everything happens within the duration and within the plan's bounds; a cluster's
 * plan picks among its nodes and pauses them past a lease.
 */
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../runtime/random.js';
import { clusterPlanLimits, defaultPlanLimits, planChaos } from './faults.js';

describe('planChaos', () => {
  it('gives the same plan for the same seed and another for another seed', () => {
    const plan = planChaos(new SeededRandom(7), 60_000, 5_000);
    expect(planChaos(new SeededRandom(7), 60_000, 5_000)).toEqual(plan);
    expect(planChaos(new SeededRandom(8), 60_000, 5_000)).not.toEqual(plan);
  });

  it('starts with a node SIGKILL and has every kind of disruption once there are four', () => {
    for (let seed = 0; seed < 50; seed++) {
      const plan = planChaos(new SeededRandom(seed), 30_000, 3_000);
      expect(plan.disruptions[0]?.kind).toBe('kill-node');
      expect(new Set(plan.disruptions.slice(0, 4).map((step) => step.kind))).toEqual(
        new Set(['kill-node', 'pause-node', 'kill-bank', 'pause-bank']),
      );
    }
  });

  it('kills the database only when the harness owns it, and early when it does', () => {
    for (let seed = 0; seed < 50; seed++) {
      const without = planChaos(new SeededRandom(seed), 60_000, 2_000);
      expect(without.disruptions.some((step) => step.kind === 'kill-database')).toBe(false);
      const owned = planChaos(new SeededRandom(seed), 60_000, 2_000, defaultPlanLimits, {
        database: true,
        nodes: 1,
      });
      expect(owned.disruptions[0]?.kind).toBe('kill-node');
      expect(new Set(owned.disruptions.slice(0, 5).map((step) => step.kind))).toEqual(
        new Set(['kill-node', 'pause-node', 'kill-bank', 'pause-bank', 'kill-database']),
      );
    }
  });

  it('keeps every step inside the duration, in time order, with bounded downtime', () => {
    const plan = planChaos(new SeededRandom(3), 20_000, 2_000);
    const times = plan.disruptions.map((step) => step.atMs);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times.every((atMs) => atMs > 0 && atMs < 20_000)).toBe(true);
    expect(plan.disruptions.every((step) => step.downMs <= defaultPlanLimits.pauseMaxMs)).toBe(true);
    expect(plan.faultChanges[0]?.atMs).toBe(0);
    expect(plan.faultChanges.every((change) => change.atMs < 20_000)).toBe(true);
  });

  it('stops at its limits however short the interval', () => {
    const plan = planChaos(new SeededRandom(1), 3_600_000, 1, {
      ...defaultPlanLimits,
      disruptionsMax: 10,
      faultChangesMax: 5,
    });
    expect(plan.disruptions).toHaveLength(10);
    expect(plan.faultChanges).toHaveLength(5);
  });

  it('disrupts the single gateway as node 0 and never stops it gracefully', () => {
    for (let seed = 0; seed < 50; seed++) {
      const plan = planChaos(new SeededRandom(seed), 60_000, 2_000);
      for (const step of plan.disruptions) {
        expect(step.kind).not.toBe('stop-node');
        if ('node' in step) expect(step.node).toBe(0);
      }
    }
  });

  it('stops cluster nodes gracefully too, picks every node, and pauses them past a lease', () => {
    const timing = { leaseTtlMs: 4_000, heartbeatIntervalMs: 1_000 };
    const limits = clusterPlanLimits(timing);
    const picked = new Set<number>();
    for (let seed = 0; seed < 50; seed++) {
      const plan = planChaos(new SeededRandom(seed), 120_000, 3_000, limits, { database: false, nodes: 3 });
      expect(plan.disruptions[0]?.kind).toBe('kill-node');
      expect(new Set(plan.disruptions.slice(0, 5).map((step) => step.kind))).toEqual(
        new Set(['kill-node', 'pause-node', 'stop-node', 'kill-bank', 'pause-bank']),
      );
      for (const step of plan.disruptions) {
        if (!('node' in step)) continue;
        expect(step.node).toBeGreaterThanOrEqual(0);
        expect(step.node).toBeLessThan(3);
        picked.add(step.node);
        if (step.kind === 'pause-node') {
          expect(step.downMs).toBeGreaterThan(timing.leaseTtlMs + timing.heartbeatIntervalMs);
          expect(step.downMs).toBeLessThanOrEqual(limits.nodePauseMaxMs);
        } else {
          expect(step.downMs).toBeLessThanOrEqual(limits.nodeDownMaxMs);
        }
      }
    }
    expect(picked).toEqual(new Set([0, 1, 2]));
  });
});
