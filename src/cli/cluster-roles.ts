/** How many nodes serve each bank, when there are that many: one may die and the bank is still served. */
export const bankReplicasMax = 2;

/**
 * The roles of `nodeCount` nodes (index 0 is `node-1`): every bank on `min(bankReplicasMax,
 * nodeCount)` distinct nodes, and the nodes' counts of roles differing by one at most.
 *
 * Bank `b`'s replicas take the slots `b·r … b·r + r − 1` of one round over the nodes (slot `s` is
 * node `s mod nodeCount`): consecutive slots are distinct nodes while `r ≤ nodeCount`, and a round
 * deals slots out evenly. With three nodes and banks a, b, c: node-1 a,b; node-2 a,c; node-3 b,c.
 */
export function assignRoles(nodeCount: number, banks: readonly string[]): string[][] {
  if (!Number.isInteger(nodeCount) || nodeCount < 1)
    throw new RangeError(`nodeCount must be a positive integer, got ${nodeCount}`);
  const replicas = Math.min(bankReplicasMax, nodeCount);
  const roles = Array.from({ length: nodeCount }, (): string[] => []);
  banks.forEach((bank, bankIndex) => {
    for (let replica = 0; replica < replicas; replica++) {
      roles[(bankIndex * replicas + replica) % nodeCount]?.push(bank);
    }
  });
  return roles.map((nodeRoles) => [...nodeRoles].sort());
}
