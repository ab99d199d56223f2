import { describe, expect, it } from 'vitest';
import { NO_TARGET, rankingMetrics } from '../../src/train/ranking.js';
import { learningRate } from '../../src/train/schedule.js';

describe('ranking metrics', () => {
  it('computes HR@k, NDCG@10 and MRR from 0-based ranks, skipping rows without a target', () => {
    const m = rankingMetrics([0, 1, 9, 10, 49, NO_TARGET]);
    expect(m.count).toBe(5);
    expect(m.hr1).toBeCloseTo(1 / 5);
    expect(m.hr10).toBeCloseTo(3 / 5);
    expect(m.hr50).toBeCloseTo(5 / 5);
    expect(m.ndcg10).toBeCloseTo((1 + 1 / Math.log2(3) + 1 / Math.log2(11)) / 5);
    expect(m.mrr).toBeCloseTo((1 + 1 / 2 + 1 / 10 + 1 / 11 + 1 / 50) / 5);
  });

  it('is zero, not NaN, with no rows', () => {
    expect(rankingMetrics([NO_TARGET]).hr10).toBe(0);
  });
});

describe('learning-rate schedule', () => {
  const o = { peak: 1e-3, warmup: 10, total: 110, minRatio: 0.1 };
  it('warms up linearly, peaks, then decays by cosine to the floor', () => {
    expect(learningRate(0, o)).toBeCloseTo(1e-4);
    expect(learningRate(9, o)).toBeCloseTo(1e-3);
    expect(learningRate(10, o)).toBeCloseTo(1e-3);
    expect(learningRate(60, o)).toBeCloseTo(0.55e-3);
    expect(learningRate(110, o)).toBeCloseTo(1e-4);
    expect(learningRate(500, o)).toBeCloseTo(1e-4);
  });
});
