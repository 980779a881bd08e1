import {
  type Actor,
  type ActorContext,
  type ActorFactory,
  type ActorRef,
  type ActorSystemApi,
  StashOverflowError,
  type StopReason,
  type SupervisionSettings,
  type Timers,
} from './actor.js';
import { backoffDelayMs } from './backoff.js';
import type { Cancellable, Clock } from './clock.js';
import type { Logger } from './logger.js';
import { Mailbox } from './mailbox.js';
import type { Random } from './random.js';

/**
 * The machinery behind one actor: its mailbox, the loop that feeds messages to `receive` one at a
 * time, supervision (restart with backoff, stop for good after too many restarts), timers, stash
 * and passivation. The cell lives as long as the actor's name is taken; the `Actor` object inside
 * it is replaced on every restart, while the ref, the mailbox and the context (the cell itself)
 * stay the same.
 *
 * Life cycle:
 *   starting   — factory and preStart run; messages queue up.
 *   running    — the mailbox is drained.
 *   restarting — after a crash, waiting out the backoff; messages queue up.
 *   stopped    — for good; every later message is a dead letter.
 *
 * This module is internal to the runtime: only `ActorSystem` creates cells.
 */

/** Why a message became a dead letter. */
export type DeadLetterCause = 'stopped' | 'mailbox-full' | 'late-reply';

/** What a cell needs from the system that owns it. */
export interface CellHost {
  readonly system: ActorSystemApi;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  deadLetter(path: string, message: unknown, cause: DeadLetterCause): void;
  /** Frees the path of a ref that has stopped, so the name can be taken again. */
  release(path: string, ref: ActorRef<never>): void;
}

export interface CellSettings {
  readonly mailboxCapacity: number;
  readonly stashCapacity: number;
  readonly supervision: SupervisionSettings;
  readonly passivateAfterMs: number | undefined;
}

/**
 * Messages processed in one go before the cell yields to other actors' queued work. It keeps one
 * busy actor with a long mailbox from starving the others.
 */
export const drainBatchMessagesMax = 256;

export const stoppedReason: StopReason = Object.freeze({ kind: 'stopped' });
export const passivatedReason: StopReason = Object.freeze({ kind: 'passivated' });
export const systemTerminatedReason: StopReason = Object.freeze({ kind: 'system-terminated' });

/** The ref handed out for a cell. Refs are per incarnation: after a stop, this ref stays dead. */
export class LocalActorRef<M> implements ActorRef<M> {
  constructor(
    readonly path: string,
    readonly cell: ActorCell<M>,
  ) {}

  tell(message: M): void {
    this.cell.enqueue(message);
  }

  /** A ref serializes as its path, so logging a message that carries a reply address stays small. */
  toJSON(): string {
    return this.path;
  }
}

type CellStatus = 'starting' | 'running' | 'restarting' | 'stopped';

export class ActorCell<M> implements ActorContext<M> {
  readonly self: LocalActorRef<M>;
  /** Settles once, when the actor stops for good; created up front so late callers still get the reason. */
  readonly stopped: Promise<StopReason>;
  private readonly resolveStopped: (reason: StopReason) => void;
  private readonly mailbox: Mailbox<M | TimerEntry<M>>;
  private readonly stashed: M[] = [];
  private status: CellStatus = 'starting';
  private actor: Actor<M> | undefined;
  /** True while preStart or receive runs, synchronously or until its promise settles. */
  private busy = false;
  private drainScheduled = false;
  /** A stop asked for while busy; it happens once the current message is done. */
  private pendingStop: StopReason | undefined;
  private timerSet: ActorTimers<M> | undefined;
  private logInstance: Logger | undefined;
  /** When each restart inside the current window happened, oldest first; at most maxRestarts long. */
  private readonly restartTimestamps: number[] = [];
  private restartHandle: Cancellable | undefined;
  private passivationHandle: Cancellable | undefined;
  private lastActivityAt = 0;

  constructor(
    private readonly host: CellHost,
    readonly path: string,
    private readonly factory: ActorFactory<M>,
    private readonly settings: CellSettings,
  ) {
    this.self = new LocalActorRef(path, this);
    this.mailbox = new Mailbox(settings.mailboxCapacity);
    let resolveStopped: ((reason: StopReason) => void) | undefined;
    this.stopped = new Promise<StopReason>((resolve) => {
      resolveStopped = resolve;
    });
    // The executor runs synchronously, so the resolver is always set here.
    this.resolveStopped = resolveStopped ?? (() => {});
  }

  // ---- ActorContext -------------------------------------------------------------------------

  get system(): ActorSystemApi {
    return this.host.system;
  }

  get timers(): Timers<M> {
    // Created on first use: many actors never set a timer.
    this.timerSet ??= new ActorTimers(this, this.host.clock);
    return this.timerSet;
  }

  get log(): Logger {
    this.logInstance ??= this.host.logger.child({ actor: this.path });
    return this.logInstance;
  }

  get stashSize(): number {
    return this.stashed.length;
  }

  stash(message: M): void {
    if (this.stashed.length >= this.settings.stashCapacity) {
      throw new StashOverflowError(this.path, this.settings.stashCapacity);
    }
    this.stashed.push(message);
  }

  unstashAll(): void {
    if (this.stashed.length === 0 || this.status === 'stopped') return;
    this.mailbox.pushFrontAll(this.stashed);
    this.stashed.length = 0;
    this.scheduleDrain();
  }

  stop(): void {
    this.requestStop(stoppedReason);
  }

  // ---- Used by the system and the timers ---------------------------------------------------

  get isStopped(): boolean {
    return this.status === 'stopped';
  }

  /** Creates the first actor instance soon, not inside `spawn`, so the spawner never re-enters. */
  start(): void {
    queueMicrotask(this.begin);
  }

  /** Enqueues a message; returns false if it went to dead letters instead. Never throws. */
  enqueue(message: M | TimerEntry<M>): boolean {
    if (this.status === 'stopped') {
      this.host.deadLetter(this.path, messageOf(message), 'stopped');
      return false;
    }
    if (!this.mailbox.offer(message)) {
      this.host.deadLetter(this.path, messageOf(message), 'mailbox-full');
      return false;
    }
    this.scheduleDrain();
    return true;
  }

  /** Stops after the current message, or right away if the actor is idle. */
  requestStop(reason: StopReason): void {
    if (this.status === 'stopped') return;
    if (this.busy) {
      this.pendingStop ??= reason;
      return;
    }
    this.finishStop(reason);
  }

  // ---- Starting and restarting -------------------------------------------------------------

  /** Creates a fresh actor instance and runs its preStart: the first start and every restart. */
  private readonly begin = (): void => {
    this.restartHandle = undefined;
    if (this.status === 'stopped') return;
    this.status = 'starting';
    let actor: Actor<M>;
    try {
      actor = this.factory(this);
    } catch (error) {
      this.crash(error);
      return;
    }
    this.actor = actor;
    this.runPreStart(actor);
  };

  private runPreStart(actor: Actor<M>): void {
    if (actor.preStart === undefined) {
      this.becomeRunning();
      return;
    }
    this.busy = true;
    let result: void | Promise<void>;
    try {
      result = actor.preStart();
    } catch (error) {
      this.onFailed(error);
      return;
    }
    if (isThenable(result)) {
      result.then(this.onPreStartFulfilled, this.onFailed);
      return;
    }
    this.busy = false;
    this.becomeRunning();
  }

  private readonly onPreStartFulfilled = (): void => {
    this.busy = false;
    this.becomeRunning();
  };

  private becomeRunning(): void {
    if (this.pendingStop !== undefined) {
      this.finishStop(this.pendingStop);
      return;
    }
    this.status = 'running';
    this.lastActivityAt = this.host.clock.now();
    this.armPassivation(this.settings.passivateAfterMs);
    this.scheduleDrain();
  }

  /** A throw or rejection from the factory, preStart, receive or canPassivate. */
  private readonly onFailed = (thrown: unknown): void => {
    this.busy = false;
    this.crash(thrown);
  };

  private crash(thrown: unknown): void {
    const error = thrown instanceof Error ? thrown : new Error(`non-error thrown: ${String(thrown)}`);
    this.cancelTimers();
    // Nothing stashed is lost: the next incarnation sees it first, in the order it was stashed.
    this.mailbox.pushFrontAll(this.stashed);
    this.stashed.length = 0;
    if (this.pendingStop !== undefined) {
      this.finishStop(this.pendingStop);
      return;
    }
    const supervision = this.settings.supervision;
    const restarts = this.restartsWithinWindow(supervision.restartWindowMs);
    if (restarts >= supervision.maxRestarts) {
      this.fail(error, restarts);
      return;
    }
    const backoffMs = backoffDelayMs(restarts, supervision, this.host.random);
    this.restartTimestamps.push(this.host.clock.now());
    this.log.warn(
      { err: error, restart: restarts + 1, backoffMs },
      `actor ${this.path} crashed and restarts in ${backoffMs} ms ` +
        `(restart ${restarts + 1} of at most ${supervision.maxRestarts} within ${supervision.restartWindowMs} ms): ${error.message}`,
    );
    this.status = 'restarting';
    this.restartHandle = this.host.clock.schedule(backoffMs, this.begin);
  }

  private fail(error: Error, restarts: number): void {
    const windowMs = this.settings.supervision.restartWindowMs;
    this.log.warn({ err: error }, `actor ${this.path} crashed: ${error.message}`);
    this.log.error(
      { err: error, restarts },
      `actor ${this.path} stopped for good: it crashed again after ${restarts} restarts ` +
        `within ${windowMs} ms; last error: ${error.message}`,
    );
    this.finishStop({ kind: 'failed', error, restarts });
  }

  /** Forgets restarts older than the window and counts the rest. */
  private restartsWithinWindow(windowMs: number): number {
    const windowStart = this.host.clock.now() - windowMs;
    while (this.restartTimestamps.length > 0 && (this.restartTimestamps[0] ?? 0) <= windowStart) {
      this.restartTimestamps.shift();
    }
    return this.restartTimestamps.length;
  }

  // ---- Processing messages -----------------------------------------------------------------

  private scheduleDrain(): void {
    if (this.drainScheduled || this.busy || this.status !== 'running') return;
    this.drainScheduled = true;
    queueMicrotask(this.drain);
  }

  /**
   * Feeds queued messages to `receive` in a loop, so a synchronous receive costs no promise. It
   * leaves the loop when receive returns a promise (the fulfilment handler comes back here), on a
   * crash or a stop, or after a batch, to let other actors run.
   */
  private readonly drain = (): void => {
    this.drainScheduled = false;
    for (let processed = 0; this.mailbox.length > 0; processed++) {
      if (this.status !== 'running' || this.pendingStop !== undefined) break;
      if (processed === drainBatchMessagesMax) {
        this.scheduleDrain();
        return;
      }
      const entry = this.mailbox.shift() as M | TimerEntry<M>;
      if (entry instanceof TimerEntry) {
        // An actor's own timers do not make it busy: a periodic housekeeping timer must not keep
        // an otherwise idle actor from passivating.
        if (this.timerSet?.accept(entry) !== true) continue;
        if (!this.receiveOne(entry.message)) return;
      } else {
        this.lastActivityAt = this.host.clock.now();
        if (!this.receiveOne(entry)) return;
      }
    }
    this.afterDrain();
  };

  /** Returns true if the message was processed synchronously and without a crash. */
  private receiveOne(message: M): boolean {
    const actor = this.actor;
    if (actor === undefined) throw new Error(`assertion failed: ${this.path} is running without an instance`);
    this.busy = true;
    let result: void | Promise<void>;
    try {
      result = actor.receive(message);
    } catch (error) {
      this.onFailed(error);
      return false;
    }
    if (isThenable(result)) {
      result.then(this.onReceiveFulfilled, this.onFailed);
      return false;
    }
    this.busy = false;
    return true;
  }

  private readonly onReceiveFulfilled = (): void => {
    this.busy = false;
    this.drain();
  };

  private afterDrain(): void {
    if (this.status !== 'running') return;
    if (this.pendingStop !== undefined) this.finishStop(this.pendingStop);
  }

  // ---- Passivation -------------------------------------------------------------------------

  private armPassivation(delayMs: number | undefined): void {
    if (delayMs === undefined) return;
    this.passivationHandle = this.host.clock.schedule(delayMs, this.onPassivationDue);
  }

  /**
   * Rather than rescheduling the idle timer on every message (a clock task per message), the
   * timer checks on firing how long the actor has really been idle and re-arms for the rest.
   */
  private readonly onPassivationDue = (): void => {
    this.passivationHandle = undefined;
    const passivateAfterMs = this.settings.passivateAfterMs;
    if (this.status !== 'running' || passivateAfterMs === undefined) return;
    if (this.busy || this.drainScheduled || this.mailbox.length > 0 || this.pendingStop !== undefined) {
      this.armPassivation(passivateAfterMs);
      return;
    }
    const idleMs = this.host.clock.now() - this.lastActivityAt;
    if (idleMs < passivateAfterMs) {
      this.armPassivation(passivateAfterMs - idleMs);
      return;
    }
    let allowed: boolean;
    try {
      allowed = this.actor?.canPassivate?.() !== false;
    } catch (error) {
      this.crash(error);
      return;
    }
    if (allowed) this.finishStop(passivatedReason);
    else this.armPassivation(passivateAfterMs);
  };

  // ---- Stopping ----------------------------------------------------------------------------

  private cancelTimers(): void {
    this.timerSet?.cancelAll();
    this.passivationHandle?.cancel();
    this.passivationHandle = undefined;
  }

  private finishStop(reason: StopReason): void {
    if (this.status === 'stopped') return;
    this.status = 'stopped';
    this.pendingStop = undefined;
    this.cancelTimers();
    this.restartHandle?.cancel();
    this.restartHandle = undefined;
    this.deadLetterLeftovers();
    this.host.release(this.path, this.self);
    this.runPostStop(reason);
    this.resolveStopped(reason);
  }

  private deadLetterLeftovers(): void {
    for (const message of this.stashed) this.host.deadLetter(this.path, message, 'stopped');
    this.stashed.length = 0;
    while (this.mailbox.length > 0) {
      const entry = this.mailbox.shift() as M | TimerEntry<M>;
      // Timer messages were cancelled with their timers: discarded, not dead letters.
      if (!(entry instanceof TimerEntry)) this.host.deadLetter(this.path, entry, 'stopped');
    }
  }

  private runPostStop(reason: StopReason): void {
    try {
      this.actor?.postStop?.(reason);
    } catch (error) {
      this.log.error({ err: error }, `postStop of actor ${this.path} threw; the actor is stopped anyway`);
    }
  }
}

/**
 * A timer's entry doubles as the envelope it puts in the mailbox. Cancelling or replacing a timer
 * removes its entry from the active map, so an envelope already queued no longer matches and is
 * discarded before `receive`: the entry's identity plays the part of a generation number.
 */
class TimerEntry<M> {
  handle: Cancellable | undefined;

  constructor(
    readonly key: string,
    readonly message: M,
    /** Undefined for a single timer. */
    readonly intervalMs: number | undefined,
    private readonly timers: ActorTimers<M>,
  ) {}

  readonly fire = (): void => {
    this.timers.fire(this);
  };
}

class ActorTimers<M> implements Timers<M> {
  private readonly active = new Map<string, TimerEntry<M>>();

  constructor(
    private readonly cell: ActorCell<M>,
    private readonly clock: Clock,
  ) {}

  startSingle(key: string, message: M, delayMs: number): void {
    this.start(key, message, delayMs, undefined);
  }

  startPeriodic(key: string, message: M, intervalMs: number): void {
    // A zero interval would fire forever without time moving.
    if (!(intervalMs > 0))
      throw new RangeError(`periodic timer ${key} needs intervalMs > 0, got ${intervalMs}`);
    this.start(key, message, intervalMs, intervalMs);
  }

  cancel(key: string): void {
    const entry = this.active.get(key);
    if (entry === undefined) return;
    entry.handle?.cancel();
    this.active.delete(key);
  }

  isActive(key: string): boolean {
    return this.active.has(key);
  }

  cancelAll(): void {
    for (const entry of this.active.values()) entry.handle?.cancel();
    this.active.clear();
  }

  /** Called by the clock. */
  fire(entry: TimerEntry<M>): void {
    if (this.active.get(entry.key) !== entry) return;
    if (entry.intervalMs !== undefined) entry.handle = this.clock.schedule(entry.intervalMs, entry.fire);
    // On a full mailbox this firing is a dead letter; a periodic timer still fires next time.
    const enqueued = this.cell.enqueue(entry);
    if (!enqueued && entry.intervalMs === undefined) this.active.delete(entry.key);
  }

  /** Whether a dequeued timer message is still wanted; a single timer is over once delivered. */
  accept(entry: TimerEntry<M>): boolean {
    if (this.active.get(entry.key) !== entry) return false;
    if (entry.intervalMs === undefined) this.active.delete(entry.key);
    return true;
  }

  private start(key: string, message: M, delayMs: number, intervalMs: number | undefined): void {
    this.cancel(key);
    if (this.cell.isStopped) return;
    const entry = new TimerEntry(key, message, intervalMs, this);
    this.active.set(key, entry);
    entry.handle = this.clock.schedule(delayMs, entry.fire);
  }
}

function messageOf<M>(entry: M | TimerEntry<M>): M {
  return entry instanceof TimerEntry ? entry.message : entry;
}

function isThenable(value: unknown): value is PromiseLike<void> {
  return (
    value !== undefined &&
    value !== null &&
    typeof value === 'object' &&
    'then' in value &&
    typeof value.then === 'function'
  );
}
