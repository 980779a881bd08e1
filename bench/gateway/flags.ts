/**
 * Number flags of the benchmarks' command lines: parsed once, refused with a message naming the
 * flag, so a typo never runs a benchmark with a silent default.
 */
export function numberFlag(
  text: string | undefined,
  fallback: number,
  flag: string,
  rules: { readonly integer: boolean; readonly zero?: boolean },
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  const valid =
    Number.isFinite(value) &&
    (rules.zero === true ? value >= 0 : value > 0) &&
    (!rules.integer || Number.isSafeInteger(value));
  if (!valid) {
    const bound = rules.zero === true ? '0 or above' : 'above 0';
    throw new Error(`${flag} must be a ${rules.integer ? 'whole ' : ''}number ${bound}, got ${text}`);
  }
  return value;
}
