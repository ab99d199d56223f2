import { describe, expect, it } from 'vitest';
import { backward } from '../../src/tensor/autograd.js';
import { addRowVector, axpby, axpyInPlace, fillInPlace, mul, scale, sumRows } from '../../src/tensor/ops/elementwise.js';
import { empty, tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { maxRelError, randn } from '../support/numeric.js';

// Sizes that exercise the vec4 kernels, the scalar tail after them, and scalar-only sizes.
const SIZES = [1, 3, 4, 7, 1000, 4097, 70001];

describe('elementwise kernels (vec4 body and scalar tail)', () => {
  const gpu = useGpu();

  for (const n of SIZES) {
    it(`axpby, mul, scale, fill and axpy in place on ${n} elements`, async () => {
      const g = gpu();
      const a = randn(n, n);
      const b = randn(n, n + 1);
      const A = tensorFrom(g, a, [n]);
      const B = tensorFrom(g, b, [n]);
      expect(maxRelError(await axpby(A, B, 0.5, -2).readF32(), a.map((x, i) => 0.5 * x - 2 * b[i]))).toBeLessThan(1e-6);
      expect(maxRelError(await mul(A, B, 3).readF32(), a.map((x, i) => 3 * x * b[i]))).toBeLessThan(1e-6);
      expect(maxRelError(await scale(A, -1.5).readF32(), a.map((x) => -1.5 * x))).toBeLessThan(1e-6);
      expect(Array.from(await fillInPlace(empty(g, [n]), 2.5).readF32()).every((x) => x === 2.5)).toBe(true);
      const Y = tensorFrom(g, b, [n]);
      axpyInPlace(Y, A, 2, 0.5);
      expect(maxRelError(await Y.readF32(), b.map((y, i) => 2 * a[i] + 0.5 * y))).toBeLessThan(1e-6);
    });
  }

  // 300 and 1,001 rows of whole vec4s sum in segments (the last one short).
  for (const [rows, cols] of [[5, 3], [7, 8], [1, 1], [300, 64], [33, 10], [1001, 12]]) {
    it(`row-vector add and column sums on ${rows}x${cols}, with gradients`, async () => {
      const g = gpu();
      const x = randn(rows * cols, rows);
      const v = randn(cols, cols);
      const X = tensorFrom(g, x, [rows, cols]).requireGrad();
      const V = tensorFrom(g, v, [cols]).requireGrad();
      const out = addRowVector(X, V);
      expect(maxRelError(await out.readF32(), x.map((e, i) => e + v[i % cols]))).toBeLessThan(1e-6);
      const sums = sumRows(out, cols, 2);
      const expected = Array.from({ length: cols }, (_, c) => {
        let s = 0;
        for (let r = 0; r < rows; r++) s += x[r * cols + c] + v[c];
        return 2 * s;
      });
      expect(maxRelError(await sums.readF32(), expected)).toBeLessThan(1e-5);
      backward(sums);
      // d/dV of 2 * sum_r (x + v) = 2 * rows; d/dX = 2.
      expect(Array.from(await V.grad!.readF32())).toEqual(new Array(cols).fill(2 * rows));
      expect(Array.from(await X.grad!.readF32()).every((d) => d === 2)).toBe(true);
    });
  }
});
