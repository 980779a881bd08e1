import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryNetwork } from './memory-transport.js';

function pair(faults: ConstructorParameters<typeof MemoryNetwork>[2] = {}) {
  const clock = new SimulatedClock();
  const network = new MemoryNetwork(clock, new SeededRandom(11), faults);
  const a = network.connect('a');
  const b = network.connect('b');
  a.setPeers([{ nodeId: 'b', address: 'b:1' }]);
  b.setPeers([{ nodeId: 'a', address: 'a:1' }]);
  const received: unknown[] = [];
  b.onFrame((from, frame) => received.push([from, frame]));
  return { clock, network, a, b, received };
}

describe('MemoryTransport', () => {
  it('delivers a copy of each frame, bigints kept, in order', () => {
    const { clock, a, received } = pair();
    const frame = { amount: 12n, nested: [1, 'x'] };
    expect(a.send('b', frame)).toBe(true);
    expect(a.send('b', { amount: 13n })).toBe(true);
    clock.advance(0);
    expect(received).toEqual([
      ['a', frame],
      ['a', { amount: 13n }],
    ]);
    expect((received[0] as [string, unknown])[1]).not.toBe(frame);
  });

  it('refuses at once a peer it was not given, and loses frames across a partition', () => {
    const { clock, network, a, received } = pair();
    expect(a.send('nobody', 1)).toBe(false);
    network.partition(['a'], ['b']);
    a.send('b', 'lost');
    clock.advance(0);
    network.heal();
    a.send('b', 'found');
    clock.advance(0);
    expect(received).toEqual([['a', 'found']]);
  });

  it('drops and duplicates frames at the configured rates', () => {
    const dropped = pair({ dropRate: 1 });
    dropped.a.send('b', 1);
    dropped.clock.advance(0);
    expect(dropped.received).toEqual([]);
    const doubled = pair({ duplicateRate: 1 });
    doubled.a.send('b', 1);
    doubled.clock.advance(0);
    expect(doubled.received).toEqual([
      ['a', 1],
      ['a', 1],
    ]);
  });

  it('delays frames on the clock', () => {
    const { clock, a, received } = pair({ delayMaxMs: 50 });
    for (let index = 0; index < 10; index++) a.send('b', index);
    clock.advance(0);
    const early = received.length;
    clock.advance(50);
    expect(early).toBeLessThan(10);
    expect(received).toHaveLength(10);
  });

  it('lets a restarted node connect again under its id once its old transport is closed', async () => {
    const { clock, network, a, b, received } = pair({ delayMaxMs: 50 });
    a.send('b', 'in flight');
    expect(() => network.connect('b')).toThrow(/already/);
    await b.close();
    const again = network.connect('b');
    again.onFrame((from, frame) => received.push([from, frame]));
    again.setPeers([{ nodeId: 'a', address: 'a:1' }]);
    clock.advance(50);
    // The frame sent to the dead process is lost with it; the new one receives what comes after.
    expect(received).toEqual([]);
    a.send('b', 'after');
    clock.advance(50);
    expect(received).toEqual([['a', 'after']]);
  });
});
