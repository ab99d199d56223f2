import { describe, expect, it } from 'vitest';
import { aucRoc, averagePrecision, cardPrecisionAtK, fraudMetrics, recallAtTop } from '../../src/fraud/metrics.js';

describe('fraud metrics (the handbook definitions)', () => {
  it('AUC ROC counts pairs, ties as one half', () => {
    // Pairs (pos, neg): (0.9, 0.1) (0.9, 0.5) (0.4, 0.1) win, (0.4, 0.5) loses -> 3/4.
    expect(aucRoc([0.9, 0.1, 0.4, 0.5], [1, 0, 1, 0])).toBeCloseTo(0.75, 12);
    expect(aucRoc([0.5, 0.5, 0.5], [1, 0, 0])).toBeCloseTo(0.5, 12);
    expect(aucRoc([0.2, 0.8], [0, 0])).toBeNaN();
  });

  it('Average Precision is the step-wise sum over distinct thresholds (sklearn)', () => {
    // Ranked: 1 (pos), 0.8 (neg), 0.6 (pos), 0.2 (neg): AP = 0.5 * 1 + 0.5 * 2/3.
    expect(averagePrecision([1, 0.8, 0.6, 0.2], [1, 0, 1, 0])).toBeCloseTo(0.5 + 1 / 3, 12);
    // A tie between a positive and a negative is one threshold: precision 1/2 there.
    expect(averagePrecision([0.7, 0.7], [1, 0])).toBeCloseTo(0.5, 12);
  });

  it('recall at the top fraction of scored transactions', () => {
    const scores = Array.from({ length: 1000 }, (_, i) => 1000 - i);
    const labels = scores.map((_, i) => (i === 0 || i === 5 || i === 500 ? 1 : 0));
    expect(recallAtTop(scores, labels, 0.001)).toBeCloseTo(1 / 3, 12);
    expect(recallAtTop(scores, labels, 0.01)).toBeCloseTo(2 / 3, 12);
  });

  it('Card Precision@k: per day, cards by max score, detected cards removed on later days', () => {
    const rows = [
      // day 0: card 1 fraud (max score 0.9), card 2 legit 0.8, card 3 fraud 0.1
      { day: 0, card: 1, score: 0.2, label: 0 },
      { day: 0, card: 1, score: 0.9, label: 1 },
      { day: 0, card: 2, score: 0.8, label: 0 },
      { day: 0, card: 3, score: 0.1, label: 1 },
      // day 1: card 1 again (already detected: removed), card 3 now on top
      { day: 1, card: 1, score: 0.99, label: 1 },
      { day: 1, card: 3, score: 0.7, label: 1 },
      { day: 1, card: 2, score: 0.6, label: 0 },
    ];
    const r = cardPrecisionAtK(rows, 2);
    expect(r.perDay.map((d) => d.precision)).toEqual([0.5, 0.5]);
    expect(r.perDay.map((d) => d.compromisedCards)).toEqual([2, 1]);
    expect(r.mean).toBeCloseTo(0.5, 12);
    expect(cardPrecisionAtK(rows, 1).perDay.map((d) => d.precision)).toEqual([1, 1]);
  });

  it('per scenario: its frauds against the legitimate transactions only', () => {
    const rows = [
      { score: 0.9, label: 1, scenario: 1, card: 1, day: 0 },
      { score: 0.2, label: 1, scenario: 2, card: 2, day: 0 },
      { score: 0.5, label: 0, scenario: 0, card: 3, day: 0 },
      { score: 0.1, label: 0, scenario: 0, card: 4, day: 0 },
    ];
    const m = fraudMetrics(rows);
    expect(m.scenarios.map((s) => [s.scenario, s.frauds, s.aucRoc])).toEqual([[1, 1, 1], [2, 1, 0.5]]);
    expect(m.aucRoc).toBeCloseTo(0.75, 12);
    expect(m.frauds).toBe(2);
  });
});
