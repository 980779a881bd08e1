/**
 * A node's boot asks every Merchant for its configuration; an ask lost on the way (the shard moved
 * while it travelled) must not end the node, so boot asks again, a bounded number of times.
 */
import { describe, expect, it } from 'vitest';
import { AskTimeoutError } from '../runtime/actor.js';
import { bootPatiently } from './node.js';

const limits = { attemptTimeoutMs: 10_000, attemptsMax: 3 };

function recordingLogger(): { warnings: string[]; warn: (fields: object, message: string) => void } {
  const warnings: string[] = [];
  return { warnings, warn: (_fields, message) => warnings.push(message) };
}

describe('bootPatiently', () => {
  it('asks again after a timed-out attempt, with the attempt timeout each time', async () => {
    const timeouts: number[] = [];
    const logger = recordingLogger();
    await bootPatiently(
      async (timeoutMs) => {
        timeouts.push(timeoutMs);
        if (timeouts.length === 1) throw new AskTimeoutError('entity:merchant/merchant-b', timeoutMs);
      },
      limits,
      logger,
    );
    expect(timeouts).toEqual([10_000, 10_000]);
    expect(logger.warnings).toHaveLength(1);
  });

  it('gives up after the last attempt with the last timeout', async () => {
    let attempts = 0;
    const boot = async (timeoutMs: number): Promise<void> => {
      attempts++;
      throw new AskTimeoutError('entity:merchant/merchant-b', timeoutMs);
    };
    await expect(bootPatiently(boot, limits, recordingLogger())).rejects.toBeInstanceOf(AskTimeoutError);
    expect(attempts).toBe(3);
  });

  it('ends at once on any other failure', async () => {
    let attempts = 0;
    const boot = async (): Promise<void> => {
      attempts++;
      throw new Error('the database refused the statement');
    };
    await expect(bootPatiently(boot, limits, recordingLogger())).rejects.toThrow('refused');
    expect(attempts).toBe(1);
  });
});
