import { parseArgs } from 'node:util';
import { z } from 'zod';
import { defaultAuthorizationBatchMax } from '../bank/bank-client.js';
import { batchPaymentsMax } from '../bank/bank-schemas.js';

/**
 * Configuration of `remit start` and `remit bank`: flags first, then `REMIT_*` environment
 * variables, then defaults. Anything wrong is a `ConfigError` with a sentence a person can act on;
 * the command prints it and exits with code 2.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(0, 'must be 0 to 65535')
  .max(65_535, 'must be 0 to 65535');
const host = z.string().min(1, 'must not be empty');
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const startSchema = z
  .object({
    host,
    port,
    data: z.string().min(1, 'must not be empty'),
    bankUrl: z.url({ error: 'must be a URL such as http://127.0.0.1:8081' }).optional(),
    bankPort: port,
    vaultKey: z
      .string()
      .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes in base64 (44 characters)')
      .optional(),
    logLevel,
    accessLogLevel: logLevel,
    executionDeadlineMs: z.coerce.number().int('must be a whole number').min(1_000, 'must be at least 1000'),
    bankTimeoutMs: z.coerce.number().int('must be a whole number').min(100, 'must be at least 100'),
    bankBatchMax: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be 1 to 1024')
      .max(batchPaymentsMax, `must be 1 to ${batchPaymentsMax}`),
  })
  .strict();

const bankSchema = z.object({ host, port, data: z.string().min(1, 'must not be empty'), logLevel }).strict();

export type StartConfig = z.infer<typeof startSchema>;
export type BankConfig = z.infer<typeof bankSchema>;

type Environment = Readonly<Record<string, string | undefined>>;

const startOptions = {
  host: { type: 'string' },
  port: { type: 'string' },
  data: { type: 'string' },
  'bank-url': { type: 'string' },
  'bank-port': { type: 'string' },
  'log-level': { type: 'string' },
  'access-log-level': { type: 'string' },
  'execution-deadline-ms': { type: 'string' },
  'bank-timeout-ms': { type: 'string' },
  'bank-batch-max': { type: 'string' },
} as const;

const bankOptions = {
  host: { type: 'string' },
  port: { type: 'string' },
  data: { type: 'string' },
  'log-level': { type: 'string' },
} as const;

export function parseStartConfig(args: readonly string[], env: Environment): StartConfig {
  const flags = parseFlags(args, startOptions);
  return validate(startSchema, {
    host: flags.host ?? env.REMIT_HOST ?? '127.0.0.1',
    port: flags.port ?? env.REMIT_PORT ?? '8080',
    data: flags.data ?? env.REMIT_DATA ?? './data',
    bankUrl: flags['bank-url'] ?? env.REMIT_BANK_URL,
    bankPort: flags['bank-port'] ?? env.REMIT_BANK_PORT ?? '8081',
    vaultKey: env.REMIT_VAULT_KEY,
    logLevel: flags['log-level'] ?? env.REMIT_LOG_LEVEL ?? 'info',
    accessLogLevel: flags['access-log-level'] ?? env.REMIT_ACCESS_LOG_LEVEL ?? 'info',
    executionDeadlineMs: flags['execution-deadline-ms'] ?? env.REMIT_EXECUTION_DEADLINE_MS ?? '60000',
    bankTimeoutMs: flags['bank-timeout-ms'] ?? env.REMIT_BANK_TIMEOUT_MS ?? '10000',
    bankBatchMax: flags['bank-batch-max'] ?? env.REMIT_BANK_BATCH_MAX ?? String(defaultAuthorizationBatchMax),
  });
}

export function parseBankConfig(args: readonly string[], env: Environment): BankConfig {
  const flags = parseFlags(args, bankOptions);
  return validate(bankSchema, {
    host: flags.host ?? env.REMIT_BANK_HOST ?? '127.0.0.1',
    port: flags.port ?? env.REMIT_BANK_PORT ?? '8081',
    data: flags.data ?? env.REMIT_BANK_DATA ?? './bank-data',
    logLevel: flags['log-level'] ?? env.REMIT_LOG_LEVEL ?? 'info',
  });
}

function parseFlags<O extends Record<string, { type: 'string' }>>(
  args: readonly string[],
  options: O,
): Partial<Record<keyof O, string>> {
  try {
    const { values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
    return values as Partial<Record<keyof O, string>>;
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

function validate<T>(schema: z.ZodType<T>, input: Record<string, unknown>): T {
  const defined = Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined));
  const result = schema.safeParse(defined);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') ?? 'configuration';
  const flag = `--${String(field).replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
  throw new ConfigError(`invalid ${flag}: ${issue?.message ?? 'not valid'}`);
}
