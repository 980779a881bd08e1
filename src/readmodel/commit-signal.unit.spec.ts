/**
 * Both sides of the commit signal on one thread and a simulated clock: the main thread's
 * `CommitSignal` and the worker's `CommitWatch` over the same shared memory. Each step is chosen by
 * the test, so the busy polling, the fall asleep after a quiet spell and the wake-up by a nudge are
 * checked exactly.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { CommitSignal, CommitWatch, newCommitSignalMemory } from './commit-signal.js';

function setup() {
  const clock = new SimulatedClock();
  const memory = newCommitSignalMemory();
  const signal = new CommitSignal(memory);
  let grown = 0;
  const watch = new CommitWatch(memory, clock, { busyPollIntervalMs: 10, quietAfterMs: 100 }, () => {
    grown++;
  });
  return { clock, signal, watch, grown: () => grown };
}

describe('commit signal', () => {
  it('a busy worker sees commits within one poll interval, once per change, without messages', () => {
    const { clock, signal, watch, grown } = setup();
    watch.start();
    expect(signal.committed()).toBe(false);
    expect(signal.committed()).toBe(false);
    clock.advance(9);
    expect(grown()).toBe(0);
    clock.advance(1);
    expect(grown()).toBe(1);
    // Nothing new: polls find nothing.
    clock.advance(50);
    expect(grown()).toBe(1);
    expect(signal.committed()).toBe(false);
    clock.advance(10);
    expect(grown()).toBe(2);
  });

  it('falls asleep after quietAfterMs; the next commit says to nudge it, once; the nudge makes it busy', () => {
    const { clock, signal, watch, grown } = setup();
    watch.start();
    clock.advance(99);
    expect(watch.asleep()).toBe(false);
    clock.advance(10);
    expect(watch.asleep()).toBe(true);
    expect(signal.workerAsleep()).toBe(true);
    // Asleep, it no longer polls.
    clock.advance(10_000);
    expect(grown()).toBe(0);

    expect(signal.committed()).toBe(true);
    expect(signal.committed()).toBe(false);
    watch.nudged();
    expect(grown()).toBe(1);
    expect(watch.asleep()).toBe(false);
    // Busy again: the next commit is seen by polling, with no nudge.
    expect(signal.committed()).toBe(false);
    clock.advance(10);
    expect(grown()).toBe(2);
    // A commit during the quiet spell restarts it.
    clock.advance(60);
    signal.committed();
    clock.advance(60);
    expect(grown()).toBe(3);
    expect(watch.asleep()).toBe(false);
  });

  it('a stopped watch neither polls nor answers nudges; a reset signal means a busy worker', () => {
    const { clock, signal, watch, grown } = setup();
    watch.start();
    clock.advance(200);
    expect(signal.workerAsleep()).toBe(true);
    signal.reset();
    expect(signal.workerAsleep()).toBe(false);
    watch.stop();
    signal.committed();
    watch.nudged();
    clock.advance(1_000);
    expect(grown()).toBe(0);
  });
});
