import { describe, expect, it } from 'vitest';
import { defaultClusterSettings } from '../cluster/cluster-settings.js';
import {
  ConfigError,
  databaseSettings,
  parseClusterConfig,
  parseNodeConfig,
  parseStartConfig,
} from './config.js';

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

describe('remit start and remit node: insecure webhook URLs', () => {
  const nodeArgs = [
    '--node-id',
    'node-1',
    '--bank-url',
    'http://127.0.0.1:8081',
    '--database-url',
    'postgresql://a@h/db',
  ];
  const nodeEnv = { REMIT_VAULT_KEY: Buffer.alloc(32, 7).toString('base64') };

  it('refuses them unless the flag or REMIT_WEBHOOKS_ALLOW_INSECURE=true allows them', () => {
    expect(parseStartConfig([], {}).webhooksAllowInsecure).toBe(false);
    expect(parseStartConfig(['--webhooks-allow-insecure'], {}).webhooksAllowInsecure).toBe(true);
    expect(parseStartConfig([], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'true' }).webhooksAllowInsecure).toBe(true);
    expect(parseStartConfig([], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'false' }).webhooksAllowInsecure).toBe(
      false,
    );
    expect(
      parseStartConfig(['--webhooks-allow-insecure'], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'false' })
        .webhooksAllowInsecure,
    ).toBe(true);
    expect(parseNodeConfig(nodeArgs, nodeEnv).webhooksAllowInsecure).toBe(false);
    expect(parseNodeConfig([...nodeArgs, '--webhooks-allow-insecure'], nodeEnv).webhooksAllowInsecure).toBe(
      true,
    );
    expect(
      parseNodeConfig(nodeArgs, { ...nodeEnv, REMIT_WEBHOOKS_ALLOW_INSECURE: 'true' }).webhooksAllowInsecure,
    ).toBe(true);
  });

  it('refuses a variable that is not true or false, and a value given to the flag', () => {
    expect(() => parseStartConfig([], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'yes' })).toThrow(
      'invalid --webhooks-allow-insecure: REMIT_WEBHOOKS_ALLOW_INSECURE must be true or false',
    );
    expect(() => parseStartConfig(['--webhooks-allow-insecure=false'], {})).toThrow(ConfigError);
  });
});

describe('remit node: its configuration', () => {
  const vaultKey = Buffer.alloc(32, 7).toString('base64');
  const required = [
    '--node-id',
    'node-1',
    '--bank-url',
    'http://127.0.0.1:8081',
    '--database-url',
    'postgresql://a@db:5432/remit',
  ];

  it('reads roles, node id and cluster port from flags, and DATABASE_URL too', () => {
    const config = parseNodeConfig(['--roles', 'bank-a, bank-b', '--cluster-port', '7071', ...required], {
      REMIT_VAULT_KEY: vaultKey,
    });
    expect(config.roles).toEqual(['bank-a', 'bank-b']);
    expect(config.nodeId).toBe('node-1');
    expect(config.clusterPort).toBe(7071);
    expect(config.host).toBe('127.0.0.1');
    const fromEnv = parseNodeConfig(['--node-id', 'node-2', '--bank-url', 'http://127.0.0.1:8081'], {
      REMIT_VAULT_KEY: vaultKey,
      DATABASE_URL: 'postgres://a@plain:5432/remit',
      REMIT_ROLES: 'bank-c',
    });
    expect(fromEnv.databaseUrl).toBe('postgres://a@plain:5432/remit');
    expect(fromEnv.roles).toEqual(['bank-c']);
  });

  it('reads the cluster timing from flags, then REMIT_* variables, then the defaults', () => {
    expect(parseNodeConfig(required, { REMIT_VAULT_KEY: vaultKey }).cluster).toEqual(defaultClusterSettings);
    const config = parseNodeConfig(
      [
        ...required,
        '--heartbeat-interval-ms',
        '200',
        '--member-timeout-ms',
        '1000',
        '--lease-ttl-ms',
        '1500',
        '--lease-renew-interval-ms',
        '300',
      ],
      {
        REMIT_VAULT_KEY: vaultKey,
        REMIT_SHARD_COUNT: '16',
        REMIT_REBALANCE_SHARDS_MAX: '4',
        REMIT_LEASE_TTL_MS: '9000',
      },
    );
    expect(config.cluster).toEqual({
      heartbeatIntervalMs: 200,
      memberTimeoutMs: 1_000,
      leaseTtlMs: 1_500,
      leaseRenewIntervalMs: 300,
      shardCount: 16,
      rebalanceShardsMax: 4,
    });
  });

  it('refuses cluster timing the cluster settings refuse, naming the flag', () => {
    const env = { REMIT_VAULT_KEY: vaultKey };
    expect(() => parseNodeConfig([...required, '--lease-ttl-ms', 'soon'], env)).toThrow(
      /invalid --lease-ttl-ms: must be a number/,
    );
    expect(() => parseNodeConfig([...required, '--lease-renew-interval-ms', '2000'], env)).toThrow(
      /invalid --lease-renew-interval-ms: leaseRenewIntervalMs must be less than a third of leaseTtlMs/,
    );
    expect(() => parseNodeConfig([...required, '--member-timeout-ms', '2000'], env)).toThrow(
      /invalid --member-timeout-ms: memberTimeoutMs must be more than three heartbeatIntervalMs/,
    );
    expect(() => parseNodeConfig([...required, '--rebalance-shards-max', '200'], env)).toThrow(
      /invalid --rebalance-shards-max/,
    );
    expect(() => parseNodeConfig([...required, '--heartbeat-interval-ms', '5'], env)).toThrow(
      /invalid --heartbeat-interval-ms/,
    );
  });

  it('refuses to start without REMIT_VAULT_KEY or a database URL, saying what to set', () => {
    expect(() => parseNodeConfig(required, {})).toThrow(/REMIT_VAULT_KEY must be set/);
    expect(() =>
      parseNodeConfig(['--node-id', 'node-1', '--bank-url', 'http://127.0.0.1:8081'], {
        REMIT_VAULT_KEY: vaultKey,
      }),
    ).toThrow(ConfigError);
  });
});

describe('remit cluster: its configuration', () => {
  it('starts three nodes from port 8080 in ./cluster-data on 127.0.0.1, the bank on a free port', () => {
    expect(parseClusterConfig([], {})).toEqual({
      nodes: 3,
      host: '127.0.0.1',
      port: 8080,
      bankPort: 0,
      data: './cluster-data',
      logLevel: 'info',
    });
  });

  it('reads every setting from a flag first, then its REMIT_* variable', () => {
    const env = {
      REMIT_NODES: '5',
      REMIT_PORT: '9000',
      REMIT_DATA: '/srv/remit',
      REMIT_HOST: '0.0.0.0',
      REMIT_BANK_PORT: '9100',
      REMIT_LOG_LEVEL: 'warn',
      REMIT_VAULT_KEY: Buffer.alloc(32, 1).toString('base64'),
    };
    expect(parseClusterConfig([], env)).toEqual({
      nodes: 5,
      host: '0.0.0.0',
      port: 9000,
      bankPort: 9100,
      data: '/srv/remit',
      logLevel: 'warn',
      vaultKey: env.REMIT_VAULT_KEY,
    });
    const flags = ['--nodes', '2', '--port', '0', '--data', 'here', '--host', '::1', '--bank-port', '1'];
    expect(parseClusterConfig([...flags, '--log-level', 'debug'], env)).toMatchObject({
      nodes: 2,
      port: 0,
      data: 'here',
      host: '::1',
      bankPort: 1,
      logLevel: 'debug',
    });
  });

  it('refuses bad values with a sentence naming the flag', () => {
    const refusal = (args: string[], env: Record<string, string> = {}): string => {
      try {
        parseClusterConfig(args, env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return String(error);
      }
      return 'accepted';
    };
    expect(refusal(['--nodes', '0'])).toContain('invalid --nodes: must be 1 to 16');
    expect(refusal(['--nodes', '17'])).toContain('invalid --nodes: must be 1 to 16');
    expect(refusal(['--nodes', 'three'])).toContain('invalid --nodes');
    expect(refusal(['--port', '65534', '--nodes', '3'])).toContain('invalid --port: leaves no room');
    expect(refusal(['--port', '65533', '--nodes', '3'])).toBe('accepted');
    expect(refusal(['--roles', 'bank-a'])).toContain("Unknown option '--roles'");
    expect(refusal([], { REMIT_VAULT_KEY: 'short' })).toContain(
      'invalid REMIT_VAULT_KEY: must be 32 bytes in base64',
    );
  });
});

describe('remit start: webhooks to insecure addresses', () => {
  it('are refused unless the flag or REMIT_WEBHOOKS_ALLOW_INSECURE=true allows them', () => {
    expect(parseStartConfig([], {}).webhooksAllowInsecure).toBe(false);
    expect(parseStartConfig(['--webhooks-allow-insecure'], {}).webhooksAllowInsecure).toBe(true);
    expect(parseStartConfig([], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'true' }).webhooksAllowInsecure).toBe(true);
    expect(parseStartConfig([], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'false' }).webhooksAllowInsecure).toBe(
      false,
    );
    expect(() => parseStartConfig([], { REMIT_WEBHOOKS_ALLOW_INSECURE: 'yes' })).toThrow(ConfigError);
  });
});
