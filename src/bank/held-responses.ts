import type { Socket } from 'node:net';
import type { Cancellable, Clock } from '../runtime/clock.js';

/**
 * Connections whose answer the `timeoutRate` fault withholds. Each is destroyed after the hold
 * (on the injected Clock's schedule), when the server closes, or at once if the set is full: a
 * bound on how many sockets and timers a fault storm can pin.
 */
export class HeldResponses {
  private readonly held = new Map<Socket, Cancellable>();

  constructor(
    private readonly clock: Clock,
    private readonly holdMs: number,
    private readonly heldResponsesMax: number,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** Holds the socket's response; false (and the socket destroyed) when the set is full. */
  hold(socket: Socket): boolean {
    if (this.held.size >= this.heldResponsesMax || socket.destroyed) {
      socket.destroy();
      return false;
    }
    const timer = this.clock.schedule(this.holdMs, () => this.release(socket));
    this.held.set(socket, timer);
    // The client may give up first; its socket then needs neither the timer nor the slot.
    socket.once('close', () => this.forget(socket));
    return true;
  }

  /** Destroys every held socket, e.g. when the server closes. */
  releaseAll(): void {
    for (const socket of [...this.held.keys()]) this.release(socket);
  }

  private release(socket: Socket): void {
    this.forget(socket);
    socket.destroy();
  }

  private forget(socket: Socket): void {
    this.held.get(socket)?.cancel();
    this.held.delete(socket);
  }
}
