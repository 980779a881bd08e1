import { join } from 'node:path';

/**
 * A curl command that works as printed: it reads the key from the credentials file. It holds a
 * test card number, so it is shown only to a person at a terminal (see `quickstartBanner`) and
 * never goes through the logger.
 */
export function quickstartCommand(url: string, dataDir: string): string {
  const credentials = join(dataDir, 'credentials.json');
  return [
    `curl -s -X POST ${url}/v1/orders \\`,
    `  -H "Authorization: Bearer $(node -p "require('${credentials}').merchants[0].apiKey")" \\`,
    `  -H "Idempotency-Key: $(node -p 'crypto.randomUUID()')" \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d '{"amount": 1250, "currency": "EUR", "card": {"number": "4242424242424242", "expMonth": 12, "expYear": 2030, "cvc": "123"}}'`,
  ].join('\n');
}

/** What `remit start` shows a person at a terminal once the gateway listens. */
export function quickstartBanner(url: string, dataDir: string): string {
  const command = quickstartCommand(url, dataDir)
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  return [
    `Remit is listening on ${url} (demo merchants and API keys: ${join(dataDir, 'credentials.json')})`,
    '',
    'Try an order:',
    command,
  ].join('\n');
}
