import { z } from 'zod';

/**
 * What the gateway's main thread and the order projection's worker thread say to each other
 * (`OrderProjectionWorker` on the main side, `serveOrderProjection` in the worker). Both ends
 * parse what they receive: a message is input like any other.
 *
 * Main → worker: `nudge` (the journal has grown while you slept; see `commit-signal.ts`, which
 * also says how the worker learns of commits while it is busy, without messages), `caughtUp` (tell
 * me with this id once you have read to the journal's end as it is now), `stop` (drain for at most
 * `drainMs`, then end).
 * Worker → main: `started` (files open, offset), `applied` (a batch committed), `caughtUp`,
 * `log`, `failed` (the projection stopped on an error; the thread ends next), `stopped`.
 */

const offset = z.number().int().nonnegative();
const position = z.object({ persistenceId: z.string(), seqNr: z.number().int() }).strict();

export const projectionThreadSettingsSchema = z
  .object({
    /** The journal's SQLite file, read over a read-only connection. */
    journalPath: z.string().min(1),
    /** The read model's file, written by the worker alone. */
    readModelPath: z.string().min(1),
    /** Empty the read model before projecting: a rebuild from offset 0. */
    reset: z.boolean(),
    /** Shared with the main thread: the commit count and the sleeping flag (`commit-signal.ts`). */
    commitSignal: z.instanceof(SharedArrayBuffer),
    busyPollIntervalMs: z.number().positive(),
    quietAfterMs: z.number().nonnegative(),
    projection: z
      .object({
        batchSize: z.number().int().positive().optional(),
        pollIntervalMs: z.number().positive().optional(),
        waitersMax: z.number().int().positive().optional(),
      })
      .strict(),
  })
  .strict();

export type ProjectionThreadSettings = z.infer<typeof projectionThreadSettingsSchema>;

export const toProjectionThreadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('nudge') }).strict(),
  z.object({ type: z.literal('caughtUp'), id: z.number().int().nonnegative() }).strict(),
  z.object({ type: z.literal('stop'), drainMs: z.number().nonnegative() }).strict(),
]);

export type ToProjectionThread = z.infer<typeof toProjectionThreadSchema>;

export const logLevels = ['info', 'warn', 'error'] as const;

export const fromProjectionThreadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), offset }).strict(),
  z.object({ type: z.literal('applied'), offset, batches: offset, events: offset }).strict(),
  /** The answer to `caughtUp` requests; `ids` is empty for the worker's own first catch-up. */
  z.object({ type: z.literal('caughtUp'), ids: z.array(z.number().int().nonnegative()), offset }).strict(),
  z
    .object({
      type: z.literal('log'),
      level: z.enum(logLevels),
      fields: z.record(z.string(), z.unknown()),
      message: z.string(),
    })
    .strict(),
  z
    .object({
      type: z.literal('failed'),
      message: z.string(),
      afterOffset: offset.optional(),
      position: position.optional(),
    })
    .strict(),
  z.object({ type: z.literal('stopped'), offset }).strict(),
]);

export type FromProjectionThread = z.infer<typeof fromProjectionThreadSchema>;
