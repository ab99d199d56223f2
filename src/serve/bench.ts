import autocannon from 'autocannon';

/**
 * Latency of the scorer under a fixed request rate, measured by a real HTTP load generator
 * (autocannon) on loopback. Every response time is kept (autocannon's own histogram has 1 ms
 * resolution), so the percentiles are exact to the microsecond.
 */
export interface LatencyReport {
  url: string;
  rate: number;
  seconds: number;
  connections: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  achievedRate: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface LatencyOptions {
  rate: number;
  seconds: number;
  connections: number;
  /** A fresh request body each call. */
  body: () => string;
}

function percentile(sorted: Float64Array, q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

export async function latencyBenchmark(url: string, o: LatencyOptions): Promise<LatencyReport> {
  const times: number[] = [];
  let non2xx = 0;
  const instance = autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections: o.connections,
    duration: o.seconds,
    overallRate: o.rate,
    timeout: 5,
    requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, body: o.body() }) }],
  } as autocannon.Options);
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode >= 200 && statusCode < 300) times.push(responseTime);
    else non2xx++;
  });
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    instance.on('done', resolve);
    instance.on('error', reject);
  });
  const sorted = Float64Array.from(times).sort();
  return {
    url,
    rate: o.rate,
    seconds: o.seconds,
    connections: o.connections,
    requests: result.requests.total,
    non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    achievedRate: result.requests.total / Math.max(result.duration, 1e-9),
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

export function latencyLines(r: LatencyReport): string[] {
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  return [
    `${r.url}: ${r.requests} requests in ${r.seconds} s at a target of ${r.rate}/s (achieved ${r.achievedRate.toFixed(0)}/s) over ${r.connections} connections; ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`,
    `latency  p50 ${ms(r.p50)}  p90 ${ms(r.p90)}  p99 ${ms(r.p99)}  p99.9 ${ms(r.p999)}  max ${ms(r.max)}  (target p99 < 5 ms: ${r.p99 < 5 ? 'met' : 'NOT met'})`,
  ];
}

/**
 * Server-side latency quantiles of a route from the scorer's Prometheus histogram (upper
 * bucket bounds, so an over-estimate): separates time in the server from time in the client
 * and the loopback.
 */
export function histogramQuantiles(metricsText: string, route: string, qs: number[]): { count: number; quantiles: number[] } {
  const buckets: [number, number][] = [];
  const re = /^panther_request_duration_seconds_bucket\{le="([^"]+)",route="([^"]+)"\} (\d+)/gm;
  for (const m of metricsText.matchAll(re)) if (m[2] === route) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[3])]);
  buckets.sort((a, b) => a[0] - b[0]);
  const count = buckets.at(-1)?.[1] ?? 0;
  return { count, quantiles: qs.map((q) => 1000 * (buckets.find(([, c]) => c >= q * count)?.[0] ?? NaN)) };
}
