import type { MessagePort } from 'node:worker_threads';

/**
 * A guest: a service that runs inside a worker thread another component owns, instead of in a
 * thread of its own. Each worker thread is a V8 isolate, and on this machine one costs ~20 MB of
 * resident memory before it does anything (a worker doing nothing but allocate takes 20–27 MB,
 * whatever its young generation; bench/README.md); a service that is busy a small share of
 * the time can share a thread that is also busy a small share of the time.
 *
 * A guest module exports `serveGuest`. It is given a port to talk to its owner on and its settings
 * (structured-cloned), and returns a promise that settles when the guest has ended: resolved for an
 * end that was asked for, rejected for a failure.
 */
export type ServeGuest = (port: MessagePort, settings: unknown) => Promise<void>;

/** Something that runs guests in its thread. */
export interface GuestHost {
  /**
   * Starts the guest module `entry` (a `.ts` URL; compiled, its `.js` sibling runs) in the host's
   * thread, talking over `port` (transferred: the caller keeps the other end).
   */
  host(entry: URL, settings: unknown, port: MessagePort): HostedGuest;
}

export interface HostedGuest {
  /**
   * Settles when the guest has ended: `undefined` when `serveGuest` resolved, else why it ended (it
   * failed, or the host's thread ended under it). Never rejects.
   */
  readonly ended: Promise<string | undefined>;
}

/** Host-side message: start the guest `entry` on `port`. */
export interface HostGuestMessage {
  readonly kind: 'hostGuest';
  readonly guestId: number;
  /** The module's URL as the host's thread imports it. */
  readonly entry: string;
  readonly port: MessagePort;
  readonly settings: unknown;
}

/** Thread-side message: the guest `guestId` ended. */
export interface GuestEndedMessage {
  readonly kind: 'guestEnded';
  readonly guestId: number;
  readonly error: string | undefined;
}

/** True when this module runs compiled (dist/, `npm run build`), not from source through tsx. */
const compiled = import.meta.url.endsWith('.js');

/** The URL a thread imports for a module written as `entry` (`.ts`): itself, or compiled its `.js`. */
export function runnableEntry(entry: URL): URL {
  return compiled ? new URL(entry.href.replace(/\.ts$/, '.js')) : entry;
}

/**
 * Runs a guest inside the current thread: imports its module, serves it, and reports its end
 * through `ended` (never throws).
 */
export async function runGuest(
  message: HostGuestMessage,
  ended: (report: GuestEndedMessage) => void,
): Promise<void> {
  let error: string | undefined;
  try {
    const module = (await import(message.entry)) as { serveGuest?: ServeGuest };
    if (typeof module.serveGuest !== 'function') throw new Error(`${message.entry} exports no serveGuest`);
    await module.serveGuest(message.port, message.settings);
  } catch (cause) {
    error = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  }
  message.port.close();
  ended({ kind: 'guestEnded', guestId: message.guestId, error });
}
