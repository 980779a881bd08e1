import type { Logger } from '../runtime/logger.js';
import type { Trace } from './trace.js';

/**
 * The runtime's warnings and errors, written into the seed's trace: crashes, restarts, failed
 * writes, entities stopped for good and failed bank calls are what a replay needs to be read.
 * Debug and info lines are left out — they would multiply the trace without explaining more.
 */
export function traceLogger(trace: Trace, bindings: Readonly<Record<string, unknown>> = {}): Logger {
  const write = (level: string, fields: object, message: string): void => {
    const context = { ...bindings, ...fields };
    const parts: string[] = [];
    for (const [key, value] of Object.entries(context)) {
      if (key === 'err' || key === 'error') {
        parts.push(`${key}=${value instanceof Error ? value.message : String(value)}`);
      } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        parts.push(`${key}=${String(value)}`);
      }
    }
    trace.record(`log ${level} ${message}${parts.length === 0 ? '' : ` {${parts.join(' ')}}`}`);
  };
  return {
    debug: () => {},
    info: () => {},
    warn: (fields, message) => write('warn', fields, message),
    error: (fields, message) => write('error', fields, message),
    child: (more) => traceLogger(trace, { ...bindings, ...more }),
  };
}
