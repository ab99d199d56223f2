import { describe, expect, it } from 'vitest';
import { targetRanksRef } from '../../src/reference/rank.js';
import { targetRanks } from '../../src/tensor/ops/rank.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { randn, rng } from '../support/numeric.js';

describe('target rank', () => {
  const gpu = useGpu();

  for (const [rows, V] of [[1, 1], [5, 7], [130, 3001]]) {
    it(`matches the reference for ${rows} rows over ${V}`, async () => {
      const g = gpu();
      const s = randn(rows * V, V);
      const r = rng(rows);
      const t = Int32Array.from({ length: rows }, (_, i) => (i === 0 && rows > 1 ? -100 : Math.floor(r() * V)));
      const ranks = await targetRanks(tensorFrom(g, s, [rows, V]), t).read();
      expect(Array.from(ranks)).toEqual(targetRanksRef(s, t, V));
    });
  }

  it('counts ties against the target', async () => {
    const g = gpu();
    const ranks = await targetRanks(tensorFrom(g, [1, 1, 1, 0.5, 2, 2], [2, 3]), Int32Array.from([1, 0])).read();
    expect(Array.from(ranks)).toEqual([2, 2]);
  });

  it('rejects a target count that does not match the rows', () => {
    const g = gpu();
    expect(() => targetRanks(tensorFrom(g, [1, 2], [1, 2]), Int32Array.from([0, 1]))).toThrowError(/2 targets for 1 rows/);
  });
});
