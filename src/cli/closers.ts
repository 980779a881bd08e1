import type { Logger as PinoLogger } from 'pino';

/**
 * What a starting process has opened, to be closed in reverse order: on a failed start and on
 * stop. A closer that throws is logged and the rest still run, so one broken part cannot keep the
 * stores open.
 */
export function reverseClosers(logger: PinoLogger): {
  readonly closers: Array<() => Promise<void> | void>;
  closeAll(): Promise<void>;
} {
  const closers: Array<() => Promise<void> | void> = [];
  return {
    closers,
    async closeAll(): Promise<void> {
      for (const close of closers.splice(0).reverse()) {
        try {
          await close();
        } catch (error) {
          logger.error({ err: error }, 'error while stopping');
        }
      }
    },
  };
}
