import type { MessagePort } from 'node:worker_threads';
import { assertNever } from '../runtime/assert-never.js';
import { systemClock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { CommitWatch } from './commit-signal.js';
import { SqliteJournalReader } from './journal-reader.js';
import { OrderProjection, OrderProjectionError } from './order-projection.js';
import { OrderReadModel } from './order-read-model.js';
import {
  type FromProjectionThread,
  type ProjectionThreadSettings,
  toProjectionThreadSchema,
} from './projection-protocol.js';

/**
 * The order projection as it runs in its worker thread (`projection-worker-entry.ts` calls this):
 * its own read-only connection to the journal's file, its own write connection to the read
 * model's, and the same `OrderProjection` loop the simulator runs in-process. The main thread
 * steers it through `port` (see `projection-protocol.ts`) and is told after every committed batch.
 *
 * Resolves once a `stop` has drained and closed everything. Rejects (after posting `failed`) when
 * the projection stops on an error; the thread then ends with that error, and the main side
 * restarts it. Files are closed either way.
 */
export async function serveOrderProjection(
  port: MessagePort,
  settings: ProjectionThreadSettings,
): Promise<void> {
  const post = (message: FromProjectionThread): void => port.postMessage(message);
  const logger = portLogger(post, {});
  const journal = SqliteJournalReader.open(settings.journalPath);
  let readModel: OrderReadModel | undefined;
  try {
    readModel = OrderReadModel.open(settings.readModelPath);
    if (settings.reset) {
      readModel.reset();
      logger.warn({ path: settings.readModelPath }, 'order read model emptied for a rebuild');
    }
    await run(port, post, logger, journal, readModel, settings);
  } finally {
    readModel?.close();
    journal.close();
  }
}

async function run(
  port: MessagePort,
  post: (message: FromProjectionThread) => void,
  logger: Logger,
  journal: SqliteJournalReader,
  readModel: OrderReadModel,
  settings: ProjectionThreadSettings,
): Promise<void> {
  const projection: OrderProjection = new OrderProjection({
    journal,
    readModel,
    clock: systemClock,
    logger,
    settings: settings.projection,
    onApplied: (offset) => post({ type: 'applied', offset, ...projection.stats() }),
  });
  // How this thread learns of commits without a message per commit (see commit-signal.ts).
  const watch = new CommitWatch(settings.commitSignal, systemClock, settings, () => projection.notify());
  let stopping: Promise<void> | undefined;
  const stop = async (drainMs: number): Promise<void> => {
    watch.stop();
    // Drain: whatever the journal holds now is applied before the thread ends, unless that takes
    // longer than drainMs. What is left is applied at the next start, from the committed offset.
    if (drainMs > 0) await untilOrAfter(projection.caughtUp(), drainMs);
    await projection.stop();
  };
  port.on('message', (raw: unknown) => {
    const message = toProjectionThreadSchema.parse(raw);
    switch (message.type) {
      case 'nudge':
        watch.nudged();
        return;
      case 'caughtUp':
        projection.caughtUp().then(
          () => post({ type: 'caughtUp', ids: [message.id], offset: readModel.offset() }),
          // A stopped or failed projection: `failed` or the thread's end tells the main side.
          () => undefined,
        );
        return;
      case 'stop':
        stopping ??= stop(message.drainMs);
        return;
      default:
        assertNever(message);
    }
  });

  const running = projection.start();
  watch.start();
  post({ type: 'started', offset: readModel.offset() });
  // The first catch-up proves this thread works; the main side counts it as progress.
  projection.caughtUp().then(
    () => post({ type: 'caughtUp', ids: [], offset: readModel.offset() }),
    () => undefined,
  );
  try {
    await running;
  } catch (error) {
    watch.stop();
    const failure =
      error instanceof OrderProjectionError ? error : new OrderProjectionError(undefined, error);
    post({
      type: 'failed',
      message: failure.message,
      ...(failure.afterOffset === undefined ? {} : { afterOffset: failure.afterOffset }),
      ...(failure.position === undefined ? {} : { position: failure.position }),
    });
    port.close();
    throw failure;
  }
  await stopping;
  post({ type: 'stopped', offset: readModel.offset() });
  port.close();
}

function untilOrAfter(promise: Promise<void>, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = systemClock.schedule(timeoutMs, resolve);
    promise.then(
      () => {
        timer.cancel();
        resolve();
      },
      () => {
        timer.cancel();
        resolve();
      },
    );
  });
}

/**
 * A Logger whose info, warn and error records go to the main thread, which logs them with its own
 * logger; debug records (one per batch) stay here, unwritten.
 */
function portLogger(
  post: (message: FromProjectionThread) => void,
  bindings: Record<string, unknown>,
): Logger {
  const send =
    (level: 'info' | 'warn' | 'error') =>
    (fields: object, message: string): void => {
      const all = { ...bindings, ...fields, thread: 'projection-worker' };
      try {
        post({ type: 'log', level, fields: all, message });
      } catch {
        // A field the structured clone cannot copy: send the record as text rather than lose it.
        post({ type: 'log', level, fields: { record: String(JSON.stringify(all)) }, message });
      }
    };
  return {
    debug: () => undefined,
    info: send('info'),
    warn: send('warn'),
    error: send('error'),
    child: (more) => portLogger(post, { ...bindings, ...more }),
  };
}
