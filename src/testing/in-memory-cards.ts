import type { CardReader } from '../payments/executor-protocol.js';
/** A vault stand-in for domain tests: token → card number, in memory. */
export class InMemoryCards implements CardReader {
  readonly cards = new Map<string, string>();

  async reveal(token: string): Promise<string | undefined> {
    return this.cards.get(token);
  }
}
