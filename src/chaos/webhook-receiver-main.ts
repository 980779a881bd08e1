import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { SeededRandom } from '../runtime/random.js';
import { WebhookReceiver } from './webhook-receiver.js';

/**
 * The chaos run's webhook receiver as a process of its own (so it can crash and be restarted):
 * `tsx src/chaos/webhook-receiver-main.ts --port P --log FILE --secrets FILE --seed N
 * [--error-rate R --close-rate R --hang-rate R --crash-rate R]`. The secrets file is JSON, merchant
 * id → signing secret. Every start draws from the seed and its start count, so restarts differ.
 */
const rate = z.coerce.number().min(0).max(1);
const argsSchema = z.object({
  port: z.coerce.number().int().min(1).max(65_535),
  log: z.string().min(1),
  secrets: z.string().min(1),
  seed: z.coerce.number().int(),
  'error-rate': rate.default(0),
  'close-rate': rate.default(0),
  'hang-rate': rate.default(0),
  'crash-rate': rate.default(0),
});

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    log: { type: 'string' },
    secrets: { type: 'string' },
    seed: { type: 'string' },
    'error-rate': { type: 'string' },
    'close-rate': { type: 'string' },
    'hang-rate': { type: 'string' },
    'crash-rate': { type: 'string' },
  },
});
const args = argsSchema.parse(values);
const secrets = z.record(z.string(), z.string()).parse(JSON.parse(readFileSync(args.secrets, 'utf8')));
const receiver = new WebhookReceiver({
  host: '127.0.0.1',
  port: args.port,
  logPath: args.log,
  secrets: new Map(Object.entries(secrets)),
  faults: {
    errorRate: args['error-rate'],
    closeRate: args['close-rate'],
    hangRate: args['hang-rate'],
    crashRate: args['crash-rate'],
  },
  // The seed and the moment of this start: a restarted receiver does not replay its faults.
  random: new SeededRandom(args.seed ^ Math.floor(performance.timeOrigin)),
});
await receiver.listen();
process.stdout.write(`webhook receiver listening on 127.0.0.1:${args.port}\n`);
const stop = (): void => {
  receiver.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
