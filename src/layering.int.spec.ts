import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The layering rules of `.dependency-cruiser.cjs` (run on the real tree by `npm run check:deps`)
 * must catch wrong arrows, not merely pass. This spec builds a small tree with one forbidden import
 * per rule, plus allowed ones, runs the real dependency-cruiser with the project's configuration
 * over it, and checks that exactly the forbidden imports are reported, each under its rule.
 */
const run = promisify(execFile);
const projectRoot = path.resolve(import.meta.dirname, '..');

const files: Record<string, string> = {
  'src/runtime/actor.ts': "import '../store/journal.js';\n",
  'src/runtime/clock.ts': 'export const now = 0;\n',
  'src/store/journal.ts': 'export const journal = 1;\n',
  'src/store/sqlite/sqlite-journal.ts': "import '../journal.js';\n",
  'src/delivery/outbox.ts': "import '../persistence/entity.js';\nimport '../runtime/clock.js';\n",
  'src/persistence/entity.ts':
    "import '../store/journal.js';\nimport '../delivery/outbox.js';\nimport '../store/sqlite/sqlite-journal.js';\n",
  'src/payments/merchant.ts': "import '../persistence/entity.js';\nimport '../api/app.js';\n",
  'src/payments/executor.ts': "import '../bank/bank-client.js';\n",
  'src/api/app.ts': "import '../payments/merchant.js';\n",
  'src/bank/bank-client.ts': 'export const client = 1;\n',
  'src/bank/ledger.ts': "import '../store/journal.js';\n",
  'src/node/assemble-node.ts': "import '../store/sqlite/sqlite-journal.js';\n",
  'src/cli/main.ts': "import '../node/assemble-node.js';\nimport '../testing/kit.js';\n",
  'src/sim/simulation.ts': "import '../cli/main.js';\nimport '../node/assemble-node.js';\n",
  'src/testing/kit.ts':
    "import { it } from 'vitest';\nimport '../store/sqlite/sqlite-journal.js';\nexport { it };\n",
  'src/payments/merchant.unit.spec.ts': "import '../testing/kit.js';\nimport '../api/app.js';\n",
  'src/store/contract.ts': "import { describe } from 'vitest';\nexport { describe };\n",
  'src/payments/merchant-decider.ts': 'export const decide = 1;\n',
  'src/payments/merchant-events.ts': 'export const events = 1;\n',
  'src/webhooks/webhook-event.ts':
    "import '../runtime/clock.js';\nimport '../payments/merchant-events.js';\nimport '../payments/merchant-decider.js';\n",
  'src/webhooks/delivery.ts':
    "import '../store/journal.js';\nimport '../store/sqlite/sqlite-journal.js';\nimport '../api/app.js';\n",
  'src/webhooks/delivery.unit.spec.ts': "import '../api/app.js';\n",
};

const expected = [
  'runtime-imports-nothing-of-the-project: src/runtime/actor.ts → src/store/journal.ts',
  'delivery-below-persistence: src/delivery/outbox.ts → src/persistence/entity.ts',
  'persistence-and-delivery-know-no-store-payments-or-http: src/persistence/entity.ts → src/store/sqlite/sqlite-journal.ts',
  'payments-is-the-domain: src/payments/merchant.ts → src/api/app.ts',
  'payments-is-the-domain: src/payments/executor.ts → src/bank/bank-client.ts',
  'bank-simulator-shares-nothing-with-the-store: src/bank/ledger.ts → src/store/journal.ts',
  'node-assembly-takes-its-stores-and-transport: src/node/assemble-node.ts → src/store/sqlite/sqlite-journal.ts',
  'only-tests-use-test-kits: src/cli/main.ts → src/testing/kit.ts',
  'only-tests-use-test-kits: src/store/contract.ts → node_modules/vitest/dist/index.d.ts',
  'simulator-drives-the-node-not-the-process: src/sim/simulation.ts → src/cli/main.ts',
  'webhooks-are-self-contained: src/webhooks/webhook-event.ts → src/payments/merchant-decider.ts',
  'webhooks-are-self-contained: src/webhooks/delivery.ts → src/store/sqlite/sqlite-journal.ts',
  'webhooks-are-self-contained: src/webhooks/delivery.ts → src/api/app.ts',
].sort();

describe('the dependency rules', () => {
  let root: string;

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), 'remit-layering-'));
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    writeFileSync(
      path.join(root, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }),
    );
    symlinkSync(path.join(projectRoot, 'node_modules'), path.join(root, 'node_modules'));
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('report every forbidden arrow under its rule, and nothing else', async () => {
    const { stdout } = await run(
      path.join(projectRoot, 'node_modules/.bin/depcruise'),
      ['src', '--config', path.join(projectRoot, '.dependency-cruiser.cjs'), '--output-type', 'json'],
      { cwd: root, maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const result = JSON.parse(stdout) as {
      summary: { violations: Array<{ rule: { name: string }; from: string; to: string }> };
    };
    const reported = result.summary.violations
      .map((v) => `${v.rule.name}: ${v.from} → ${v.to.replace(/^.*node_modules\//, 'node_modules/')}`)
      .sort();
    expect(reported).toEqual(expected);
  });
});
