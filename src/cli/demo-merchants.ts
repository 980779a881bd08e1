import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { MerchantDirectory } from '../api/app.js';
import { demoMerchants } from '../node/demo-merchants.js';

/**
 * The merchants this node serves, with their API keys stored as hashes (`merchants.json`). On
 * first start it is created with the three demo merchants of the seed, and their keys are written
 * once, in the clear, to `credentials.json` for the person trying Remit out, with an admin token.
 */
export interface MerchantRecord {
  readonly id: string;
  readonly bank: string;
  readonly apiKeyHash: string;
}

const recordsSchema = z.object({
  merchants: z.array(
    z.object({ id: z.string().min(1), bank: z.string().min(1), apiKeyHash: z.string().length(64) }).strict(),
  ),
});

export interface MerchantsFile {
  readonly merchants: readonly MerchantRecord[];
  /** True when this start created them (and they still need their configuration). */
  readonly created: boolean;
}

export function loadOrCreateMerchants(dataDir: string): MerchantsFile {
  const path = join(dataDir, 'merchants.json');
  if (existsSync(path)) {
    const parsed = recordsSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success)
      throw new Error(`${path} is not a valid merchants file: ${parsed.error.issues[0]?.message}`);
    return { merchants: parsed.data.merchants, created: false };
  }
  const credentials = demoMerchants.map((merchant) => ({
    id: merchant.id,
    apiKey: `sk_test_${randomBytes(24).toString('base64url')}`,
    bank: merchant.bank,
  }));
  const merchants = credentials.map((entry) => ({
    id: entry.id,
    bank: entry.bank,
    apiKeyHash: MerchantDirectory.hashKey(entry.apiKey),
  }));
  writeFileSync(
    join(dataDir, 'credentials.json'),
    // The admin token of the cluster's admin API: a single node serves none yet, but the file has
    // the same shape whichever command wrote it.
    `${JSON.stringify({ merchants: credentials, adminToken: `adm_${randomBytes(24).toString('base64url')}` }, null, 2)}\n`,
    {
      mode: 0o600,
    },
  );
  writeFileSync(path, `${JSON.stringify({ merchants }, null, 2)}\n`, { mode: 0o600 });
  return { merchants, created: true };
}
