import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { embeddingBackwardRef, embeddingRef } from '../../src/reference/embedding.js';
import { backward } from '../../src/tensor/autograd.js';
import { embedding, segmentLayout } from '../../src/tensor/ops/embedding.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn, rng } from '../support/numeric.js';

function randomIds(n: number, V: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * V));
}

describe('embedding', () => {
  const gpu = useGpu();

  // [ids shape, V, D, ids]
  const cases: [string, number[], number, number, (n: number, V: number) => number[]][] = [
    ['V = 1, D = 1', [1], 1, 1, () => [0]],
    ['one id', [1], 10, 5, () => [7]],
    ['ragged 2-D ids', [3, 13], 50, 33, (n, V) => randomIds(n, V, 1)],
    ['one id repeated 500 times, others never used', [500], 40, 65, () => new Array(500).fill(17)],
    ['few ids over a large vocabulary', [2, 40], 3000, 8, (n, V) => randomIds(n, 5, 2).map((v) => v * 577 % V)],
    ['D = 1 (lanes span ids)', [300], 70, 1, (n, V) => randomIds(n, V, 3)],
    ['D = 200', [37], 9, 200, (n, V) => randomIds(n, V, 4)],
  ];

  for (const [name, shape, V, D, makeIds] of cases) {
    it(`gathers and scatters: ${name}`, async () => {
      const g = gpu();
      const n = shape.reduce((a, b) => a * b, 1);
      const ids = makeIds(n, V);
      const table = randn(V * D, 5 + V);
      const w = randn(n * D, 6 + n);
      const T = tensorFrom(g, table, [V, D]).requireGrad();
      const Y = embedding(T, ids, shape);
      expect(Y.shape).toEqual([...shape, D]);
      expect(maxRelError(await Y.readF32(), embeddingRef(table, V, D, ids))).toBeLessThan(1e-4);
      backward(Y, tensorFrom(g, w, Y.shape));
      const ref = embeddingBackwardRef(w, V, D, ids);
      const dtable = await T.grad!.readF32();
      expect(maxRelError(dtable, ref)).toBeLessThan(1e-4);
      // Rows of ids that never occur are exactly zero.
      const used = new Set(ids);
      for (let v = 0; v < V; v++) {
        if (used.has(v)) continue;
        for (let d = 0; d < D; d++) expect(dtable[v * D + d]).toBe(0);
      }
    });
  }

  it('the scatter sums in position order, so results are bit-identical across runs', async () => {
    const g = gpu();
    const [V, D, n] = [7, 70, 2000];
    const ids = randomIds(n, V, 9);
    const T = tensorFrom(g, randn(V * D, 10), [V, D]).requireGrad();
    const w = randn(n * D, 11);
    const runs: Float32Array[] = [];
    for (let k = 0; k < 2; k++) {
      backward(embedding(T, Int32Array.from(ids), [n]), tensorFrom(g, w, [n, D]));
      runs.push(await T.grad!.readF32());
      T.grad!.dispose();
      T.grad = null;
    }
    expect(runs[1]).toEqual(runs[0]);
    expect(maxRelError(runs[0], embeddingBackwardRef(w, V, D, ids))).toBeLessThan(1e-4);
  });

  it('folds row blocks past 65535 workgroups (over a million ids and table rows)', async () => {
    const g = gpu();
    const [n, V, D] = [16 * 65535 + 40, 16 * 65535 + 7, 1];
    const ids = randomIds(n, V, 30);
    const table = randn(V * D, 31);
    const w = randn(n * D, 32);
    const T = tensorFrom(g, table, [V, D]).requireGrad();
    const Y = embedding(T, Int32Array.from(ids), [n]);
    expect(maxRelError(await Y.readF32(), embeddingRef(table, V, D, ids))).toBeLessThan(1e-4);
    backward(Y, tensorFrom(g, w, Y.shape));
    expect(maxRelError(await T.grad!.readF32(), embeddingBackwardRef(w, V, D, ids))).toBeLessThan(1e-4);
  });

  it('padding positions gather zeros and send no gradient', async () => {
    const g = gpu();
    const [V, D] = [6, 5];
    const ids = [0, 3, 0, 5, 2, 0, 3];
    const table = randn(V * D, 12);
    const w = randn(ids.length * D, 13);
    const T = tensorFrom(g, table, [V, D]).requireGrad();
    const Y = embedding(T, ids, [ids.length], { padId: 0 });
    expect(maxRelError(await Y.readF32(), embeddingRef(table, V, D, ids, 0))).toBeLessThan(1e-4);
    backward(Y, tensorFrom(g, w, Y.shape));
    const dtable = await T.grad!.readF32();
    expect(maxRelError(dtable, embeddingBackwardRef(w, V, D, ids, 0))).toBeLessThan(1e-4);
    expect(Array.from(dtable.subarray(0, D))).toEqual(new Array(D).fill(0));
    // A pad id outside the table (-1) is allowed too.
    const Z = embedding(T, [-1, 4], [2], { padId: -1 });
    expect(maxRelError(await Z.readF32(), embeddingRef(table, V, D, [-1, 4], -1))).toBeLessThan(1e-4);
  });

  it('segment layout groups positions by id in increasing order', () => {
    const { segStart, order } = segmentLayout([2, 0, 2, 3, 0, 2], 5);
    expect(Array.from(segStart)).toEqual([0, 2, 2, 5, 6, 6]);
    expect(Array.from(order)).toEqual([1, 4, 0, 2, 5, 3]);
  });

  it('reference backward matches finite differences', () => {
    const [V, D] = [5, 3];
    const ids = [1, 4, 1, 1, 0];
    const table = Float64Array.from(randn(V * D, 14));
    const w = randn(ids.length * D, 15);
    const fd = finiteDiff((t) => dot(w, embeddingRef(t, V, D, ids)), table);
    expect(maxRelError(embeddingBackwardRef(w, V, D, ids), fd)).toBeLessThan(1e-6);
  });

  it('rejects ids out of range and shape mismatches before any dispatch', () => {
    const g = gpu();
    const T = tensorFrom(g, randn(12, 16), [4, 3]);
    const before = g.dispatchCount;
    expect(() => embedding(T, [0, 4, 1], [3])).toThrowError(PantherError);
    expect(() => embedding(T, [0, 1, 4, -2], [4])).toThrowError(/id at index 2 is 4, outside \[0, 4\)/);
    expect(() => embedding(T, [0, -1], [2])).toThrowError(/id at index 1 is -1/);
    expect(() => embedding(T, [0, 1.5], [2])).toThrowError(/index 1 is 1.5/);
    expect(() => embedding(T, [0, 1, 2], [2, 2])).toThrowError(/3 ids for shape \[2,2\]/);
    expect(() => embedding(tensorFrom(g, randn(12, 1), [12]), [0], [1])).toThrowError(/must be \[V, D\]/);
    expect(() => embedding(T, [9], [1])).toThrowError(expect.objectContaining({ code: 'E_ARGUMENT' }));
    expect(g.dispatchCount).toBe(before);
  });
});
