import {
  type ActorFactory,
  ActorNameTakenError,
  type ActorRef,
  type ActorSystemApi,
  AskTimeoutError,
  type SpawnOptions,
  type StopReason,
  type SupervisionSettings,
} from './actor.js';
import {
  ActorCell,
  type CellHost,
  type CellSettings,
  type DeadLetterCause,
  LocalActorRef,
  stoppedReason,
  systemTerminatedReason,
} from './actor-cell.js';
import { type Cancellable, type Clock, systemClock } from './clock.js';
import { type Logger, silentLogger } from './logger.js';
import { type Random, systemRandom } from './random.js';

/** Restart after about 100 ms, doubling up to 10 s; give up after 10 restarts within a minute. */
export const defaultSupervision: SupervisionSettings = Object.freeze({
  minBackoffMs: 100,
  maxBackoffMs: 10_000,
  randomFactor: 0.2,
  maxRestarts: 10,
  restartWindowMs: 60_000,
});

export const defaultMailboxCapacity = 10_000;
export const defaultStashCapacity = 10_000;

export interface ActorSystemDefaults {
  readonly mailboxCapacity?: number;
  readonly stashCapacity?: number;
  readonly supervision?: Partial<SupervisionSettings>;
}

export interface ActorSystemOptions {
  readonly name?: string;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
  readonly defaults?: ActorSystemDefaults;
}

/** Spawning or asking after `terminate()`; also how pending asks end when the system terminates. */
export class ActorSystemTerminatedError extends Error {
  override readonly name = 'ActorSystemTerminatedError';
  constructor(readonly systemName: string) {
    super(`actor system ${systemName} is terminated`);
  }
}

/**
 * An ask whose request could not even be enqueued (the target is stopped or its mailbox is full).
 * It is an AskTimeoutError so that callers which retry on a missing reply need no second case; its
 * message says what really happened.
 */
export class AskUndeliveredError extends AskTimeoutError {
  constructor(path: string, timeoutMs: number) {
    super(path, timeoutMs);
    this.message = `ask to ${path} was not delivered: the actor is stopped or its mailbox is full`;
  }
}

/**
 * The temporary reply address of one ask. It is no actor cell: the first reply settles the promise
 * and frees the path, so an ask costs one small object, one promise and one clock task.
 */
class AskRef<Reply> implements ActorRef<Reply> {
  timeout: Cancellable | undefined;
  private done = false;
  private doneWaiters: ((reason: StopReason) => void)[] | undefined;

  constructor(
    readonly path: string,
    private readonly host: CellHost,
    private readonly resolve: (reply: Reply) => void,
    private readonly reject: (error: Error) => void,
  ) {}

  tell(reply: Reply): void {
    if (this.done) {
      this.host.deadLetter(this.path, reply, 'late-reply');
      return;
    }
    this.finish();
    this.resolve(reply);
  }

  fail(error: Error): void {
    if (this.done) return;
    this.finish();
    this.reject(error);
  }

  whenDone(): Promise<StopReason> {
    if (this.done) return Promise.resolve(stoppedReason);
    return new Promise((resolve) => {
      this.doneWaiters ??= [];
      this.doneWaiters.push(resolve);
    });
  }

  toJSON(): string {
    return this.path;
  }

  private finish(): void {
    this.done = true;
    this.timeout?.cancel();
    this.timeout = undefined;
    this.host.release(this.path, this);
    for (const waiter of this.doneWaiters ?? []) waiter(stoppedReason);
    this.doneWaiters = undefined;
  }
}

type RegisteredRef = LocalActorRef<never> | AskRef<never>;

/**
 * Runs actors in this process. Paths are `/<system>/<name>`; ask reply addresses are
 * `/<system>/temp/ask-<n>`. Time and randomness come only from the injected Clock and Random, so a
 * simulation with a SimulatedClock and a SeededRandom replays exactly.
 */
export class ActorSystem implements ActorSystemApi {
  readonly name: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly host: CellHost;
  private readonly defaultCellSettings: CellSettings;
  /** Live actors and pending asks; an entry leaves as soon as its actor stops or its ask ends. */
  private readonly refs = new Map<string, RegisteredRef>();
  private deadLetters = 0;
  private askCount = 0;
  private termination: Promise<void> | undefined;

  constructor(options: ActorSystemOptions = {}) {
    this.name = options.name ?? 'remit';
    assertValidName(this.name, 'system');
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    this.host = {
      system: this,
      clock: this.clock,
      random: options.random ?? systemRandom,
      logger: this.logger,
      deadLetter: (path, message, cause) => this.recordDeadLetter(path, message, cause),
      release: (path, ref) => {
        if (this.refs.get(path) === ref) this.refs.delete(path);
      },
    };
    const defaults = options.defaults ?? {};
    this.defaultCellSettings = validatedSettings({
      mailboxCapacity: defaults.mailboxCapacity ?? defaultMailboxCapacity,
      stashCapacity: defaults.stashCapacity ?? defaultStashCapacity,
      supervision: { ...defaultSupervision, ...defaults.supervision },
      passivateAfterMs: undefined,
    });
  }

  get deadLetterCount(): number {
    return this.deadLetters;
  }

  spawn<M>(name: string, factory: ActorFactory<M>, options?: SpawnOptions): ActorRef<M> {
    if (this.termination !== undefined) throw new ActorSystemTerminatedError(this.name);
    assertValidName(name, 'actor');
    const path = `/${this.name}/${name}`;
    if (this.refs.has(path)) throw new ActorNameTakenError(path);
    const cell = new ActorCell<M>(this.host, path, factory, this.cellSettingsFor(options));
    this.refs.set(path, cell.self as LocalActorRef<never>);
    cell.start();
    return cell.self;
  }

  ask<Request, Reply>(
    target: ActorRef<Request>,
    make: (replyTo: ActorRef<Reply>) => Request,
    timeoutMs: number,
  ): Promise<Reply> {
    if (this.termination !== undefined) return Promise.reject(new ActorSystemTerminatedError(this.name));
    this.askCount++;
    const path = `/${this.name}/temp/ask-${this.askCount}`;
    return new Promise<Reply>((resolve, reject) => {
      const replyTo = new AskRef<Reply>(path, this.host, resolve, reject);
      this.refs.set(path, replyTo as AskRef<never>);
      replyTo.timeout = this.clock.schedule(timeoutMs, () => {
        replyTo.fail(new AskTimeoutError(target.path, timeoutMs));
      });
      let request: Request;
      try {
        request = make(replyTo);
      } catch (error) {
        replyTo.fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (!deliver(target, request)) replyTo.fail(new AskUndeliveredError(target.path, timeoutMs));
    });
  }

  lookup<M>(path: string): ActorRef<M> | undefined {
    // A registered ref accepts any message at run time; the caller names the type it expects.
    return this.refs.get(path) as ActorRef<M> | undefined;
  }

  /** Stops an actor after its current message. An ask's reply address ends only by reply or timeout. */
  stop(ref: ActorRef<unknown>): void {
    const registered = ref instanceof LocalActorRef ? ref : this.refs.get(ref.path);
    if (registered instanceof LocalActorRef) registered.cell.requestStop(stoppedReason);
  }

  whenStopped(ref: ActorRef<unknown>): Promise<StopReason> {
    if (ref instanceof LocalActorRef) return ref.cell.stopped;
    if (ref instanceof AskRef) return ref.whenDone();
    const registered = this.refs.get(ref.path);
    // A path nobody holds any more belongs to an actor that has already stopped.
    return registered === undefined ? Promise.resolve(stoppedReason) : this.whenStopped(registered);
  }

  /**
   * Stops every actor (each after its current message) and rejects pending asks. Resolves when all
   * have stopped, so an actor whose receive never settles keeps it waiting.
   */
  terminate(): Promise<void> {
    if (this.termination !== undefined) return this.termination;
    const stopped: Promise<StopReason>[] = [];
    for (const ref of [...this.refs.values()]) {
      if (ref instanceof AskRef) {
        ref.fail(new ActorSystemTerminatedError(this.name));
      } else {
        stopped.push(ref.cell.stopped);
        ref.cell.requestStop(systemTerminatedReason);
      }
    }
    this.termination = Promise.all(stopped).then(() => undefined);
    return this.termination;
  }

  private cellSettingsFor(options: SpawnOptions | undefined): CellSettings {
    if (options === undefined) return this.defaultCellSettings;
    const defaults = this.defaultCellSettings;
    return validatedSettings({
      mailboxCapacity: options.mailboxCapacity ?? defaults.mailboxCapacity,
      stashCapacity: options.stashCapacity ?? defaults.stashCapacity,
      supervision:
        options.supervision === undefined
          ? defaults.supervision
          : { ...defaults.supervision, ...options.supervision },
      passivateAfterMs: options.passivateAfterMs,
    });
  }

  private recordDeadLetter(path: string, message: unknown, cause: DeadLetterCause): void {
    this.deadLetters++;
    const messageType = typeOf(message);
    this.logger.debug(
      { path, messageType, cause },
      `dead letter to ${path}${messageType === undefined ? '' : ` (${messageType})`}: ${cause}`,
    );
  }
}

/** Enqueues on a local actor (learning whether it worked); any other ref just gets a tell. */
function deliver<M>(target: ActorRef<M>, message: M): boolean {
  if (target instanceof LocalActorRef) return target.cell.enqueue(message);
  target.tell(message);
  return true;
}

function typeOf(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null || !('type' in message)) return undefined;
  return typeof message.type === 'string' ? message.type : undefined;
}

/** Names are programmer input: a bad one is a bug, reported at once. */
function assertValidName(name: string, what: 'system' | 'actor'): void {
  if (name.length === 0) throw new RangeError(`${what} name must not be empty`);
  if (what === 'system' && name.includes('/'))
    throw new RangeError(`system name ${name} must not contain '/'`);
  // The temp/ branch holds the reply addresses of asks.
  if (what === 'actor' && name.startsWith('temp/')) throw new RangeError(`actor name ${name} is reserved`);
}

function validatedSettings(settings: CellSettings): CellSettings {
  assertPositiveInteger(settings.mailboxCapacity, 'mailboxCapacity');
  assertPositiveInteger(settings.stashCapacity, 'stashCapacity');
  const supervision = settings.supervision;
  assertAtLeast(supervision.minBackoffMs, 0, 'minBackoffMs');
  assertAtLeast(supervision.maxBackoffMs, supervision.minBackoffMs, 'maxBackoffMs');
  assertAtLeast(supervision.randomFactor, 0, 'randomFactor');
  assertAtLeast(supervision.maxRestarts, 0, 'maxRestarts');
  assertAtLeast(supervision.restartWindowMs, 0, 'restartWindowMs');
  if (settings.passivateAfterMs !== undefined)
    assertAtLeast(settings.passivateAfterMs, 1, 'passivateAfterMs');
  return settings;
}

function assertPositiveInteger(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${what} must be a positive integer, got ${value}`);
}

function assertAtLeast(value: number, minimum: number, what: string): void {
  if (!(value >= minimum)) throw new RangeError(`${what} must be at least ${minimum}, got ${value}`);
}
