import { describe, expect, it } from 'vitest';
import type { SupervisionSettings } from './actor.js';
import { ActorSystem } from './actor-system.js';
import { SimulatedClock, settle } from './clock.js';
import type { Logger } from './logger.js';
import { SeededRandom } from './random.js';

/*
 * Supervision is checked on a simulated clock: after a crash the test looks at when the restart
 * task is due, advances to just before it (no new instance yet) and then onto it (a new instance
 * runs). Jitter is off (randomFactor 0) where exact delays are asserted, and on with a seeded
 * Random where only the bounds are.
 */

interface LogRecord {
  readonly level: string;
  readonly message: string;
}

function recordingLogger(records: LogRecord[]): Logger {
  const write =
    (level: string) =>
    (_fields: object, message: string): void => {
      records.push({ level, message });
    };
  const logger: Logger = {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: () => logger,
  };
  return logger;
}

const exactSupervision: SupervisionSettings = {
  minBackoffMs: 100,
  maxBackoffMs: 1_000,
  randomFactor: 0,
  maxRestarts: 3,
  restartWindowMs: 60_000,
};

function newSystem(supervision: Partial<SupervisionSettings> = exactSupervision) {
  const clock = new SimulatedClock();
  const records: LogRecord[] = [];
  const system = new ActorSystem({
    name: 'test',
    clock,
    random: new SeededRandom(42),
    logger: recordingLogger(records),
    defaults: { supervision },
  });
  return { clock, records, system };
}

/** An actor that throws on 'boom' and records `<incarnation>:<message>` for anything else. */
function spawnFragile(system: ActorSystem, name = 'fragile') {
  const received: string[] = [];
  let incarnations = 0;
  const ref = system.spawn<string>(name, () => {
    incarnations++;
    const incarnation = incarnations;
    return {
      receive(message) {
        if (message === 'boom') throw new Error(`boom in incarnation ${incarnation}`);
        received.push(`${incarnation}:${message}`);
      },
    };
  });
  return { ref, received, incarnations: () => incarnations };
}

/** How long until the clock's next task: after a crash, that is the restart backoff. */
function nextDelayMs(clock: SimulatedClock): number | undefined {
  const dueAt = clock.nextDueAt();
  return dueAt === undefined ? undefined : dueAt - clock.now();
}

describe('supervision', () => {
  it('restarts a crashed actor with a new instance after the backoff, keeping queued messages', async () => {
    const { clock, system } = newSystem();
    const fragile = spawnFragile(system);
    fragile.ref.tell('before');
    fragile.ref.tell('boom');
    fragile.ref.tell('after');
    await settle();
    expect(fragile.received).toEqual(['1:before']);
    expect(fragile.incarnations()).toBe(1);
    expect(nextDelayMs(clock)).toBe(100);

    await clock.advanceAsync(99);
    expect(fragile.incarnations()).toBe(1);
    fragile.ref.tell('during backoff');
    expect(system.deadLetterCount).toBe(0);

    await clock.advanceAsync(1);
    expect(fragile.incarnations()).toBe(2);
    // The crashing message is dropped, not redelivered; the rest keep their order.
    expect(fragile.received).toEqual(['1:before', '2:after', '2:during backoff']);
  });

  it('doubles the backoff on each restart and stops for good after maxRestarts', async () => {
    const { clock, records, system } = newSystem();
    const fragile = spawnFragile(system);
    const backoffs: (number | undefined)[] = [];
    for (let crash = 0; crash < 3; crash++) {
      fragile.ref.tell('boom');
      await settle();
      backoffs.push(nextDelayMs(clock));
      await clock.advanceAsync(nextDelayMs(clock) ?? 0);
    }
    expect(backoffs).toEqual([100, 200, 400]);
    expect(fragile.incarnations()).toBe(4);

    fragile.ref.tell('boom');
    const reason = await system.whenStopped(fragile.ref);
    expect(reason).toMatchObject({ kind: 'failed', restarts: 3 });
    expect(reason.kind === 'failed' && reason.error.message).toBe('boom in incarnation 4');
    expect(system.lookup(fragile.ref.path)).toBeUndefined();

    expect(records.filter((record) => record.level === 'warn')).toHaveLength(4);
    const errors = records.filter((record) => record.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toContain('/test/fragile');
    expect(errors[0]?.message).toContain('3 restarts');
    expect(errors[0]?.message).toContain('boom in incarnation 4');
  });

  it('caps the backoff at maxBackoffMs', async () => {
    const { clock, system } = newSystem({ ...exactSupervision, maxBackoffMs: 250, maxRestarts: 10 });
    const fragile = spawnFragile(system);
    const backoffs: (number | undefined)[] = [];
    for (let crash = 0; crash < 4; crash++) {
      fragile.ref.tell('boom');
      await settle();
      backoffs.push(nextDelayMs(clock));
      await clock.advanceAsync(nextDelayMs(clock) ?? 0);
    }
    expect(backoffs).toEqual([100, 200, 250, 250]);
  });

  it('forgets restarts older than the window', async () => {
    const { clock, system } = newSystem({ ...exactSupervision, maxRestarts: 1, restartWindowMs: 1_000 });
    const fragile = spawnFragile(system);
    fragile.ref.tell('boom');
    await settle();
    await clock.advanceAsync(100);
    expect(fragile.incarnations()).toBe(2);
    await clock.advanceAsync(1_000);
    fragile.ref.tell('boom');
    await settle();
    // Back to the first backoff: the earlier restart no longer counts.
    expect(nextDelayMs(clock)).toBe(100);
    await clock.advanceAsync(100);
    expect(fragile.incarnations()).toBe(3);
    fragile.ref.tell('boom');
    expect(await system.whenStopped(fragile.ref)).toMatchObject({ kind: 'failed', restarts: 1 });
  });

  it('keeps each jittered backoff within [delay, delay * (1 + randomFactor)]', async () => {
    const { clock, system } = newSystem({
      ...exactSupervision,
      randomFactor: 0.5,
      maxRestarts: 20,
      maxBackoffMs: 400,
    });
    const fragile = spawnFragile(system);
    const expectedBase = [100, 200, 400, 400, 400, 400];
    for (const base of expectedBase) {
      fragile.ref.tell('boom');
      await settle();
      const delay = nextDelayMs(clock) ?? -1;
      expect(delay).toBeGreaterThanOrEqual(base);
      expect(delay).toBeLessThanOrEqual(base * 1.5);
      await clock.advanceAsync(delay);
    }
  });

  it('treats a rejected async receive as a crash', async () => {
    const { clock, system } = newSystem();
    let incarnations = 0;
    const received: string[] = [];
    const ref = system.spawn<string>('async', () => {
      incarnations++;
      return {
        async receive(message) {
          await Promise.resolve();
          if (message === 'boom') throw new Error('async boom');
          received.push(message);
        },
      };
    });
    ref.tell('boom');
    ref.tell('next');
    await settle();
    expect(received).toEqual([]);
    await clock.advanceAsync(100);
    expect(incarnations).toBe(2);
    expect(received).toEqual(['next']);
  });

  it('restarts an actor whose preStart throws or rejects, holding messages meanwhile', async () => {
    const { clock, system } = newSystem();
    let incarnations = 0;
    const received: string[] = [];
    const ref = system.spawn<string>('bad-start', () => {
      incarnations++;
      const incarnation = incarnations;
      return {
        preStart() {
          if (incarnation === 1) throw new Error('sync preStart failure');
          if (incarnation === 2) return Promise.reject(new Error('async preStart failure'));
        },
        receive: (message) => void received.push(`${incarnation}:${message}`),
      };
    });
    ref.tell('waiting');
    await settle();
    expect(nextDelayMs(clock)).toBe(100);
    await clock.advanceAsync(100);
    expect(incarnations).toBe(2);
    expect(nextDelayMs(clock)).toBe(200);
    await clock.advanceAsync(200);
    expect(incarnations).toBe(3);
    expect(received).toEqual(['3:waiting']);
  });

  it('restarts when the factory itself throws', async () => {
    const { clock, system } = newSystem();
    let calls = 0;
    const received: string[] = [];
    const ref = system.spawn<string>('bad-factory', () => {
      calls++;
      if (calls === 1) throw new Error('factory failure');
      return { receive: (message) => void received.push(message) };
    });
    ref.tell('hello');
    await settle();
    await clock.advanceAsync(100);
    expect(received).toEqual(['hello']);
  });

  it('puts stashed messages back at the head of the mailbox on restart', async () => {
    const { clock, system } = newSystem();
    let incarnations = 0;
    const received: string[] = [];
    const ref = system.spawn<string>('stasher', (context) => {
      incarnations++;
      const stashing = incarnations === 1;
      return {
        receive(message) {
          if (message === 'boom') throw new Error('boom');
          if (stashing) context.stash(message);
          else received.push(message);
        },
      };
    });
    for (const message of ['x', 'y', 'boom', 'z']) ref.tell(message);
    await settle();
    await clock.advanceAsync(100);
    expect(received).toEqual(['x', 'y', 'z']);
  });

  it('calls postStop once, on the last instance, when the actor fails for good', async () => {
    const { system } = newSystem({ ...exactSupervision, maxRestarts: 0 });
    const postStops: string[] = [];
    const ref = system.spawn<string>('once', () => ({
      receive: () => {
        throw new Error('no');
      },
      postStop: (reason) => void postStops.push(reason.kind),
    }));
    ref.tell('anything');
    ref.tell('left over');
    expect(await system.whenStopped(ref)).toMatchObject({ kind: 'failed', restarts: 0 });
    expect(postStops).toEqual(['failed']);
    expect(system.deadLetterCount).toBe(1);
  });

  it('stops at once, without restarting, when stopped during the backoff', async () => {
    const { clock, system } = newSystem();
    const fragile = spawnFragile(system);
    fragile.ref.tell('boom');
    await settle();
    system.stop(fragile.ref);
    expect(await system.whenStopped(fragile.ref)).toEqual({ kind: 'stopped' });
    await clock.advanceAsync(1_000);
    expect(fragile.incarnations()).toBe(1);
    expect(clock.pendingCount()).toBe(0);
  });
});
