import { describe, expect, it } from 'vitest';
import { assignRoles, bankReplicasMax } from './cluster-roles.js';

const banks = ['bank-a', 'bank-b', 'bank-c'];

describe('assignRoles', () => {
  it('gives three nodes two banks each, every bank on two nodes', () => {
    expect(assignRoles(3, banks)).toEqual([
      ['bank-a', 'bank-b'],
      ['bank-a', 'bank-c'],
      ['bank-b', 'bank-c'],
    ]);
  });

  it('puts one node in charge of every bank, and two nodes both of every bank', () => {
    expect(assignRoles(1, banks)).toEqual([banks]);
    expect(assignRoles(2, banks)).toEqual([banks, banks]);
  });

  it('serves every bank by min(2, N) distinct nodes, spread evenly, for 1 to 16 nodes', () => {
    for (let nodeCount = 1; nodeCount <= 16; nodeCount++) {
      const roles = assignRoles(nodeCount, banks);
      expect(roles).toHaveLength(nodeCount);
      for (const bank of banks) {
        const serving = roles.filter((nodeRoles) => nodeRoles.includes(bank));
        expect(serving, `${bank} with ${nodeCount} nodes`).toHaveLength(Math.min(bankReplicasMax, nodeCount));
      }
      const counts = roles.map((nodeRoles) => nodeRoles.length);
      expect(Math.max(...counts) - Math.min(...counts), `spread over ${nodeCount} nodes`).toBeLessThanOrEqual(
        1,
      );
      for (const nodeRoles of roles) expect(new Set(nodeRoles).size).toBe(nodeRoles.length);
    }
  });

  it('refuses a cluster of no nodes', () => {
    expect(() => assignRoles(0, banks)).toThrow(RangeError);
  });
});
