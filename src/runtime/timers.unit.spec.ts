import { describe, expect, it } from 'vitest';
import type { ActorContext } from './actor.js';
import { ActorSystem } from './actor-system.js';
import { SimulatedClock, settle } from './clock.js';
import { SeededRandom } from './random.js';

/*
 * Timers are driven by a simulated clock. The actor below obeys commands that start, cancel and
 * inspect timers, records every message it receives with the time, and can be held busy on a gate
 * so that a timer message waits in the mailbox — which is how a cancel is shown to discard a
 * message its timer had already enqueued.
 */

type Command =
  | { readonly type: 'single'; readonly key: string; readonly payload: string; readonly delayMs: number }
  | { readonly type: 'periodic'; readonly key: string; readonly payload: string; readonly intervalMs: number }
  | { readonly type: 'cancel'; readonly key: string }
  | { readonly type: 'hold' }
  | { readonly type: 'boom' }
  | { readonly type: 'tick'; readonly payload: string };

interface Harness {
  readonly clock: SimulatedClock;
  readonly system: ActorSystem;
  readonly ticks: string[];
  context: ActorContext<Command> | undefined;
  release(): void;
  send(command: Command): void;
}

function harness(mailboxCapacity = 100): Harness {
  const clock = new SimulatedClock();
  const start = clock.now();
  const system = new ActorSystem({
    name: 'test',
    clock,
    random: new SeededRandom(3),
    defaults: {
      mailboxCapacity,
      supervision: { minBackoffMs: 100, maxBackoffMs: 100, randomFactor: 0, maxRestarts: 5 },
    },
  });
  let releaseGate: () => void = () => {};
  const state: Harness = {
    clock,
    system,
    ticks: [],
    context: undefined,
    release: () => releaseGate(),
    send: (command) => ref.tell(command),
  };
  const ref = system.spawn<Command>('timed', (context) => {
    state.context = context;
    return {
      receive(command) {
        switch (command.type) {
          case 'single':
            context.timers.startSingle(
              command.key,
              { type: 'tick', payload: command.payload },
              command.delayMs,
            );
            return;
          case 'periodic':
            context.timers.startPeriodic(
              command.key,
              { type: 'tick', payload: command.payload },
              command.intervalMs,
            );
            return;
          case 'cancel':
            context.timers.cancel(command.key);
            return;
          case 'hold':
            return new Promise<void>((resolve) => {
              releaseGate = resolve;
            });
          case 'boom':
            throw new Error('boom');
          case 'tick':
            state.ticks.push(`${command.payload}@${clock.now() - start}`);
            return;
          default: {
            const unexpected: never = command;
            throw new Error(`unexpected command ${JSON.stringify(unexpected)}`);
          }
        }
      },
    };
  });
  return state;
}

describe('timers', () => {
  it('delivers a single timer once, after its delay, and is then inactive', async () => {
    const test = harness();
    test.send({ type: 'single', key: 'once', payload: 'a', delayMs: 100 });
    await settle();
    expect(test.context?.timers.isActive('once')).toBe(true);
    await test.clock.advanceAsync(99);
    expect(test.ticks).toEqual([]);
    await test.clock.advanceAsync(1);
    expect(test.ticks).toEqual(['a@100']);
    expect(test.context?.timers.isActive('once')).toBe(false);
    await test.clock.advanceAsync(1_000);
    expect(test.ticks).toEqual(['a@100']);
  });

  it('delivers a periodic timer every interval until cancelled', async () => {
    const test = harness();
    test.send({ type: 'periodic', key: 'beat', payload: 'p', intervalMs: 50 });
    await settle();
    await test.clock.advanceAsync(160);
    expect(test.ticks).toEqual(['p@50', 'p@100', 'p@150']);
    expect(test.context?.timers.isActive('beat')).toBe(true);
    test.send({ type: 'cancel', key: 'beat' });
    await settle();
    expect(test.context?.timers.isActive('beat')).toBe(false);
    await test.clock.advanceAsync(500);
    expect(test.ticks).toHaveLength(3);
  });

  it('replaces a timer started again with the same key', async () => {
    const test = harness();
    test.send({ type: 'single', key: 'k', payload: 'first', delayMs: 100 });
    test.send({ type: 'single', key: 'k', payload: 'second', delayMs: 50 });
    await settle();
    await test.clock.advanceAsync(500);
    expect(test.ticks).toEqual(['second@50']);
  });

  it('discards a message the timer already enqueued when it is replaced or cancelled', async () => {
    const test = harness();
    test.send({ type: 'single', key: 'cancelled', payload: 'c', delayMs: 100 });
    test.send({ type: 'single', key: 'replaced', payload: 'old', delayMs: 100 });
    test.send({ type: 'hold' });
    await settle();
    // Both timers fire while the actor is held: their messages wait in the mailbox behind these.
    test.send({ type: 'cancel', key: 'cancelled' });
    test.send({ type: 'single', key: 'replaced', payload: 'new', delayMs: 10 });
    await test.clock.advanceAsync(100);
    expect(test.ticks).toEqual([]);
    test.release();
    await settle();
    await test.clock.advanceAsync(100);
    expect(test.ticks).toEqual(['new@110']);
    expect(test.system.deadLetterCount).toBe(0);
  });

  it('cancels all timers when the actor stops', async () => {
    const test = harness();
    test.send({ type: 'periodic', key: 'beat', payload: 'p', intervalMs: 50 });
    test.send({ type: 'single', key: 'once', payload: 's', delayMs: 500 });
    await settle();
    await test.clock.advanceAsync(50);
    test.context?.stop();
    expect(test.clock.pendingCount()).toBe(0);
    await test.clock.advanceAsync(1_000);
    expect(test.ticks).toEqual(['p@50']);
  });

  it('cancels all timers on restart, including a message already enqueued', async () => {
    const test = harness();
    test.send({ type: 'periodic', key: 'beat', payload: 'p', intervalMs: 50 });
    test.send({ type: 'hold' });
    await settle();
    test.send({ type: 'boom' });
    await test.clock.advanceAsync(50);
    // Mailbox: boom, then the tick from the firing at 50.
    test.release();
    await settle();
    expect(test.context?.timers.isActive('beat')).toBe(false);
    await test.clock.advanceAsync(1_000);
    expect(test.ticks).toEqual([]);
    // After the restart nothing is scheduled any more: the periodic timer died with the old instance.
    expect(test.clock.pendingCount()).toBe(0);
  });

  it('drops a firing that finds the mailbox full, and a periodic timer keeps firing', async () => {
    const test = harness(1);
    test.send({ type: 'periodic', key: 'beat', payload: 'p', intervalMs: 10 });
    await settle();
    test.send({ type: 'hold' });
    await settle();
    test.send({ type: 'cancel', key: 'nothing' });
    // The mailbox (capacity 1) is full, so the firings at 10, 20 and 30 are dead letters.
    await test.clock.advanceAsync(30);
    expect(test.system.deadLetterCount).toBe(3);
    test.release();
    await settle();
    await test.clock.advanceAsync(10);
    expect(test.ticks).toEqual(['p@40']);
  });

  it('refuses a periodic timer without a positive interval', async () => {
    const test = harness();
    await settle();
    expect(() => test.context?.timers.startPeriodic('zero', { type: 'hold' }, 0)).toThrow(RangeError);
  });
});
