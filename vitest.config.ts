import { defineConfig } from 'vitest/config';

// Tiers are named in the file name (*.unit.spec.ts, *.int.spec.ts, *.e2e.spec.ts, *.sim.spec.ts);
// `vitest run --project unit` runs one tier.
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['src/**/*.unit.spec.ts', 'bench/**/*.unit.spec.ts'] },
      },
      {
        extends: true,
        // One embedded PostgreSQL per run for the stores' integration tests (postgres-global-setup.ts).
        test: {
          name: 'int',
          include: ['src/**/*.int.spec.ts'],
          globalSetup: ['src/testing/postgres-global-setup.ts'],
        },
      },
      {
        extends: true,
        // The gateway's suite runs on PostgreSQL too, on the run's one server.
        test: {
          name: 'e2e',
          include: ['src/**/*.e2e.spec.ts'],
          globalSetup: ['src/testing/postgres-global-setup.ts'],
        },
      },
      { extends: true, test: { name: 'sim', include: ['src/**/*.sim.spec.ts'] } },
    ],
  },
});
