import { Random } from '../data/random.js';
import { PantherError } from '../errors.js';

/**
 * Full-ranking metrics from 0-based ranks of the true next token among the whole
 * vocabulary (ranks of 0xffffffff mark rows without a target and are left out).
 */
export interface RankingMetrics {
  count: number;
  hr1: number;
  hr10: number;
  hr50: number;
  ndcg10: number;
  mrr: number;
}

export const NO_TARGET = 0xffffffff;

export function rankingMetrics(ranks: ArrayLike<number>): RankingMetrics {
  let count = 0;
  let hr1 = 0;
  let hr10 = 0;
  let hr50 = 0;
  let ndcg10 = 0;
  let mrr = 0;
  for (let i = 0; i < ranks.length; i++) {
    const r = ranks[i];
    if (r === NO_TARGET) continue;
    count++;
    if (r < 1) hr1++;
    if (r < 10) {
      hr10++;
      ndcg10 += 1 / Math.log2(r + 2);
    }
    if (r < 50) hr50++;
    mrr += 1 / (r + 1);
  }
  const d = Math.max(count, 1);
  return { count, hr1: hr1 / d, hr10: hr10 / d, hr50: hr50 / d, ndcg10: ndcg10 / d, mrr: mrr / d };
}

export type RankingMetricName = 'hr1' | 'hr10' | 'ndcg10' | 'hr50';
export const GAIN_METRICS: readonly RankingMetricName[] = ['hr1', 'hr10', 'ndcg10', 'hr50'];

/** One row's share of a metric (its mean over the rows is the metric). */
function rowValue(metric: RankingMetricName, r: number): number {
  switch (metric) {
    case 'hr1':
      return r < 1 ? 1 : 0;
    case 'hr10':
      return r < 10 ? 1 : 0;
    case 'hr50':
      return r < 50 ? 1 : 0;
    case 'ndcg10':
      return r < 10 ? 1 / Math.log2(r + 2) : 0;
  }
}

export interface GainInterval {
  metric: RankingMetricName;
  /** Relative gain of A over B on all rows (A / B - 1). */
  gain: number;
  /** 95% paired bootstrap interval of the relative gain. */
  low: number;
  high: number;
  /** Share of bootstrap samples in which A scores higher than B. */
  aBetter: number;
}

/**
 * Relative gains of model A over model B ranked on the SAME held-out rows (ranks[i] of both
 * for row i), with 95% intervals from a paired bootstrap over the rows: resampling the
 * users, not the models, so the interval says how much of a gain could come from which
 * users happened to be held out. Rows without a target (NO_TARGET in either) are left out.
 */
export function pairedGains(a: ArrayLike<number>, b: ArrayLike<number>, o: { samples?: number; seed?: number } = {}): GainInterval[] {
  if (a.length !== b.length) throw new PantherError('E_ARGUMENT', `${a.length} ranks against ${b.length}: the models must be ranked on the same rows`, 'pairedGains');
  const rows: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== NO_TARGET && b[i] !== NO_TARGET) rows.push(i);
  const n = rows.length;
  const samples = o.samples ?? 2000;
  const rng = new Random(o.seed ?? 1, 'bootstrap');
  const draws = new Int32Array(n);
  const values = GAIN_METRICS.map((m) => ({ a: Float64Array.from(rows, (i) => rowValue(m, a[i])), b: Float64Array.from(rows, (i) => rowValue(m, b[i])) }));
  const gains = GAIN_METRICS.map(() => new Float64Array(samples));
  const better = GAIN_METRICS.map(() => 0);
  for (let s = 0; s < samples; s++) {
    for (let k = 0; k < n; k++) draws[k] = rng.int(n);
    values.forEach((v, m) => {
      let sa = 0;
      let sb = 0;
      for (let k = 0; k < n; k++) {
        sa += v.a[draws[k]];
        sb += v.b[draws[k]];
      }
      gains[m][s] = sb > 0 ? sa / sb - 1 : sa > 0 ? Infinity : 0;
      if (sa > sb) better[m]++;
    });
  }
  return GAIN_METRICS.map((metric, m) => {
    const sum = (x: Float64Array) => x.reduce((acc, y) => acc + y, 0);
    const sa = sum(values[m].a);
    const sb = sum(values[m].b);
    const sorted = gains[m].sort();
    const at = (q: number) => sorted[Math.min(samples - 1, Math.max(0, Math.floor(q * samples)))];
    return { metric, gain: sb > 0 ? sa / sb - 1 : sa > 0 ? Infinity : 0, low: at(0.025), high: at(0.975), aBetter: better[m] / samples };
  });
}
