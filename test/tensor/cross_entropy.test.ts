import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { crossEntropyBackwardRef, crossEntropyRef } from '../../src/reference/cross_entropy.js';
import { backward } from '../../src/tensor/autograd.js';
import { crossEntropy, crossEntropyRows } from '../../src/tensor/ops/cross_entropy.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { finiteDiff, maxRelError, randn, rng } from '../support/numeric.js';

function randomTargets(N: number, V: number, seed: number, ignoreEvery = 0, ignoreIndex = -100): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: N }, (_, i) => (ignoreEvery && i % ignoreEvery === 1 ? ignoreIndex : Math.floor(r() * V)));
}

describe('crossEntropy', () => {
  const gpu = useGpu();

  // [N, V, ignore every k-th row (0: none), logit offset]
  const cases: [number, number, number, number][] = [
    [1, 1, 0, 0],
    [1, 9, 0, 0],
    [5, 7, 3, 0],
    [33, 100, 4, 0],
    [70, 65, 0, 0],
    [13, 257, 5, 1000],
    [64, 30000, 7, 0],
  ];

  for (const [N, V, ignoreEvery, offset] of cases) {
    it(`loss and gradient [${N}, ${V}]${ignoreEvery ? ' with ignored rows' : ''}${offset ? ` offset ${offset}` : ''}`, async () => {
      const g = gpu();
      const logits = randn(N * V, N + V, 3).map((v) => v + offset);
      const targets = randomTargets(N, V, 2 + N, ignoreEvery);
      const X = tensorFrom(g, logits, [N, V]).requireGrad();
      const loss = crossEntropy(X, targets);
      expect(loss.shape).toEqual([1]);
      const ref = crossEntropyRef(logits, targets, N, V);
      // Relative to the loss itself (a single value); with V = 1 the loss is exactly 0.
      const [value] = await loss.readF32();
      expect(Math.abs(value - ref.loss)).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(ref.loss), 1e-3));
      backward(loss, tensorFrom(g, [0.7], [1]));
      const dref = crossEntropyBackwardRef(logits, targets, N, V, 0.7);
      const d = await X.grad!.readF32();
      if (V === 1) expect(Math.max(...d.map(Math.abs))).toBe(0);
      else expect(maxRelError(d, dref)).toBeLessThan(1e-4);
    });
  }

  for (const V of [3, 4]) {
    it(`folds rows past 65535 workgroups (V = ${V})`, async () => {
      const g = gpu();
      const N = 65535 + 70;
      const logits = randn(N * V, 40 + V);
      const targets = randomTargets(N, V, 41, 9);
      const X = tensorFrom(g, logits, [N, V]).requireGrad();
      const loss = crossEntropy(X, targets);
      const ref = crossEntropyRef(logits, targets, N, V);
      expect(Math.abs((await loss.readF32())[0] - ref.loss)).toBeLessThan(1e-4 * ref.loss);
      backward(loss);
      expect(maxRelError(await X.grad!.readF32(), crossEntropyBackwardRef(logits, targets, N, V))).toBeLessThan(1e-4);
    });
  }

  it('reports per-row loss and log-sum-exp without the tape', async () => {
    const g = gpu();
    const [N, V] = [29, 301];
    const logits = randn(N * V, 3, 2);
    const targets = randomTargets(N, V, 4, 5);
    const rows = crossEntropyRows(tensorFrom(g, logits, [N, V]), targets);
    const ref = crossEntropyRef(logits, targets, N, V);
    expect(maxRelError(await rows.loss.readF32(), ref.rowLoss)).toBeLessThan(1e-4);
    expect(maxRelError(await rows.lse.readF32(), ref.rowLse)).toBeLessThan(1e-4);
    expect(Array.from(await rows.weight.readF32())).toEqual(Array.from(targets, (t) => (t === -100 ? 0 : 1)));
  });

  for (const V of [11, 12]) {
    it(`all rows ignored: loss 0 and a zero gradient, no NaN (V = ${V})`, async () => {
      const g = gpu();
      const N = 6;
      const X = tensorFrom(g, randn(N * V, 5), [N, V]).requireGrad();
      const loss = crossEntropy(X, new Int32Array(N).fill(-100));
      expect(Array.from(await loss.readF32())).toEqual([0]);
      backward(loss);
      expect(Array.from(await X.grad!.readF32())).toEqual(new Array(N * V).fill(0));
    });
  }

  it('takes targets as an i32 tensor, a custom ignoreIndex, and ignores out-of-range GPU targets', async () => {
    const g = gpu();
    const [N, V] = [8, 20];
    const logits = randn(N * V, 6);
    // 0 is the padding target here; 25 and -3 are out of range and can only be caught on the GPU.
    const targets = Int32Array.from([3, 0, 19, 25, 7, -3, 0, 1]);
    const effective = Int32Array.from(targets, (t) => (t >= 0 && t < V ? t : 0));
    const X = tensorFrom(g, logits, [N, V]).requireGrad();
    const loss = crossEntropy(X, tensorFrom(g, targets, [N], 'i32'), { ignoreIndex: 0 });
    const ref = crossEntropyRef(logits, effective, N, V, 0);
    expect(ref.count).toBe(4);
    expect(Math.abs((await loss.readF32())[0] - ref.loss)).toBeLessThan(1e-4 * ref.loss);
    backward(loss);
    expect(maxRelError(await X.grad!.readF32(), crossEntropyBackwardRef(logits, effective, N, V, 1, 0))).toBeLessThan(1e-4);
  });

  // [rows, classes, row stride]: the scalar kernels (stride not a multiple of 4), a vec4 row
  // whose last vec4 holds classes and padding, whole padding vec4s after it, and a tail vec4
  // owned by a lane other than 0 (more vec4s than lanes).
  for (const [N, V, S] of [[5, 9, 11], [7, 13, 16], [6, 8, 20], [4, 301, 304]] as const) {
    it(`reads only the first ${V} of ${S} columns as classes; the padding gets a zero gradient`, async () => {
      const g = gpu();
      const logits = randn(N * V, V + S, 2);
      const targets = randomTargets(N, V, 8 + V, 3);
      // Padding holds values that would dominate the softmax if they were read as classes.
      const wide = new Float32Array(N * S).fill(50);
      for (let r = 0; r < N; r++) wide.set(logits.subarray(r * V, (r + 1) * V), r * S);
      const X = tensorFrom(g, wide, [N, S]).requireGrad();
      const rows = crossEntropyRows(X, targets, { classes: V });
      const ref = crossEntropyRef(logits, targets, N, V);
      expect(maxRelError(await rows.lse.readF32(), ref.rowLse)).toBeLessThan(1e-5);
      expect(maxRelError(await rows.loss.readF32(), ref.rowLoss)).toBeLessThan(1e-4);
      const loss = crossEntropy(X, targets, { classes: V });
      expect(Math.abs((await loss.readF32())[0] - ref.loss)).toBeLessThan(1e-4 * ref.loss);
      backward(loss, tensorFrom(g, [0.3], [1]));
      const d = await X.grad!.readF32();
      const dref = crossEntropyBackwardRef(logits, targets, N, V, 0.3);
      const inside = new Float32Array(N * V);
      for (let r = 0; r < N; r++) {
        inside.set(d.subarray(r * S, r * S + V), r * V);
        expect(Array.from(d.subarray(r * S + V, (r + 1) * S))).toEqual(new Array(S - V).fill(0));
      }
      expect(maxRelError(inside, dref)).toBeLessThan(1e-4);
    });
  }

  it('reference backward matches finite differences', () => {
    const [N, V] = [4, 6];
    const logits = Float64Array.from(randn(N * V, 7, 2));
    const targets = [2, -100, 5, 0];
    const fd = finiteDiff((x) => 0.7 * crossEntropyRef(x, targets, N, V).loss, logits);
    expect(maxRelError(crossEntropyBackwardRef(logits, targets, N, V, 0.7), fd)).toBeLessThan(1e-6);
  });

  it('rejects bad shapes and targets before any dispatch', () => {
    const g = gpu();
    const X = tensorFrom(g, randn(12, 8), [3, 4]);
    const before = g.dispatchCount;
    expect(() => crossEntropy(X, [0, 1])).toThrowError(PantherError);
    expect(() => crossEntropy(X, [0, 1])).toThrowError(/2 targets for 3 rows/);
    expect(() => crossEntropy(X, [0, 4, 1])).toThrowError(/target at row 1 is 4, outside \[0, 4\)/);
    expect(() => crossEntropy(X, [0, 1, -1])).toThrowError(expect.objectContaining({ code: 'E_ARGUMENT' }));
    expect(() => crossEntropy(tensorFrom(g, randn(12, 8), [3, 2, 2]), [0, 1, 1])).toThrowError(/must be \[N, V\]/);
    expect(() => crossEntropy(X, tensorFrom(g, [0, 1, 2], [3]))).toThrowError(/targets must be i32/);
    expect(() => crossEntropy(X, tensorFrom(g, [0, 1], [2], 'i32'))).toThrowError(/do not match 3 rows/);
    expect(() => crossEntropyRows(X, [0, 1, 9])).toThrowError(/target at row 2 is 9/);
    expect(() => crossEntropyRows(X, [0, 1, 3], { classes: 3 })).toThrowError(/target at row 2 is 3, outside \[0, 3\)/);
    expect(() => crossEntropy(X, [0, 1, 2], { classes: 5 })).toThrowError(/classes must be an integer in \[1, 4\]/);
    expect(() => crossEntropy(X, [0, 1, 2], { classes: 0 })).toThrowError(/classes must be/);
    expect(g.dispatchCount).toBe(before);
  });
});
