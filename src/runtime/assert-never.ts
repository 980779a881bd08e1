/**
 * The `default` branch of a `switch` that handles every member of a union: the compiler proves
 * it unreachable, and if a value the types did not allow arrives anyway (data read from outside,
 * a union widened without updating a switch), it is a bug, so it crashes with the value named.
 */
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value, bigintAsText)}`);
}

/** JSON.stringify throws on a bigint; the message must still name the value. */
function bigintAsText(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
