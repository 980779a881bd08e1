import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../runtime/clock.js';
import { generateWebhookSecret, signWebhook } from './signature.js';
import { serializeWebhookEvent, webhookEvent, webhookEventIdFor } from './webhook-event.js';

/**
 * The README's example receiver, run as written. The test takes the code block from the
 * "Verifying webhook signatures" section of README.md, puts it beside a copy of verify.ts (as a
 * merchant would), and runs it as its own process through tsx. Then it sends deliveries signed
 * the way Remit signs them: an authentic one twice (handled once, answered 200 both times), a
 * tampered one, a stale one and one signed with another secret (all refused with their reason).
 * The receiver's clock is the real one, so the signatures use the real time too.
 */
const projectRoot = path.resolve(import.meta.dirname, '../..');
const readyTimeoutMs = 20_000;

function readmeReceiver(): string {
  const readme = readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
  const section = readme.split('\n## Verifying webhook signatures\n')[1]?.split('\n## ')[0] ?? '';
  const code = section.match(/```ts\n([\s\S]*?)```/)?.[1];
  if (code === undefined)
    throw new Error('README.md has no receiver example under "Verifying webhook signatures"');
  return code;
}

describe("the README's webhook receiver", () => {
  const secret = generateWebhookSecret();
  let directory: string;
  let receiver: ChildProcess;
  let output = '';
  let url: string;

  /** Resolves once the receiver's output matches, or fails with what it printed. */
  function outputMatching(pattern: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const match = output.match(pattern);
        if (match === null) return false;
        receiver.stdout?.off('data', check);
        clearTimeout(timer);
        resolve(match);
        return true;
      };
      const timer = setTimeout(() => {
        receiver.stdout?.off('data', check);
        reject(new Error(`the receiver never printed ${pattern}:\n${output}`));
      }, readyTimeoutMs);
      if (!check()) receiver.stdout?.on('data', check);
    });
  }

  beforeAll(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'remit-readme-receiver-'));
    copyFileSync(path.join(import.meta.dirname, 'verify.ts'), path.join(directory, 'verify.ts'));
    writeFileSync(path.join(directory, 'receiver.ts'), readmeReceiver());
    receiver = spawn(process.execPath, ['--import', 'tsx', path.join(directory, 'receiver.ts')], {
      cwd: projectRoot,
      env: { ...process.env, REMIT_WEBHOOK_SECRET: secret, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
    };
    receiver.stdout?.on('data', collect);
    receiver.stderr?.on('data', collect);
    const [, port] = await outputMatching(/listening .*port: (\d+)/);
    url = `http://127.0.0.1:${port}/`;
  });

  afterAll(() => {
    if (receiver.exitCode === null && receiver.signalCode === null) receiver.kill('SIGTERM');
    rmSync(directory, { recursive: true, force: true });
  });

  function event(orderId: string, type: 'order.executed' | 'order.declined') {
    return serializeWebhookEvent(
      webhookEvent({
        merchantId: 'merchant-a',
        type,
        subjectId: orderId,
        createdAtMs: systemClock.now(),
        data: { id: orderId, status: type.slice('order.'.length), amount: 1250, currency: 'EUR' },
      }),
    );
  }

  async function deliver(body: string, header: string): Promise<{ status: number; text: string }> {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Remit-Signature': header },
      body,
    });
    return { status: response.status, text: await response.text() };
  }

  const nowSeconds = (): number => Math.floor(systemClock.now() / 1000);

  it('handles an authentic event once, however often it is delivered', async () => {
    const body = event('ord_readme_one', 'order.executed');
    const id = webhookEventIdFor({
      merchantId: 'merchant-a',
      type: 'order.executed',
      subjectId: 'ord_readme_one',
    });
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const header = signWebhook({ secret, body, timestampSeconds: nowSeconds() });
      expect(await deliver(body, header)).toEqual({ status: 200, text: '' });
    }
    // The receiver handles requests one after another, so once the next event's line is out,
    // every line the duplicates could have caused is out too.
    const next = event('ord_readme_two', 'order.declined');
    expect(
      (await deliver(next, signWebhook({ secret, body: next, timestampSeconds: nowSeconds() }))).status,
    ).toBe(200);
    await outputMatching(/handled order\.declined evt_/);
    expect(output.split('\n').filter((line) => line === `handled order.executed ${id}`)).toHaveLength(1);
  });

  it('accepts a delivery signed during a secret rotation', async () => {
    const body = event('ord_readme_three', 'order.executed');
    const header = signWebhook({
      secret: generateWebhookSecret(),
      expiringSecret: secret,
      body,
      timestampSeconds: nowSeconds(),
    });
    expect((await deliver(body, header)).status).toBe(200);
  });

  it('refuses a tampered body, a stale signature, another secret and no signature', async () => {
    const body = event('ord_readme_four', 'order.executed');
    const header = signWebhook({ secret, body, timestampSeconds: nowSeconds() });
    expect(await deliver(body.replace('1250', '125000'), header)).toEqual({
      status: 400,
      text: 'no_matching_signature',
    });
    const stale = signWebhook({ secret, body, timestampSeconds: nowSeconds() - 3600 });
    expect(await deliver(body, stale)).toEqual({ status: 400, text: 'timestamp_outside_tolerance' });
    const other = signWebhook({ secret: generateWebhookSecret(), body, timestampSeconds: nowSeconds() });
    expect(await deliver(body, other)).toEqual({ status: 400, text: 'no_matching_signature' });
    expect(await deliver(body, 'v1=')).toEqual({ status: 400, text: 'malformed_header' });
    expect(output).not.toContain('ord_readme_four');
  });
});
