/** Reads single-sample metrics from the gateway's Prometheus text at `GET /metrics`. */

const metricsTimeoutMs = 10_000;

/** The value of each named metric (an unlabelled sample); NaN for a metric that is not there. */
export async function readMetrics<N extends string>(
  baseUrl: string,
  names: readonly N[],
): Promise<Record<N, number>> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(metricsTimeoutMs) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}: ${text.slice(0, 200)}`);
  const values = {} as Record<N, number>;
  for (const name of names) values[name] = sampleValue(text, name);
  return values;
}

export function sampleValue(text: string, name: string): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name} `)) continue;
    return Number(
      line
        .slice(name.length + 1)
        .trim()
        .split(' ')[0],
    );
  }
  return Number.NaN;
}
