import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../runtime/random.js';
import { reconnectDelayMs, tcpTransportSettings } from './tcp-transport.js';

describe('TcpTransport settings and backoff', () => {
  it('refuses settings that contradict each other', () => {
    expect(() => tcpTransportSettings({ reconnectBackoffMinMs: 500, reconnectBackoffMaxMs: 100 })).toThrow(
      /reconnectBackoffMaxMs/,
    );
    expect(() => tcpTransportSettings({ keepaliveIntervalMs: 1_000, keepaliveTimeoutMs: 1_500 })).toThrow(
      /keepaliveTimeoutMs/,
    );
    expect(() => tcpTransportSettings({ frameBytesMax: 1 << 20, sendBufferBytesMax: 1 << 19 })).toThrow(
      /sendBufferBytesMax/,
    );
  });

  it('waits longer after each failure, jittered, never under the minimum nor over the maximum', () => {
    const settings = tcpTransportSettings({ reconnectBackoffMinMs: 100, reconnectBackoffMaxMs: 3_000 });
    const random = new SeededRandom(7);
    const delays = Array.from({ length: 12 }, (_, index) => reconnectDelayMs(index + 1, settings, random));
    for (const [index, delay] of delays.entries()) {
      const ceiling = Math.min(3_000, 100 * 2 ** index);
      expect(delay).toBeGreaterThanOrEqual(Math.max(100, ceiling / 2));
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
    // Two nodes that lost the same peer do not retry in lockstep.
    const other = Array.from({ length: 12 }, (_, index) =>
      reconnectDelayMs(index + 1, settings, new SeededRandom(8)),
    );
    expect(other).not.toEqual(delays);
  });
});
