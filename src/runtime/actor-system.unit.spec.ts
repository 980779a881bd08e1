import { describe, expect, it } from 'vitest';
import { type ActorRef, AskTimeoutError, StashOverflowError, type StopReason } from './actor.js';
import { ActorSystem, ActorSystemTerminatedError, AskUndeliveredError } from './actor-system.js';
import { SimulatedClock, settle } from './clock.js';
import type { Logger } from './logger.js';
import { SeededRandom } from './random.js';

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve: () => resolve() };
}

interface LogRecord {
  readonly level: string;
  readonly fields: object;
  readonly message: string;
  readonly bindings: object;
}

function recordingLogger(records: LogRecord[], bindings: object = {}): Logger {
  const write =
    (level: string) =>
    (fields: object, message: string): void => {
      records.push({ level, fields, message, bindings });
    };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (more) => recordingLogger(records, { ...bindings, ...more }),
  };
}

function newSystem(options: { logger?: Logger; mailboxCapacity?: number; stashCapacity?: number } = {}) {
  const clock = new SimulatedClock();
  const system = new ActorSystem({
    name: 'test',
    clock,
    random: new SeededRandom(7),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    defaults: {
      ...(options.mailboxCapacity === undefined ? {} : { mailboxCapacity: options.mailboxCapacity }),
      ...(options.stashCapacity === undefined ? {} : { stashCapacity: options.stashCapacity }),
      supervision: { minBackoffMs: 100, maxBackoffMs: 1_000, randomFactor: 0, maxRestarts: 0 },
    },
  });
  return { clock, system };
}

describe('ActorSystem: processing', () => {
  it('processes one message at a time, waiting for an async receive to settle', async () => {
    const { system } = newSystem();
    const gates: Deferred[] = [];
    const events: string[] = [];
    let active = 0;
    let activeMax = 0;
    const ref = system.spawn<number>('worker', () => ({
      async receive(message) {
        active++;
        activeMax = Math.max(activeMax, active);
        events.push(`start ${message}`);
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
        events.push(`end ${message}`);
        active--;
      },
    }));
    ref.tell(1);
    ref.tell(2);
    ref.tell(3);
    await settle();
    expect(events).toEqual(['start 1']);
    gates[0]?.resolve();
    await settle();
    expect(events).toEqual(['start 1', 'end 1', 'start 2']);
    gates[1]?.resolve();
    await settle();
    gates[2]?.resolve();
    await settle();
    expect(events).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    expect(activeMax).toBe(1);
  });

  it('keeps the order of messages, across drain batches and a mix of sync and async receives', async () => {
    const { system } = newSystem();
    const received: number[] = [];
    const ref = system.spawn<number>('ordered', () => ({
      receive(message) {
        received.push(message);
        // Every seventh message is asynchronous, the rest are not.
        if (message % 7 === 0) return Promise.resolve();
      },
    }));
    const expected: number[] = [];
    for (let index = 0; index < 1_000; index++) {
      ref.tell(index);
      expected.push(index);
    }
    await settle();
    expect(received).toEqual(expected);
  });

  it('lets another actor run while one drains a long mailbox', async () => {
    const { system } = newSystem();
    const log: string[] = [];
    const busy = system.spawn<number>('busy', () => ({
      receive: (message) => void log.push(`busy ${message}`),
    }));
    const other = system.spawn<number>('other', () => ({
      receive: (message) => void log.push(`other ${message}`),
    }));
    for (let index = 0; index < 1_000; index++) busy.tell(index);
    other.tell(0);
    await settle();
    expect(log.indexOf('other 0')).toBeLessThan(log.indexOf('busy 999'));
    expect(log).toHaveLength(1_001);
  });

  it('holds messages until an async preStart settles', async () => {
    const { system } = newSystem();
    const gate = deferred();
    const received: string[] = [];
    const ref = system.spawn<string>('slow-start', () => ({
      preStart: () => gate.promise,
      receive: (message) => void received.push(message),
    }));
    ref.tell('first');
    await settle();
    expect(received).toEqual([]);
    gate.resolve();
    await settle();
    expect(received).toEqual(['first']);
  });

  it('gives the context a logger bound to the actor path', async () => {
    const records: LogRecord[] = [];
    const { system } = newSystem({ logger: recordingLogger(records) });
    const ref = system.spawn<string>('talker', (context) => ({
      receive: (message) => context.log.info({ message }, 'got a message'),
    }));
    ref.tell('hello');
    await settle();
    expect(records).toEqual([
      {
        level: 'info',
        fields: { message: 'hello' },
        message: 'got a message',
        bindings: { actor: '/test/talker' },
      },
    ]);
  });
});

describe('ActorSystem: names and lookup', () => {
  it('refuses a running name, finds live actors, and frees the name once stopped', async () => {
    const { system } = newSystem();
    const ref = system.spawn<string>('unique', () => ({ receive: () => {} }));
    expect(ref.path).toBe('/test/unique');
    expect(system.lookup('/test/unique')).toBe(ref);
    expect(() => system.spawn<string>('unique', () => ({ receive: () => {} }))).toThrow(
      expect.objectContaining({ name: 'ActorNameTakenError', path: '/test/unique' }),
    );
    system.stop(ref);
    await system.whenStopped(ref);
    expect(system.lookup('/test/unique')).toBeUndefined();
    const again = system.spawn<string>('unique', () => ({ receive: () => {} }));
    expect(system.lookup('/test/unique')).toBe(again);
  });

  it('rejects an empty name and the reserved temp/ branch', () => {
    const { system } = newSystem();
    expect(() => system.spawn('', () => ({ receive: () => {} }))).toThrow(RangeError);
    expect(() => system.spawn('temp/ask-1', () => ({ receive: () => {} }))).toThrow(RangeError);
  });

  it('rejects invalid settings when spawning', () => {
    const { system } = newSystem();
    expect(() => system.spawn('a', () => ({ receive: () => {} }), { mailboxCapacity: 0 })).toThrow(
      RangeError,
    );
    expect(() =>
      system.spawn('b', () => ({ receive: () => {} }), { supervision: { maxBackoffMs: 1 } }),
    ).toThrow(RangeError);
  });
});

describe('ActorSystem: dead letters', () => {
  it('sends messages that find the mailbox full to dead letters, logged with path and type', async () => {
    const records: LogRecord[] = [];
    const { system } = newSystem({ logger: recordingLogger(records), mailboxCapacity: 3 });
    const received: number[] = [];
    const ref = system.spawn<{ type: string; n: number }>('small', () => ({
      receive: (message) => void received.push(message.n),
    }));
    for (let n = 1; n <= 5; n++) ref.tell({ type: 'Ping', n });
    expect(system.deadLetterCount).toBe(2);
    await settle();
    expect(received).toEqual([1, 2, 3]);
    const deadLetterLogs = records.filter((record) => record.level === 'debug');
    expect(deadLetterLogs).toHaveLength(2);
    expect(deadLetterLogs[0]?.fields).toMatchObject({
      path: '/test/small',
      messageType: 'Ping',
      cause: 'mailbox-full',
    });
    expect(deadLetterLogs[0]?.message).toContain('/test/small');
    expect(deadLetterLogs[0]?.message).toContain('Ping');
  });

  it('sends messages for a stopped actor to dead letters without throwing', async () => {
    const { system } = newSystem();
    const ref = system.spawn<string>('gone', () => ({ receive: () => {} }));
    system.stop(ref);
    await system.whenStopped(ref);
    expect(() => ref.tell('hello')).not.toThrow();
    expect(system.deadLetterCount).toBe(1);
  });
});

describe('ActorSystem: ask', () => {
  interface Shout {
    readonly text: string;
    readonly replyTo: ActorRef<string>;
  }

  it('resolves with the first reply, through a temporary actor that lookup finds while pending', async () => {
    const { system } = newSystem();
    const seenReplyPaths: string[] = [];
    const echo = system.spawn<Shout>('echo', () => ({
      receive(message) {
        seenReplyPaths.push(message.replyTo.path);
        expect(system.lookup(message.replyTo.path)).toBe(message.replyTo);
        message.replyTo.tell(message.text.toUpperCase());
        message.replyTo.tell('second reply');
      },
    }));
    const reply = await system.ask<Shout, string>(echo, (replyTo) => ({ text: 'hi', replyTo }), 1_000);
    expect(reply).toBe('HI');
    expect(seenReplyPaths).toEqual(['/test/temp/ask-1']);
    expect(system.lookup('/test/temp/ask-1')).toBeUndefined();
    // The second reply came after the ask was over.
    expect(system.deadLetterCount).toBe(1);
  });

  it('times out on the simulated clock, and sends a late reply to dead letters', async () => {
    const { clock, system } = newSystem();
    let heldReplyTo: ActorRef<string> | undefined;
    const silent = system.spawn<Shout>('silent', () => ({
      receive: (message) => {
        heldReplyTo = message.replyTo;
      },
    }));
    const outcome = system
      .ask<Shout, string>(silent, (replyTo) => ({ text: 'hi', replyTo }), 500)
      .then(
        (reply) => ({ reply }),
        (error: unknown) => ({ error }),
      );
    let settled = false;
    void outcome.then(() => {
      settled = true;
    });
    await clock.advanceAsync(499);
    expect(settled).toBe(false);
    expect(system.lookup('/test/temp/ask-1')).toBeDefined();
    await clock.advanceAsync(1);
    const result = await outcome;
    expect(result).toEqual({ error: expect.any(AskTimeoutError) });
    expect(system.lookup('/test/temp/ask-1')).toBeUndefined();
    heldReplyTo?.tell('too late');
    expect(system.deadLetterCount).toBe(1);
  });

  it('rejects at once when the request cannot be enqueued', async () => {
    const { system } = newSystem({ mailboxCapacity: 1 });
    const stopped = system.spawn<Shout>('stopped', () => ({ receive: () => {} }));
    system.stop(stopped);
    await expect(
      system.ask<Shout, string>(stopped, (replyTo) => ({ text: 'x', replyTo }), 1_000),
    ).rejects.toThrow(AskUndeliveredError);
    const gate = deferred();
    const full = system.spawn<Shout>('full', () => ({ receive: () => gate.promise }));
    full.tell({ text: 'in progress', replyTo: full as unknown as ActorRef<string> });
    await settle();
    full.tell({ text: 'queued', replyTo: full as unknown as ActorRef<string> });
    const rejected = system.ask<Shout, string>(full, (replyTo) => ({ text: 'x', replyTo }), 1_000);
    await expect(rejected).rejects.toBeInstanceOf(AskTimeoutError);
    await expect(rejected).rejects.toThrow(/not delivered/);
    expect(system.lookup('/test/temp/ask-2')).toBeUndefined();
  });
});

describe('ActorSystem: stopping', () => {
  it('stops after the current message when the actor stops itself; the rest become dead letters', async () => {
    const { system } = newSystem();
    const received: string[] = [];
    const stopReasons: StopReason[] = [];
    const ref = system.spawn<string>('self-stopper', (context) => ({
      receive(message) {
        received.push(message);
        if (message === 'stop') context.stop();
      },
      postStop: (reason) => void stopReasons.push(reason),
    }));
    for (const message of ['a', 'stop', 'b', 'c']) ref.tell(message);
    expect(await system.whenStopped(ref)).toEqual({ kind: 'stopped' });
    expect(received).toEqual(['a', 'stop']);
    expect(system.deadLetterCount).toBe(2);
    expect(stopReasons).toEqual([{ kind: 'stopped' }]);
    // Asked again after the fact, the reason is still there.
    expect(await system.whenStopped(ref)).toEqual({ kind: 'stopped' });
    expect(await system.whenStopped({ path: '/test/self-stopper', tell: () => {} })).toEqual({
      kind: 'stopped',
    });
  });

  it('stops an idle actor right away', async () => {
    const { system } = newSystem();
    let postStops = 0;
    const ref = system.spawn<string>('idle', () => ({ receive: () => {}, postStop: () => void postStops++ }));
    await settle();
    system.stop(ref);
    expect(postStops).toBe(1);
    expect(system.lookup(ref.path)).toBeUndefined();
    system.stop(ref);
    expect(postStops).toBe(1);
  });

  it('lets a busy actor finish its current message before stopping', async () => {
    const { system } = newSystem();
    const gate = deferred();
    const received: string[] = [];
    const ref = system.spawn<string>('busy', () => ({
      receive(message) {
        received.push(message);
        return gate.promise;
      },
    }));
    ref.tell('current');
    ref.tell('queued');
    await settle();
    system.stop(ref);
    await settle();
    expect(system.lookup(ref.path)).toBe(ref);
    gate.resolve();
    expect(await system.whenStopped(ref)).toEqual({ kind: 'stopped' });
    expect(received).toEqual(['current']);
    expect(system.deadLetterCount).toBe(1);
  });

  it('terminates: stops every actor, rejects pending asks, refuses new work', async () => {
    const { system } = newSystem();
    const reasons: StopReason[] = [];
    const first = system.spawn<string>('first', () => ({
      receive: () => {},
      postStop: (reason) => void reasons.push(reason),
    }));
    const second = system.spawn<ActorRef<string>>('second', () => ({ receive: () => {} }));
    await settle();
    const pending = system.ask<ActorRef<string>, string>(second, (replyTo) => replyTo, 10_000);
    await system.terminate();
    await expect(pending).rejects.toBeInstanceOf(ActorSystemTerminatedError);
    expect(reasons).toEqual([{ kind: 'system-terminated' }]);
    expect(await system.whenStopped(first)).toEqual({ kind: 'system-terminated' });
    expect(await system.whenStopped(second)).toEqual({ kind: 'system-terminated' });
    expect(() => system.spawn('late', () => ({ receive: () => {} }))).toThrow(ActorSystemTerminatedError);
    await expect(system.ask<string, string>(first, () => 'x', 10)).rejects.toBeInstanceOf(
      ActorSystemTerminatedError,
    );
    await system.terminate();
  });
});

describe('ActorSystem: stash', () => {
  type Gated = number | 'open';

  it('unstashes to the head of the mailbox in the order stashed, before later messages', async () => {
    const { system } = newSystem();
    const processed: Gated[] = [];
    const sizes: number[] = [];
    const ref = system.spawn<Gated>('gated', (context) => {
      let open = false;
      return {
        receive(message) {
          if (message === 'open') {
            open = true;
            sizes.push(context.stashSize);
            context.unstashAll();
            sizes.push(context.stashSize);
          } else if (!open) {
            context.stash(message);
            return;
          }
          processed.push(message);
        },
      };
    });
    for (const message of [1, 2, 'open', 3] as const) ref.tell(message);
    await settle();
    expect(processed).toEqual(['open', 1, 2, 3]);
    expect(sizes).toEqual([2, 0]);
  });

  it('lets unstashed messages exceed the mailbox capacity for a while, losing none', async () => {
    const { system } = newSystem({ mailboxCapacity: 2, stashCapacity: 5 });
    const processed: Gated[] = [];
    const ref = system.spawn<Gated>('overfull', (context) => {
      let open = false;
      return {
        receive(message) {
          if (message === 'open') {
            open = true;
            context.unstashAll();
          } else if (!open) context.stash(message);
          else processed.push(message);
        },
      };
    });
    for (const batch of [
      [1, 2],
      [3, 4],
      ['open', 5],
    ] as const) {
      for (const message of batch) ref.tell(message);
      await settle();
    }
    expect(processed).toEqual([1, 2, 3, 4, 5]);
    expect(system.deadLetterCount).toBe(0);
  });

  it('crashes with StashOverflowError past the stash capacity', async () => {
    const { system } = newSystem({ stashCapacity: 2 });
    const ref = system.spawn<number>('hoarder', (context) => ({
      receive: (message) => context.stash(message),
    }));
    for (const message of [1, 2, 3]) ref.tell(message);
    const reason = await system.whenStopped(ref);
    expect(reason.kind).toBe('failed');
    expect(reason.kind === 'failed' && reason.error).toBeInstanceOf(StashOverflowError);
  });
});
