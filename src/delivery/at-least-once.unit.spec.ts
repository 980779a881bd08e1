import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { type EntityAddress, entityAddress, type Messenger } from '../runtime/entity-address.js';
import { SeededRandom } from '../runtime/random.js';
import { AtLeastOnceDelivery } from './at-least-once.js';
import { emptyOutbox, type Outbox, outboxWith } from './outbox.js';

class Recorder implements Messenger {
  readonly sent: unknown[] = [];
  tell<M>(_address: EntityAddress<M>, message: M): void {
    this.sent.push(message);
  }
}

const settings = {
  backoff: { minBackoffMs: 1_000, maxBackoffMs: 1_000, randomFactor: 0 },
  redeliveryBurstMax: 100,
};
const destination = entityAddress<string>('recipient', 'r1');

function outboxOf(...ids: string[]): Outbox<string> {
  let outbox: Outbox<string> = emptyOutbox;
  for (const id of ids) outbox = outboxWith(outbox, { deliveryId: id, destination, message: id });
  return outbox;
}

describe('AtLeastOnceDelivery', () => {
  it('resends what is unconfirmed until it leaves the outbox', () => {
    const clock = new SimulatedClock();
    const messenger = new Recorder();
    const delivery = new AtLeastOnceDelivery(messenger, clock, new SeededRandom(1), settings);
    delivery.sendAll(outboxOf('a', 'b'));
    clock.advance(1_000);
    expect(delivery.redeliverDue(outboxOf('a', 'b'))).toBe(2);
    clock.advance(1_000);
    expect(delivery.redeliverDue(outboxOf('b'))).toBe(1);
    expect(messenger.sent).toEqual(['a', 'b', 'a', 'b', 'b']);
    expect(delivery.unconfirmedTracked).toBe(1);
  });

  it('a confirmation kept in memory stops resends by this instance only; a fresh one sends again', () => {
    const clock = new SimulatedClock();
    const messenger = new Recorder();
    const outbox = outboxOf('a', 'b');
    const delivery = new AtLeastOnceDelivery(messenger, clock, new SeededRandom(1), settings);
    delivery.sendAll(outbox);
    delivery.confirmed('a');
    delivery.confirmed('unknown');
    for (let round = 0; round < 3; round++) {
      clock.advance(1_000);
      expect(delivery.redeliverDue(outbox)).toBe(1);
    }
    expect(messenger.sent).toEqual(['a', 'b', 'b', 'b', 'b']);
    // It stays tracked while in the outbox, and is forgotten when it leaves.
    expect(delivery.unconfirmedTracked).toBe(2);
    delivery.redeliverDue(outboxOf('b'));
    expect(delivery.unconfirmedTracked).toBe(1);

    // After a restart the entry is still in the (persisted) outbox: it goes out once more.
    const fresh = new AtLeastOnceDelivery(messenger, clock, new SeededRandom(1), settings);
    fresh.sendAll(outbox);
    expect(messenger.sent.slice(-2)).toEqual(['a', 'b']);
  });
});
