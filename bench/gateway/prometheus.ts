/** Reads metrics from the gateway's Prometheus text at `GET /metrics`. */

const metricsTimeoutMs = 10_000;

export async function fetchMetricsText(baseUrl: string): Promise<string> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(metricsTimeoutMs) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}: ${text.slice(0, 200)}`);
  return text;
}

/** The value of each named metric (an unlabelled sample); NaN for a metric that is not there. */
export function sampleValues<N extends string>(text: string, names: readonly N[]): Record<N, number> {
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

/** An unlabelled histogram: cumulative counts per upper bound (`le`, +Inf last), sum and count. */
export interface HistogramSample {
  readonly buckets: ReadonlyArray<readonly [number, number]>;
  readonly sum: number;
  readonly count: number;
}

export function histogramSample(text: string, name: string): HistogramSample | undefined {
  const buckets: Array<[number, number]> = [];
  const prefix = `${name}_bucket{le="`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const [le, value] = line.slice(prefix.length).split('"} ');
    buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), Number(value)]);
  }
  if (buckets.length === 0) return undefined;
  buckets.sort(([a], [b]) => a - b);
  return { buckets, sum: sampleValue(text, `${name}_sum`), count: sampleValue(text, `${name}_count`) };
}

/**
 * What a histogram recorded between two samples: count, mean, and per quantile the upper bound of
 * the bucket it falls in (a histogram knows no more), all in the histogram's unit times `scale`.
 */
export function histogramBetween(
  start: HistogramSample,
  end: HistogramSample,
  quantiles: readonly number[],
  scale: number,
): { count: number; mean: number | null; atMost: Record<string, number | null> } {
  const count = end.count - start.count;
  const atMost: Record<string, number | null> = {};
  for (const quantile of quantiles) {
    const rank = quantile * count;
    let bound: number | null = null;
    for (const [index, [le, cumulative]] of end.buckets.entries()) {
      const before = start.buckets[index]?.[1] ?? 0;
      if (count > 0 && cumulative - before >= rank) {
        bound = Number.isFinite(le) ? le * scale : null;
        break;
      }
    }
    atMost[`p${String(quantile * 100).replace('.', '')}`] = bound;
  }
  return { count, mean: count > 0 ? ((end.sum - start.sum) / count) * scale : null, atMost };
}
