import { Pool } from 'undici';

/**
 * Latency of the scorer under a constant request rate, open loop (as wrk2 and vegeta drive a
 * server): request k is sent at t0 + k / rate whether or not earlier ones have been answered,
 * over a pool of keep-alive connections (undici), so a slow answer cannot hold back the
 * requests behind it and hide its own cost. (autocannon's rate limit sends each second's
 * quota back to back at the start of the second and then waits: a burst of concurrent
 * requests every second, not a rate.) Every response time is kept, so the percentiles are
 * exact; the generator's own lateness (timer granularity, a busy client) is reported next to
 * them, and the latencies counted from the scheduled send time include it.
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
  /** Milliseconds from sending a request to the end of its response. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Milliseconds from a request's scheduled send time to the end of its response (includes the generator's lateness). */
  scheduledP50: number;
  scheduledP99: number;
  /** How late the generator sent requests, 99th percentile, milliseconds. */
  lagP99: number;
}

export interface LatencyOptions {
  rate: number;
  seconds: number;
  /** Keep-alive connections the requests are spread over (a request waits for a free one). */
  connections: number;
  /** A fresh request body each call. */
  body: () => string;
  /** A request without an answer after this long counts as a timeout (default 5 s). */
  timeoutMs?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return /TIMEOUT/.test(code);
}

export async function latencyBenchmark(url: string, o: LatencyOptions): Promise<LatencyReport> {
  if (!(o.rate > 0) || !(o.seconds > 0) || !(o.connections >= 1)) {
    throw new RangeError(`rate ${o.rate}/s, ${o.seconds} s, ${o.connections} connections: all must be positive`);
  }
  const target = new URL(url);
  const timeoutMs = o.timeoutMs ?? 5000;
  const pool = new Pool(target.origin, { connections: o.connections, pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 30_000 });
  const total = Math.max(1, Math.round(o.rate * o.seconds));
  const interval = 1000 / o.rate;
  const latency = new Float64Array(total);
  const fromSchedule = new Float64Array(total);
  const lag = new Float64Array(total);
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let timeouts = 0;
  const pending: Promise<void>[] = [];

  const fire = (scheduled: number) => {
    const sent = performance.now();
    const done = pool
      .request({ path: target.pathname + target.search, method: 'POST', headers: { 'content-type': 'application/json' }, body: o.body() })
      .then(async (res) => {
        await res.body.dump({ limit: Infinity });
        const end = performance.now();
        if (res.statusCode < 200 || res.statusCode >= 300) {
          non2xx++;
          return;
        }
        latency[ok] = end - sent;
        fromSchedule[ok] = end - scheduled;
        lag[ok] = sent - scheduled;
        ok++;
      })
      .catch((err: unknown) => {
        if (isTimeout(err)) timeouts++;
        else errors++;
      });
    pending.push(done);
  };

  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let next = 0;
    const tick = () => {
      const now = performance.now();
      while (next < total && t0 + next * interval <= now) {
        fire(t0 + next * interval);
        next++;
      }
      if (next >= total) return resolve();
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(pending);
  const elapsed = (performance.now() - t0) / 1000;
  await pool.close();

  const sorted = latency.subarray(0, ok).sort();
  const scheduledSorted = fromSchedule.subarray(0, ok).sort();
  const lagSorted = lag.subarray(0, ok).sort();
  return {
    url,
    rate: o.rate,
    seconds: o.seconds,
    connections: o.connections,
    requests: total,
    non2xx,
    errors,
    timeouts,
    achievedRate: total / Math.max(elapsed, 1e-9),
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: ok ? sorted[ok - 1] : NaN,
    scheduledP50: percentile(scheduledSorted, 0.5),
    scheduledP99: percentile(scheduledSorted, 0.99),
    lagP99: percentile(lagSorted, 0.99),
  };
}

export function latencyLines(r: LatencyReport): string[] {
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  return [
    `${r.url}: ${r.requests} requests in ${r.seconds} s at a target of ${r.rate}/s (achieved ${r.achievedRate.toFixed(0)}/s) open loop over up to ${r.connections} keep-alive connections; ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`,
    `latency  p50 ${ms(r.p50)}  p90 ${ms(r.p90)}  p99 ${ms(r.p99)}  p99.9 ${ms(r.p999)}  max ${ms(r.max)}  (target p99 < 5 ms: ${r.p99 < 5 ? 'met' : 'NOT met'})`,
    `from the scheduled send time  p50 ${ms(r.scheduledP50)}  p99 ${ms(r.scheduledP99)}  (the generator sent late by up to ${ms(r.lagP99)} at p99)`,
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
