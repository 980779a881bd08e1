import { describe, expect, it } from 'vitest';
import { clusterSettings, clusterSettingsSchema, defaultClusterSettings } from './cluster-settings.js';

describe('cluster settings', () => {
  it('accepts the defaults, whose failover bound is at most 10 s', () => {
    const settings = clusterSettingsSchema.parse(defaultClusterSettings);
    // The worst case of the arithmetic in cluster-settings.ts, without recovery and the database.
    expect(settings.leaseTtlMs + settings.heartbeatIntervalMs).toBeLessThanOrEqual(10_000 - 2_000);
  });

  it('refuses a renewal interval of a third of the TTL or more', () => {
    expect(() => clusterSettings({ leaseTtlMs: 3_000, leaseRenewIntervalMs: 1_000 })).toThrow(
      /leaseRenewIntervalMs/,
    );
    expect(clusterSettings({ leaseTtlMs: 3_001, leaseRenewIntervalMs: 1_000 }).leaseTtlMs).toBe(3_001);
  });

  it('refuses a member timeout of three heartbeats or less', () => {
    expect(() => clusterSettings({ memberTimeoutMs: 3_000 })).toThrow(/memberTimeoutMs/);
  });

  it('refuses more shards per rebalance than shards, and fractional or missing values', () => {
    expect(() => clusterSettings({ shardCount: 4, rebalanceShardsMax: 8 })).toThrow(/rebalanceShardsMax/);
    expect(() => clusterSettings({ leaseTtlMs: 4_000.5 })).toThrow();
    expect(() => clusterSettingsSchema.parse({ ...defaultClusterSettings, shardCount: undefined })).toThrow();
  });
});
