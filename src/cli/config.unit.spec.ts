import { describe, expect, it } from 'vitest';
import { ConfigError, databaseSettings, parseStartConfig } from './config.js';

describe('remit start: the database settings', () => {
  it('runs on SQLite without a database URL', () => {
    expect(databaseSettings(parseStartConfig([], {}))).toBeUndefined();
  });

  it('reads the URL from the flag, then REMIT_DATABASE_URL, then DATABASE_URL', () => {
    const flag = 'postgresql://a@flag:5432/remit';
    const remit = 'postgresql://a@remit:5432/remit';
    const plain = 'postgres://a@plain:5432/remit';
    const env = { REMIT_DATABASE_URL: remit, DATABASE_URL: plain };
    expect(parseStartConfig(['--database-url', flag], env).databaseUrl).toBe(flag);
    expect(parseStartConfig([], env).databaseUrl).toBe(remit);
    expect(parseStartConfig([], { DATABASE_URL: plain }).databaseUrl).toBe(plain);
  });

  it('names schema, pool size and timeouts as flags and REMIT_* variables', () => {
    const config = parseStartConfig(
      ['--database-url', 'postgresql://a@h/db', '--database-schema', 'remit_eu', '--database-pool-size', '4'],
      {
        REMIT_DATABASE_STATEMENT_TIMEOUT_MS: '30000',
        REMIT_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: '2000',
      },
    );
    expect(databaseSettings(config)).toMatchObject({
      schema: 'remit_eu',
      poolSizeMax: 4,
      statementTimeoutMs: 30_000,
      idleInTransactionSessionTimeoutMs: 2_000,
    });
    // The client's own limit stays behind the server's statement timeout.
    expect(databaseSettings(config)?.queryTimeoutMs).toBeGreaterThan(30_000);
  });

  it('refuses bad values with the flag named, never echoing the URL', () => {
    expect(() => parseStartConfig(['--database-pool-size', '0'], {})).toThrow('invalid --database-pool-size');
    expect(() => parseStartConfig(['--database-schema', 'Bad-Name'], {})).toThrow(
      'invalid --database-schema',
    );
    const refused = (() => {
      try {
        parseStartConfig(['--database-url', 'mysql://user:hunter2@h/db'], {});
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(refused).toBeInstanceOf(ConfigError);
    expect(String(refused)).toContain('invalid --database-url');
    expect(String(refused)).not.toContain('hunter2');
  });
});
