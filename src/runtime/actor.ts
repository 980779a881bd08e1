import type { Logger } from './logger.js';

/**
 * The actor contract. An actor processes one message at a time from a bounded mailbox. If
 * `receive` returns a promise, the next message waits until it settles — that is how an actor
 * applies back-pressure or does async work without giving up one-at-a-time processing.
 *
 * Everything is addressed by `path`, a plain string, so a reply address can later travel between
 * nodes of a cluster unchanged.
 */
export interface ActorRef<M> {
  readonly path: string;
  /**
   * Enqueues a message. Never throws: a message for a stopped actor, or one that finds the mailbox
   * full, goes to dead letters (counted and logged at debug level).
   */
  tell(message: M): void;
}

export interface Timers<M> {
  /** Sends `message` to self once after `delayMs`; replaces any timer with the same key. */
  startSingle(key: string, message: M, delayMs: number): void;
  /** Sends `message` to self every `intervalMs`; replaces any timer with the same key. */
  startPeriodic(key: string, message: M, intervalMs: number): void;
  /** Cancels the timer; a message it already enqueued is discarded, never delivered. */
  cancel(key: string): void;
  isActive(key: string): boolean;
  cancelAll(): void;
}

export interface ActorContext<M> {
  readonly self: ActorRef<M>;
  readonly system: ActorSystemApi;
  readonly timers: Timers<M>;
  readonly log: Logger;
  /** Puts a message aside; throws StashOverflowError past `stashCapacity` (a crash: supervision applies). */
  stash(message: M): void;
  /** Puts every stashed message back at the head of the mailbox, in the order stashed. */
  unstashAll(): void;
  readonly stashSize: number;
  /** Stops this actor once the current message is done. */
  stop(): void;
}

export interface Actor<M> {
  /** Runs before the first message and after every restart; messages wait until it settles. */
  preStart?(): void | Promise<void>;
  receive(message: M): void | Promise<void>;
  /** Runs once when the actor stops for good (not on restart). */
  postStop?(reason: StopReason): void;
  /** Asked before passivating an idle actor; returning false postpones it (e.g. writes in flight). */
  canPassivate?(): boolean;
}

export type ActorFactory<M> = (context: ActorContext<M>) => Actor<M>;

export interface SupervisionSettings {
  /** Backoff before the first restart. */
  readonly minBackoffMs: number;
  /** Backoff never grows past this. */
  readonly maxBackoffMs: number;
  /** Jitter: each backoff is multiplied by a factor in [1, 1 + randomFactor). */
  readonly randomFactor: number;
  /** Restarts allowed within `restartWindowMs`; one more and the actor stops for good. */
  readonly maxRestarts: number;
  readonly restartWindowMs: number;
}

export interface SpawnOptions {
  readonly mailboxCapacity?: number;
  readonly stashCapacity?: number;
  readonly supervision?: Partial<SupervisionSettings>;
  /**
   * Stops the actor after this long without a message (unless `canPassivate` says no). Messages
   * from the actor's own timers do not count: housekeeping timers don't keep an actor alive.
   */
  readonly passivateAfterMs?: number;
}

export type StopReason =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'passivated' }
  | { readonly kind: 'failed'; readonly error: Error; readonly restarts: number }
  | { readonly kind: 'system-terminated' };

export interface ActorSystemApi {
  readonly name: string;
  spawn<M>(name: string, factory: ActorFactory<M>, options?: SpawnOptions): ActorRef<M>;
  /** Sends `make(replyTo)` and resolves with the first reply, or rejects with AskTimeoutError. */
  ask<Request, Reply>(
    target: ActorRef<Request>,
    make: (replyTo: ActorRef<Reply>) => Request,
    timeoutMs: number,
  ): Promise<Reply>;
  /** Resolves a path to a live actor (including the temporary reply actors of asks). */
  lookup<M>(path: string): ActorRef<M> | undefined;
  stop(ref: ActorRef<unknown>): void;
  /** Resolves when the actor has stopped for good, with why. */
  whenStopped(ref: ActorRef<unknown>): Promise<StopReason>;
  /** Stops every actor; pending asks reject. */
  terminate(): Promise<void>;
  readonly deadLetterCount: number;
}

export class AskTimeoutError extends Error {
  override readonly name = 'AskTimeoutError';
  constructor(
    readonly path: string,
    readonly timeoutMs: number,
  ) {
    super(`ask to ${path} timed out after ${timeoutMs} ms`);
  }
}

export class StashOverflowError extends Error {
  override readonly name = 'StashOverflowError';
  constructor(
    readonly path: string,
    readonly stashCapacity: number,
  ) {
    super(`stash of ${path} is full (stashCapacity=${stashCapacity})`);
  }
}

export class ActorNameTakenError extends Error {
  override readonly name = 'ActorNameTakenError';
  constructor(readonly path: string) {
    super(`an actor named ${path} is already running`);
  }
}
