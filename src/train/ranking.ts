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

export type RankingMetricName = 'hr1' | 'hr10' | 'ndcg10' | 'hr50';
export const RANKING_METRICS: readonly RankingMetricName[] = ['hr1', 'hr10', 'ndcg10', 'hr50'];

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

export function rankingMetrics(ranks: ArrayLike<number>): RankingMetrics {
  let count = 0;
  const sums = RANKING_METRICS.map(() => 0);
  let mrr = 0;
  for (let i = 0; i < ranks.length; i++) {
    const r = ranks[i];
    if (r === NO_TARGET) continue;
    count++;
    RANKING_METRICS.forEach((m, k) => (sums[k] += rowValue(m, r)));
    mrr += 1 / (r + 1);
  }
  const d = Math.max(count, 1);
  const [hr1, hr10, ndcg10, hr50] = sums.map((x) => x / d);
  return { count, hr1, hr10, hr50, ndcg10, mrr: mrr / d };
}

/** Resamples of the paired bootstrap. */
export const BOOTSTRAP_SAMPLES = 2000;

/** A / B - 1, with no gain over nothing and an unbounded one from nothing. */
function ratioGain(a: number, b: number): number {
  return b > 0 ? a / b - 1 : a > 0 ? Infinity : 0;
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
 * for row i), with 95% intervals from a paired bootstrap over the users: resampling the
 * users, not the models, so the interval says how much of a gain could come from which
 * users happened to be held out. `users[i]` is row i's user: a user's rows are drawn
 * together (a time split holds out many events of a user, and they are not independent);
 * without it every row is its own user (leave-one-out). Rows without a target (NO_TARGET in
 * either) are left out.
 */
export function pairedGains(a: ArrayLike<number>, b: ArrayLike<number>, o: { samples?: number; seed?: number; users?: ArrayLike<number> } = {}): GainInterval[] {
  if (a.length !== b.length) throw new PantherError('E_ARGUMENT', `${a.length} ranks against ${b.length}: the models must be ranked on the same rows`, 'pairedGains');
  if (o.users && o.users.length !== a.length) throw new PantherError('E_ARGUMENT', `${o.users.length} users for ${a.length} ranked rows`, 'pairedGains');
  // Per user (in order of first appearance), the sums of each metric's row values.
  const groupOf = new Map<number, number>();
  const rowGroups: number[] = [];
  const rows: number[] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i] === NO_TARGET || b[i] === NO_TARGET) continue;
    const user = o.users ? o.users[i] : i;
    let g = groupOf.get(user);
    if (g === undefined) groupOf.set(user, (g = groupOf.size));
    rows.push(i);
    rowGroups.push(g);
  }
  const n = groupOf.size;
  const samples = o.samples ?? BOOTSTRAP_SAMPLES;
  const rng = new Random(o.seed ?? 1, 'bootstrap');
  const draws = new Int32Array(n);
  const values = RANKING_METRICS.map((m) => {
    const v = { a: new Float64Array(n), b: new Float64Array(n) };
    rows.forEach((i, k) => {
      v.a[rowGroups[k]] += rowValue(m, a[i]);
      v.b[rowGroups[k]] += rowValue(m, b[i]);
    });
    return v;
  });
  const gains = RANKING_METRICS.map(() => new Float64Array(samples));
  const better = RANKING_METRICS.map(() => 0);
  for (let s = 0; s < samples; s++) {
    for (let k = 0; k < n; k++) draws[k] = rng.int(n);
    values.forEach((v, m) => {
      let sa = 0;
      let sb = 0;
      for (let k = 0; k < n; k++) {
        sa += v.a[draws[k]];
        sb += v.b[draws[k]];
      }
      gains[m][s] = ratioGain(sa, sb);
      if (sa > sb) better[m]++;
    });
  }
  return RANKING_METRICS.map((metric, m) => {
    const sum = (x: Float64Array) => x.reduce((acc, y) => acc + y, 0);
    const sorted = gains[m].sort();
    const at = (q: number) => sorted[Math.min(samples - 1, Math.max(0, Math.floor(q * samples)))];
    return { metric, gain: ratioGain(sum(values[m].a), sum(values[m].b)), low: at(0.025), high: at(0.975), aBetter: better[m] / samples };
  });
}
