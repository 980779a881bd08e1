// The order projection as a guest of another component's worker thread (`runtime/thread-guest.ts`):
// the gateway runs it in the journal's writer thread. Same protocol, same loop as in a thread of
// its own (`projection-worker-entry.ts`); an error that ends the projection rejects, and the host
// reports it to the main side, which restarts it.
import type { MessagePort } from 'node:worker_threads';
import { serveOrderProjection } from './order-projection-thread.js';
import { projectionThreadSettingsSchema } from './projection-protocol.js';

export function serveGuest(port: MessagePort, settings: unknown): Promise<void> {
  return serveOrderProjection(port, projectionThreadSettingsSchema.parse(settings));
}
