import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { layerNormBackwardRef, layerNormRef } from '../../src/reference/layernorm.js';
import { backward } from '../../src/tensor/autograd.js';
import { layerNorm } from '../../src/tensor/ops/layernorm.js';
import { tensorFrom, tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn } from '../support/numeric.js';

describe('layerNorm', () => {
  const gpu = useGpu();

  // [leading shape, D]: D = 1 (output is beta), one row, ragged sizes, a 3-D input.
  const cases: [number[], number][] = [
    [[1], 1],
    [[5], 1],
    [[1], 7],
    [[3], 64],
    [[67], 33],
    [[2, 9], 129],
    [[130], 256],
  ];

  for (const [index, [lead, D]] of cases.entries()) {
    it(`forward and backward [${lead}, ${D}]`, async () => {
      const g = gpu();
      const rows = lead.reduce((a, b) => a * b, 1);
      // An offset of 3 checks that the centred variance keeps precision.
      const seed = 100 * (index + 1);
      const x = randn(rows * D, seed).map((v) => v + 3);
      const gamma = randn(D, seed + 1).map((v) => 1 + 0.5 * v);
      const beta = randn(D, seed + 2, 0.5);
      const w = randn(rows * D, seed + 3);
      const X = tensorFrom(g, x, [...lead, D]).requireGrad();
      const G = tensorFrom(g, gamma, [D]).requireGrad();
      const B = tensorFrom(g, beta, [D]).requireGrad();
      const Y = layerNorm(X, G, B);
      expect(Y.shape).toEqual([...lead, D]);
      const ref = layerNormRef(x, gamma, beta, rows, D);
      expect(maxRelError(await Y.readF32(), ref.y)).toBeLessThan(1e-4);

      backward(Y, tensorFrom(g, w, Y.shape));
      const grads = layerNormBackwardRef(x, gamma, w, rows, D);
      // With D = 1 every output equals beta: dx and dgamma are exactly 0 (scale 0 in maxRelError).
      const dx = await X.grad!.readF32();
      if (D === 1) expect(Math.max(...dx.map(Math.abs))).toBeLessThan(1e-6);
      else expect(maxRelError(dx, grads.dx)).toBeLessThan(1e-4);
      const dgamma = await G.grad!.readF32();
      if (D === 1) expect(Math.max(...dgamma.map(Math.abs))).toBeLessThan(1e-6);
      else expect(maxRelError(dgamma, grads.dgamma)).toBeLessThan(1e-4);
      expect(maxRelError(await B.grad!.readF32(), grads.dbeta)).toBeLessThan(1e-4);
    });
  }

  it('reference backward matches finite differences', () => {
    const [rows, D] = [4, 6];
    const x = Float64Array.from(randn(rows * D, 11));
    const gamma = Float64Array.from(randn(D, 12));
    const beta = Float64Array.from(randn(D, 13));
    const w = randn(rows * D, 14);
    const grads = layerNormBackwardRef(x, gamma, w, rows, D);
    const fdX = finiteDiff((v) => dot(w, layerNormRef(v, gamma, beta, rows, D).y), x);
    const fdG = finiteDiff((v) => dot(w, layerNormRef(x, v, beta, rows, D).y), gamma);
    const fdB = finiteDiff((v) => dot(w, layerNormRef(x, gamma, v, rows, D).y), beta);
    expect(maxRelError(grads.dx, fdX)).toBeLessThan(1e-6);
    expect(maxRelError(grads.dgamma, fdG)).toBeLessThan(1e-6);
    expect(maxRelError(grads.dbeta, fdB)).toBeLessThan(1e-6);
  });

  it('only computes the gradients that are asked for', async () => {
    const g = gpu();
    const [rows, D] = [9, 17];
    const x = randn(rows * D, 21);
    const gamma = randn(D, 22);
    const beta = randn(D, 23);
    const w = randn(rows * D, 24);
    const X = tensorFrom(g, x, [rows, D]);
    const G = tensorFrom(g, gamma, [D]).requireGrad();
    const B = tensorFrom(g, beta, [D]);
    backward(layerNorm(X, G, B), tensorFrom(g, w, [rows, D]));
    expect(X.grad).toBeNull();
    expect(B.grad).toBeNull();
    expect(maxRelError(await G.grad!.readF32(), layerNormBackwardRef(x, gamma, w, rows, D).dgamma)).toBeLessThan(1e-4);
  });

  it('rejects mismatched gamma/beta and non-f32 input before any dispatch', () => {
    const g = gpu();
    tidy(g, () => {
      const X = tensorFrom(g, randn(12, 1), [3, 4]);
      const G4 = tensorFrom(g, randn(4, 2), [4]);
      const G3 = tensorFrom(g, randn(3, 2), [3]);
      const I = tensorFrom(g, [1, 2, 3, 4], [4], 'i32');
      const before = g.dispatchCount;
      expect(() => layerNorm(X, G3, G4)).toThrowError(PantherError);
      expect(() => layerNorm(X, G3, G4)).toThrowError(/gamma has shape \[3\], expected \[4\]/);
      expect(() => layerNorm(X, G4, G3)).toThrowError(/beta has shape/);
      expect(() => layerNorm(I, G4, G4)).toThrowError(/must be f32/);
      expect(() => layerNorm(X, G4, G4, 0)).toThrowError(/eps/);
      expect(g.dispatchCount).toBe(before);
    });
  });
});
