import { describe, expect, it } from 'vitest';
import { Random } from '../../src/data/random.js';
import { trainGbdt, Gbdt } from '../../src/fraud/gbdt.js';
import { aucRoc } from '../../src/fraud/metrics.js';
import { fitProjection, project, symmetricEigen } from '../../src/fraud/projection.js';

function data(n: number, seed: number) {
  const r = new Random(seed, 'gbdt-test');
  const x = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    x[0][i] = r.next();
    x[1][i] = r.next();
    x[2][i] = r.next(); // noise
    // An interaction no single split separates: fraud when both are high or both low.
    const p = (x[0][i] > 0.5) === (x[1][i] > 0.5) ? 0.3 : 0.02;
    y[i] = r.next() < p ? 1 : 0;
  }
  return { x, y };
}

describe('gradient-boosted trees', () => {
  it('learns an interaction on training data and generalizes to held-out rows', () => {
    const train = data(4000, 1);
    const test = data(4000, 2);
    const m = trainGbdt(['a', 'b', 'noise'], train.x, train.y, { rounds: 60, maxDepth: 3 });
    const scores = m.predictColumns(test.x, 4000);
    expect(aucRoc(scores, test.y)).toBeGreaterThan(0.72); // the Bayes-optimal AUC is 0.76
    // The noise feature matters least.
    expect(m.importance().at(-1)!.feature).toBe('noise');
    // One tree of depth 1 cannot represent it: held-out AUC near chance.
    const stump = trainGbdt(['a', 'b', 'noise'], train.x, train.y, { rounds: 1, maxDepth: 1 });
    expect(aucRoc(stump.predictColumns(test.x, 4000), test.y)).toBeLessThan(0.6);
  });

  it('round-trips through JSON and predicts with raw thresholds', () => {
    const train = data(500, 3);
    const m = trainGbdt(['a', 'b', 'noise'], train.x, train.y, { rounds: 10 });
    const copy = new Gbdt(JSON.parse(JSON.stringify(m.state)));
    for (let i = 0; i < 50; i++) {
      const row = [train.x[0][i], train.x[1][i], train.x[2][i]];
      expect(copy.predict(row)).toBe(m.predict(row));
    }
  });

  it('rejects non-finite features with the feature and row', () => {
    const x = [Float64Array.of(1, NaN)];
    expect(() => trainGbdt(['amount'], x, [0, 1])).toThrow(/feature amount row 1 is NaN/);
  });

  it('PCA finds the direction of largest variance', () => {
    const r = new Random(4, 'pca');
    const d = 3;
    const n = 2000;
    const x = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      const t = 3 * (r.next() - 0.5);
      x[i * d] = t + 0.05 * (r.next() - 0.5);
      x[i * d + 1] = -t + 0.05 * (r.next() - 0.5);
      x[i * d + 2] = 0.1 * (r.next() - 0.5) + 7;
    }
    const p = fitProjection(x, d, Array.from({ length: n }, (_, i) => i), 1);
    const [c] = p.components;
    expect(Math.abs(c[0])).toBeCloseTo(Math.SQRT1_2, 2);
    expect(c[0] * c[1]).toBeLessThan(0);
    expect(p.mean[2]).toBeCloseTo(7, 1);
    expect(project(p, [1 + p.mean[0], -1 + p.mean[1], p.mean[2]])[0] ** 2).toBeCloseTo(2, 2);
    const { values } = symmetricEigen(Float64Array.of(2, 1, 1, 2), 2);
    expect([...values].sort()).toEqual([expect.closeTo(1, 10), expect.closeTo(3, 10)]);
  });
});
