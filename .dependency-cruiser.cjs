// The layering of DESIGN.md §3, checked on every `npm test` (`npm run check:deps`). Each rule names
// an arrow that must not exist; tests (`*.spec.ts`), test fixtures and the test kits in
// src/testing/ are exempt where the rule says so.
const tests = '(\\.spec\\.ts$|\\.fixture\\.ts$|^src/testing/)';
const storeImplementations = '^src/store/(memory|sqlite|postgres)/';
const httpAndDatabaseDrivers = '(^|/)node_modules/(fastify|@fastify/[^/]+|undici|pg|better-sqlite3)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'runtime-imports-nothing-of-the-project',
      comment: 'The actor runtime is the bottom layer: it knows no entity, store, payment or HTTP.',
      severity: 'error',
      from: { path: '^src/runtime/', pathNot: tests },
      to: { path: '^src/', pathNot: '^src/runtime/' },
    },
    {
      name: 'delivery-below-persistence',
      comment:
        'delivery/ is used by persistence/ (outboxes, receivers), so it may not use persistence/ back.',
      severity: 'error',
      from: { path: '^src/delivery/', pathNot: tests },
      to: { path: '^src/persistence/' },
    },
    {
      name: 'persistence-and-delivery-know-no-store-payments-or-http',
      comment: 'They work against the Journal and SnapshotStore interfaces, never an implementation.',
      severity: 'error',
      from: { path: '^src/(persistence|delivery)/', pathNot: tests },
      to: {
        path: [
          storeImplementations,
          '^src/(payments|readmodel|node|api|bank|cli|sim|chaos|cluster)/',
          httpAndDatabaseDrivers,
        ],
      },
    },
    {
      name: 'payments-is-the-domain',
      comment:
        'The domain uses runtime, persistence and delivery; the bank client, stores, read side and API are wired around it.',
      severity: 'error',
      from: { path: '^src/payments/', pathNot: tests },
      to: {
        path: [
          storeImplementations,
          '^src/(readmodel|node|api|bank|cli|sim|chaos|cluster)/',
          httpAndDatabaseDrivers,
        ],
      },
    },
    {
      name: 'node-assembly-takes-its-stores-and-transport',
      comment: 'assembleNode is given its stores, bank port and messenger; it opens none itself.',
      severity: 'error',
      from: { path: '^src/node/', pathNot: tests },
      to: { path: [storeImplementations, '^src/(api|bank|cli|sim|chaos)/', httpAndDatabaseDrivers] },
    },
    {
      name: 'cluster-knows-no-domain-or-http',
      comment:
        'cluster/ (membership, leases, shards) uses runtime/ and the store/ interfaces and pools; the domain, the node assembly and HTTP are wired around it.',
      severity: 'error',
      from: { path: '^src/cluster/', pathNot: tests },
      to: {
        path: [
          '^src/(payments|readmodel|node|api|bank|cli|sim|chaos)/',
          '(^|/)node_modules/(fastify|@fastify/[^/]+|undici|better-sqlite3)/',
        ],
      },
    },
    {
      name: 'store-knows-no-cluster',
      comment: 'store/ defines the Fence and FenceCheck it checks; the cluster implements them, not the reverse.',
      severity: 'error',
      from: { path: '^src/store/', pathNot: tests },
      to: { path: '^src/cluster/' },
    },
    {
      name: 'webhooks-are-self-contained',
      comment:
        'webhooks/ (signing, URL policy, retry schedule, event envelope) takes rendered data and store interfaces; it uses no store implementation, no HTTP API or CLI, no bank simulator and no payments decider.',
      severity: 'error',
      from: { path: '^src/webhooks/', pathNot: tests },
      to: {
        path: [storeImplementations, '^src/(api|cli|bank|sim|chaos)/', '^src/payments/[^/]*-decider\\.ts$'],
      },
    },
    {
      name: 'only-tests-use-test-kits',
      comment: 'src/testing/ and vitest are for tests; nothing that runs in production imports them.',
      severity: 'error',
      from: { path: '^(src|bench)/', pathNot: tests },
      to: { path: ['^src/testing/', '(^|/)node_modules/(vitest|@vitest/[^/]+)/'] },
    },
    {
      name: 'bank-simulator-shares-nothing-with-the-store',
      comment:
        "The bank simulator stands for an outside system: its ledger is its own, not the gateway's store.",
      severity: 'error',
      from: { path: '^src/bank/', pathNot: tests },
      to: { path: '^src/store/' },
    },
    {
      name: 'simulator-drives-the-node-not-the-process',
      comment: 'The simulator runs the assembled node; the CLI and the HTTP layer are outside it.',
      severity: 'error',
      from: { path: '^src/sim/', pathNot: tests },
      to: { path: '^src/(cli|api)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
    },
  },
};
