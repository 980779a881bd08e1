import assert from 'node:assert/strict';

/** What a migration run did: the schema version it found, and the one it left. */
export interface MigrationResult {
  readonly fromVersion: number;
  readonly toVersion: number;
}

/**
 * The latest version of a backend's migrations, which must be numbered 1, 2, 3, …: a gap or a
 * duplicate would skip or repeat a migration in the field.
 */
export function latestVersionOf(migrations: readonly { readonly version: number }[]): number {
  migrations.forEach((migration, index) => {
    assert.ok(migration.version === index + 1, `migration ${index} has version ${migration.version}`);
  });
  return migrations.length;
}
