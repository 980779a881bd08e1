import { describe, expect, it } from 'vitest';
import type { StopReason } from './actor.js';
import { ActorSystem } from './actor-system.js';
import { SimulatedClock, settle } from './clock.js';
import { SeededRandom } from './random.js';

/*
 * Passivation on a simulated clock: an actor with passivateAfterMs 1000 records when it stopped
 * (relative to spawn) so each test can say exactly when an idle actor went away, and what kept it.
 */

const passivateAfterMs = 1_000;

function newIdleActor(
  options: { canPassivate?: () => boolean; receive?: (message: string) => void | Promise<void> } = {},
) {
  const clock = new SimulatedClock();
  const start = clock.now();
  const system = new ActorSystem({ name: 'test', clock, random: new SeededRandom(5) });
  const stops: { reason: StopReason; atMs: number }[] = [];
  const ref = system.spawn<string>(
    'idle',
    () => ({
      receive: options.receive ?? (() => {}),
      ...(options.canPassivate === undefined ? {} : { canPassivate: options.canPassivate }),
      postStop: (reason) => void stops.push({ reason, atMs: clock.now() - start }),
    }),
    { passivateAfterMs },
  );
  return { clock, system, ref, stops };
}

describe('passivation', () => {
  it('stops an actor idle for passivateAfterMs with reason passivated', async () => {
    const { clock, system, ref, stops } = newIdleActor();
    await settle();
    await clock.advanceAsync(999);
    expect(stops).toEqual([]);
    expect(system.lookup(ref.path)).toBe(ref);
    await clock.advanceAsync(1);
    expect(stops).toEqual([{ reason: { kind: 'passivated' }, atMs: 1_000 }]);
    expect(await system.whenStopped(ref)).toEqual({ kind: 'passivated' });
    expect(system.lookup(ref.path)).toBeUndefined();
  });

  it('counts idle time from the last message', async () => {
    const { clock, ref, stops } = newIdleActor();
    await settle();
    await clock.advanceAsync(600);
    ref.tell('keep alive');
    await settle();
    await clock.advanceAsync(999);
    expect(stops).toEqual([]);
    await clock.advanceAsync(1);
    expect(stops).toEqual([{ reason: { kind: 'passivated' }, atMs: 1_600 }]);
  });

  it('does not count messages from its own timers as activity', async () => {
    const clock = new SimulatedClock();
    const start = clock.now();
    const system = new ActorSystem({ name: 'test', clock, random: new SeededRandom(5) });
    const stops: number[] = [];
    let ticks = 0;
    system.spawn<string>(
      'ticking',
      (context) => ({
        preStart: () => context.timers.startPeriodic('tick', 'tick', 100),
        receive: () => {
          ticks++;
        },
        postStop: () => void stops.push(clock.now() - start),
      }),
      { passivateAfterMs },
    );
    await settle();
    await clock.advanceAsync(2_000);
    expect(ticks).toBeGreaterThanOrEqual(9);
    expect(stops).toEqual([1_000]);
  });

  it('postpones passivation while canPassivate says no', async () => {
    let allowed = false;
    const { clock, stops } = newIdleActor({ canPassivate: () => allowed });
    await settle();
    await clock.advanceAsync(5_000);
    expect(stops).toEqual([]);
    allowed = true;
    await clock.advanceAsync(1_000);
    expect(stops).toEqual([{ reason: { kind: 'passivated' }, atMs: 6_000 }]);
  });

  it('never passivates an actor in the middle of an async receive', async () => {
    let release: () => void = () => {};
    const { clock, ref, stops } = newIdleActor({
      receive: () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    });
    ref.tell('long work');
    await settle();
    await clock.advanceAsync(3_000);
    expect(stops).toEqual([]);
    release();
    await settle();
    await clock.advanceAsync(999);
    expect(stops).toEqual([]);
    await clock.advanceAsync(1);
    expect(stops.map((stop) => stop.reason.kind)).toEqual(['passivated']);
  });

  it('costs one clock task per idle period, not one per message', async () => {
    const { clock, ref } = newIdleActor();
    await settle();
    for (let index = 0; index < 100; index++) ref.tell('message');
    await settle();
    expect(clock.pendingCount()).toBe(1);
  });
});
