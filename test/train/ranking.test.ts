import { describe, expect, it } from 'vitest';
import { NO_TARGET, pairedGains, rankingMetrics } from '../../src/train/ranking.js';
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

describe('paired bootstrap of gains', () => {
  const gain = (a: number[], b: number[], metric = 'hr10') => pairedGains(a, b, { samples: 500 }).find((g) => g.metric === metric)!;

  it('gives no gain and a zero-width interval for identical rankings', () => {
    const r = Array.from({ length: 200 }, (_, i) => (i * 7) % 40);
    for (const g of pairedGains(r, r, { samples: 200 })) {
      expect(g.gain).toBe(0);
      expect([g.low, g.high]).toEqual([0, 0]);
      expect(g.aBetter).toBe(0);
    }
  });

  it('is sure of a gain on every row, unsure of one on a few of many', () => {
    // A hits the top 10 on rows B misses; B never beats A.
    const b = Array.from({ length: 400 }, (_, i) => (i % 2 ? 3 : 30));
    const a = b.map((r, i) => (i % 4 === 0 ? 5 : r));
    const sure = gain(a, b);
    expect(sure.gain).toBeCloseTo(300 / 200 - 1, 12);
    expect(sure.low).toBeGreaterThan(0.3);
    expect(sure.high).toBeLessThan(0.7);
    expect(sure.aBetter).toBe(1);
    // Two rows out of 400 swapped in A's favour, two in B's: no evidence either way.
    const c = b.map((r, i) => (i === 0 || i === 2 ? 3 : i === 1 || i === 3 ? 30 : r));
    const unsure = gain(c, b);
    expect(unsure.gain).toBe(0);
    expect(unsure.low).toBeLessThan(0);
    expect(unsure.high).toBeGreaterThan(0);
    expect(unsure.aBetter).toBeGreaterThan(0.1);
    expect(unsure.aBetter).toBeLessThan(0.9);
  });

  it('draws a user\'s rows together: wider intervals when a user\'s events move as one', () => {
    // 100 users with 4 held-out events each; B hits on every other event, A also on all four of every tenth user's.
    const users = Array.from({ length: 400 }, (_, i) => Math.floor(i / 4));
    const b = users.map((_, i) => (i % 2 ? 3 : 30));
    const a = b.map((r, i) => (users[i] % 10 === 0 ? 3 : r));
    const hr10 = (g: ReturnType<typeof pairedGains>) => g.find((x) => x.metric === 'hr10')!;
    const rowWise = hr10(pairedGains(a, b, { samples: 2000 }));
    const userWise = hr10(pairedGains(a, b, { samples: 2000, users }));
    expect(userWise.gain).toBeCloseTo(220 / 200 - 1, 12);
    expect(userWise.gain).toBe(rowWise.gain);
    expect(userWise.high - userWise.low).toBeGreaterThan(1.2 * (rowWise.high - rowWise.low));
    // Without users every row is its own user.
    expect(pairedGains(a, b, { samples: 300, users: users.map((_, i) => i) })).toEqual(pairedGains(a, b, { samples: 300 }));
    expect(() => pairedGains([1, 2], [1, 2], { users: [0] })).toThrow(/2 ranked rows/);
  });

  it('leaves out rows without a target and refuses rankings of different rows', () => {
    const g = gain([0, NO_TARGET, 0], [0, 0, 20], 'hr1');
    expect(g.gain).toBeCloseTo(2 / 1 - 1, 12);
    expect(() => pairedGains([1, 2], [1])).toThrow(/same rows/);
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
