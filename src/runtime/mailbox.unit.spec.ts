import { describe, expect, it } from 'vitest';
import { Mailbox } from './mailbox.js';
import { SeededRandom } from './random.js';

describe('Mailbox', () => {
  it('is a FIFO queue bounded by its capacity', () => {
    const mailbox = new Mailbox<number>(3);
    expect([1, 2, 3, 4].map((item) => mailbox.offer(item))).toEqual([true, true, true, false]);
    expect(mailbox.isFull).toBe(true);
    expect(mailbox.shift()).toBe(1);
    expect(mailbox.offer(5)).toBe(true);
    expect(mailbox.drainAll()).toEqual([2, 3, 5]);
    expect(mailbox.length).toBe(0);
    expect(mailbox.shift()).toBeUndefined();
  });

  it('puts items back at the head in their order, past the capacity', () => {
    const mailbox = new Mailbox<string>(2);
    mailbox.offer('later-1');
    mailbox.offer('later-2');
    mailbox.pushFrontAll(['stashed-1', 'stashed-2', 'stashed-3']);
    expect(mailbox.length).toBe(5);
    expect(mailbox.offer('refused')).toBe(false);
    expect(mailbox.drainAll()).toEqual(['stashed-1', 'stashed-2', 'stashed-3', 'later-1', 'later-2']);
  });

  it('keeps undefined items countable', () => {
    const mailbox = new Mailbox<undefined | number>(4);
    mailbox.offer(undefined);
    mailbox.offer(1);
    expect(mailbox.drainAll()).toEqual([undefined, 1]);
  });

  it('behaves like an array across growth, wrap-around and shrinking (seeded random rounds)', () => {
    // Each round adds a random number of items (some at the head) and then takes a random number,
    // sometimes all of them, so the buffer grows, wraps around, empties and shrinks many times.
    const random = new SeededRandom(2024);
    const capacity = 3_000;
    const mailbox = new Mailbox<number>(capacity);
    const model: number[] = [];
    let next = 0;
    for (let round = 0; round < 200; round++) {
      const additions = random.int(2_500);
      for (let addition = 0; addition < additions; addition++, next++) {
        if (random.chance(0.1)) {
          mailbox.pushFront(next);
          model.unshift(next);
        } else if (mailbox.offer(next) !== model.length < capacity) {
          throw new Error(`offer disagreed with the model at length ${model.length}`);
        } else if (model.length < capacity) {
          model.push(next);
        }
      }
      const removals = random.chance(0.3) ? model.length : random.int(model.length + 1);
      const taken: (number | undefined)[] = [];
      for (let removal = 0; removal < removals; removal++) taken.push(mailbox.shift());
      expect(taken).toEqual(model.splice(0, removals));
      expect(mailbox.length).toBe(model.length);
    }
    expect(mailbox.drainAll()).toEqual(model);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new Mailbox(0)).toThrow(RangeError);
    expect(() => new Mailbox(1.5)).toThrow(RangeError);
  });
});
