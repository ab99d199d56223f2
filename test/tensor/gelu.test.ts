import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { geluBackwardRef, geluRef } from '../../src/reference/gelu.js';
import { backward } from '../../src/tensor/autograd.js';
import { gelu } from '../../src/tensor/ops/gelu.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn } from '../support/numeric.js';

describe('gelu', () => {
  const gpu = useGpu();

  // Sizes that are multiples of 4 take the vec4 kernels.
  const shapes: number[][] = [[1], [3], [64], [257], [7, 33], [4, 1000, 3]];

  for (const shape of shapes) {
    it(`forward and backward [${shape}]`, async () => {
      const g = gpu();
      const n = shape.reduce((a, b) => a * b, 1);
      const x = randn(n, 1 + n, 2.5);
      const w = randn(n, 2 + n);
      const X = tensorFrom(g, x, shape).requireGrad();
      const Y = gelu(X);
      expect(Y.shape).toEqual(shape);
      expect(maxRelError(await Y.readF32(), geluRef(x))).toBeLessThan(1e-4);
      backward(Y, tensorFrom(g, w, shape));
      expect(maxRelError(await X.grad!.readF32(), geluBackwardRef(x, w))).toBeLessThan(1e-4);
    });
  }

  // 12 values take the vec4 kernel, 11 the scalar one.
  for (const n of [12, 11]) {
    it(`stays finite and exact in the tails (${n} values)`, async () => {
      const g = gpu();
      const x = Float32Array.from([-1e4, -200, -30, -8, -1e-3, 0, 1e-3, 8, 30, 200, 1e4, -0.5]).subarray(0, n);
      const w = new Float32Array(n).fill(1);
      const X = tensorFrom(g, x, [n]).requireGrad();
      const Y = gelu(X);
      const y = await Y.readF32();
      const ref = geluRef(x);
      for (let i = 0; i < n; i++) {
        expect(Number.isFinite(y[i])).toBe(true);
        expect(Math.abs(y[i] - ref[i])).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(ref[i])));
      }
      backward(Y, tensorFrom(g, w, [n]));
      const dx = await X.grad!.readF32();
      const dref = geluBackwardRef(x, w);
      for (let i = 0; i < n; i++) expect(Math.abs(dx[i] - dref[i])).toBeLessThan(1e-4);
    });
  }

  it('reference backward matches finite differences', () => {
    const x = Float64Array.from(randn(50, 7, 3));
    const w = randn(50, 8);
    const fd = finiteDiff((v) => dot(w, geluRef(v)), x);
    expect(maxRelError(geluBackwardRef(x, w), fd)).toBeLessThan(1e-6);
  });

  it('rejects non-f32 input before any dispatch', () => {
    const g = gpu();
    const I = tensorFrom(g, [1, 2, 3], [3], 'i32');
    const before = g.dispatchCount;
    expect(() => gelu(I)).toThrowError(PantherError);
    expect(() => gelu(I)).toThrowError(/must be f32/);
    expect(g.dispatchCount).toBe(before);
  });
});
