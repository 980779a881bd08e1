import { describe, expect, it } from 'vitest';
import { SimulatedClock, SystemClock, settle } from './clock.js';

describe('SimulatedClock', () => {
  it('runs due tasks in time order, ties in the order scheduled, each at its due time', () => {
    const clock = new SimulatedClock(0);
    const runs: string[] = [];
    const record = (name: string) => () => void runs.push(`${name}@${clock.now()}`);
    clock.schedule(30, record('c'));
    clock.schedule(10, record('a1'));
    clock.schedule(20, record('b'));
    clock.schedule(10, record('a2'));
    clock.schedule(10, record('a3'));
    clock.advance(25);
    expect(runs).toEqual(['a1@10', 'a2@10', 'a3@10', 'b@20']);
    expect(clock.now()).toBe(25);
    clock.advance(5);
    expect(runs).toEqual(['a1@10', 'a2@10', 'a3@10', 'b@20', 'c@30']);
  });

  it('runs tasks scheduled by tasks when they fall due within the same advance', () => {
    const clock = new SimulatedClock(0);
    const runs: number[] = [];
    clock.schedule(10, () => {
      runs.push(clock.now());
      clock.schedule(0, () => runs.push(clock.now()));
      clock.schedule(15, () => runs.push(clock.now()));
      clock.schedule(100, () => runs.push(clock.now()));
    });
    clock.advance(50);
    expect(runs).toEqual([10, 10, 25]);
    expect(clock.pendingCount()).toBe(1);
    expect(clock.nextDueAt()).toBe(110);
  });

  it('skips cancelled tasks and treats a negative delay as zero', () => {
    const clock = new SimulatedClock(0);
    const runs: string[] = [];
    const cancelled = clock.schedule(10, () => runs.push('cancelled'));
    clock.schedule(-5, () => runs.push('now'));
    cancelled.cancel();
    expect(clock.pendingCount()).toBe(1);
    clock.advance(100);
    expect(runs).toEqual(['now']);
    expect(clock.nextDueAt()).toBeUndefined();
  });

  it('lets promise continuations run between tasks in advanceAsync, but not in advance', async () => {
    const run = async (useAsync: boolean) => {
      const clock = new SimulatedClock(0);
      const runs: number[] = [];
      clock.schedule(10, () => {
        // Work that continues after an await, then sets a timer: as a persistence write would.
        void Promise.resolve().then(() => clock.schedule(5, () => runs.push(clock.now())));
      });
      if (useAsync) await clock.advanceAsync(20);
      else clock.advance(20);
      await settle();
      return { runs, now: clock.now() };
    };
    expect(await run(true)).toEqual({ runs: [15], now: 20 });
    expect(await run(false)).toEqual({ runs: [], now: 20 });
  });

  it('starts at 2026-01-01 by default', () => {
    expect(new SimulatedClock().now()).toBe(Date.UTC(2026, 0, 1));
  });
});

describe('SystemClock', () => {
  it('reads wall-clock time and can cancel a scheduled callback', () => {
    const clock = new SystemClock();
    const before = Date.now();
    const now = clock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
    let ran = false;
    clock
      .schedule(60_000, () => {
        ran = true;
      })
      .cancel();
    expect(ran).toBe(false);
  });
});
