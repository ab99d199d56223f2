import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import {
  infoNCEBackwardRef, infoNCELossBackwardRef, infoNCELossRef, infoNCERef, l2NormalizeBackwardRef, l2NormalizeRef,
} from '../../src/reference/contrastive.js';
import { backward } from '../../src/tensor/autograd.js';
import { infoNCE, infoNCELoss, l2Normalize, l2NormalizeColumns, l2NormalizeRows, twoViewPositives } from '../../src/tensor/ops/contrastive.js';
import { transpose } from '../../src/tensor/ops/matmul.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn, rng } from '../support/numeric.js';

/** Random mask with density `p`; rows listed in `empty` get no positive off the diagonal. */
function randomMask(N: number, p: number, seed: number, empty: number[] = []): Uint32Array {
  const r = rng(seed);
  const mask = Uint32Array.from({ length: N * N }, () => (r() < p ? 1 : 0));
  for (const i of empty) for (let j = 0; j < N; j++) if (j !== i) mask[i * N + j] = 0;
  return mask;
}

describe('l2Normalize', () => {
  const gpu = useGpu();

  for (const [N, E] of [[1, 1], [1, 5], [7, 3], [65, 33], [130, 128]] as const) {
    it(`forward and backward [${N}, ${E}]`, async () => {
      const g = gpu();
      const x = randn(N * E, 10 * (N + E), 2);
      const w = randn(N * E, 10 * (N + E) + 1);
      const X = tensorFrom(g, x, [N, E]).requireGrad();
      const Y = l2Normalize(X);
      expect(maxRelError(await Y.readF32(), l2NormalizeRef(x, N, E).y)).toBeLessThan(1e-4);
      backward(Y, tensorFrom(g, w, [N, E]));
      const dref = l2NormalizeBackwardRef(x, w, N, E);
      // With E = 1 the output is sign(x): the gradient is 0 up to rounding.
      const dx = await X.grad!.readF32();
      if (E === 1) expect(Math.max(...dx.map(Math.abs))).toBeLessThan(1e-6);
      else expect(maxRelError(dx, dref)).toBeLessThan(1e-4);
    });
  }

  it('stacks several inputs and splits the gradient back', async () => {
    const g = gpu();
    const [Na, Nb, E] = [5, 9, 6];
    const a = randn(Na * E, 1);
    const b = randn(Nb * E, 2);
    const w = randn((Na + Nb) * E, 3);
    const A = tensorFrom(g, a, [Na, E]).requireGrad();
    const B = tensorFrom(g, b, [Nb, E]).requireGrad();
    const Y = l2NormalizeRows([A, B]);
    expect(Y.shape).toEqual([Na + Nb, E]);
    const ref = new Float64Array([...l2NormalizeRef(a, Na, E).y, ...l2NormalizeRef(b, Nb, E).y]);
    expect(maxRelError(await Y.readF32(), ref)).toBeLessThan(1e-4);
    backward(Y, tensorFrom(g, w, Y.shape));
    expect(maxRelError(await A.grad!.readF32(), l2NormalizeBackwardRef(a, w.subarray(0, Na * E), Na, E))).toBeLessThan(1e-4);
    expect(maxRelError(await B.grad!.readF32(), l2NormalizeBackwardRef(b, w.subarray(Na * E), Nb, E))).toBeLessThan(1e-4);
  });

  for (const [R, C] of [[1, 5], [64, 53], [7, 130]] as const) {
    it(`columns: forward and backward [${R}, ${C}], bit for bit the rows of the transpose`, async () => {
      const g = gpu();
      const x = randn(R * C, 3 * (R + C), 2);
      const w = randn(R * C, 3 * (R + C) + 1);
      const X = tensorFrom(g, x, [R, C]).requireGrad();
      const Y = l2NormalizeColumns(X);
      const xt = new Float32Array(R * C);
      const wt = new Float32Array(R * C);
      for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) [xt[c * R + r], wt[c * R + r]] = [x[r * C + c], w[r * C + c]];
      const yt = l2NormalizeRef(xt, C, R).y;
      const dxt = l2NormalizeBackwardRef(xt, wt, C, R);
      const yref = new Float64Array(R * C);
      const dref = new Float64Array(R * C);
      for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) [yref[r * C + c], dref[r * C + c]] = [yt[c * R + r], dxt[c * R + r]];
      const y = await Y.readF32();
      expect(maxRelError(y, yref)).toBeLessThan(1e-4);
      backward(Y, tensorFrom(g, w, [R, C]));
      const dx = await X.grad!.readF32();
      if (R === 1) expect(Math.max(...dx.map(Math.abs))).toBeLessThan(1e-6);
      else expect(maxRelError(dx, dref)).toBeLessThan(1e-4);
      // The path it replaces (lay out the transpose, normalize its rows, lay it back).
      const X2 = tensorFrom(g, x, [R, C]).requireGrad();
      const Y2 = transpose(l2Normalize(transpose(X2)));
      expect(Array.from(await Y2.readF32())).toEqual(Array.from(y));
      backward(Y2, tensorFrom(g, w, [R, C]));
      expect(Array.from(await X2.grad!.readF32())).toEqual(Array.from(dx));
    });
  }

  it('reference backward matches finite differences', () => {
    const [N, E] = [3, 5];
    const x = Float64Array.from(randn(N * E, 4));
    const w = randn(N * E, 5);
    const fd = finiteDiff((v) => dot(w, l2NormalizeRef(v, N, E).y), x);
    expect(maxRelError(l2NormalizeBackwardRef(x, w, N, E), fd)).toBeLessThan(1e-6);
  });

  it('rejects bad shapes before any dispatch', () => {
    const g = gpu();
    const A = tensorFrom(g, randn(6, 1), [2, 3]);
    const B = tensorFrom(g, randn(8, 1), [2, 4]);
    const before = g.dispatchCount;
    expect(() => l2NormalizeRows([A, B])).toThrowError(PantherError);
    expect(() => l2NormalizeColumns(tensorFrom(g, randn(8, 1), [2, 2, 2]))).toThrowError(/input must be 2-D/);
    expect(() => l2NormalizeColumns(A, { eps: -1 })).toThrowError(/eps must be >= 0/);
    expect(() => l2NormalizeRows([A, B])).toThrowError(/input 1 \[2,4\] has rows of 4, input 0 of 3/);
    expect(() => l2Normalize(tensorFrom(g, randn(6, 1), [6]))).toThrowError(/must be 2-D/);
    expect(g.dispatchCount).toBe(before);
  });
});

describe('infoNCE', () => {
  const gpu = useGpu();

  // [N, positive density, rows without positives]
  const cases: [number, number, number[]][] = [
    [1, 1, []],
    [2, 1, []],
    [5, 0.3, [1]],
    [33, 0.1, [0, 7, 32]],
    [100, 0.05, [50]],
    [130, 0.5, []],
  ];

  for (const [N, density, empty] of cases) {
    it(`loss and gradient N = ${N}${empty.length ? ` with ${empty.length} rows without positives` : ''}`, async () => {
      const g = gpu();
      const sim = randn(N * N, N, 4);
      const mask = randomMask(N, density, N + 1, empty);
      const S = tensorFrom(g, sim, [N, N]).requireGrad();
      const loss = infoNCE(S, tensorFrom(g, mask, [N, N], 'u32'));
      const ref = infoNCERef(sim, mask, N);
      const [value] = await loss.readF32();
      expect(Math.abs(value - ref.loss)).toBeLessThanOrEqual(1e-4 * Math.max(Math.abs(ref.loss), 1e-3));
      backward(loss, tensorFrom(g, [1.3], [1]));
      const d = await S.grad!.readF32();
      if (ref.count === 0) expect(Array.from(d)).toEqual(new Array(N * N).fill(0));
      else expect(maxRelError(d, infoNCEBackwardRef(sim, mask, N, 1.3))).toBeLessThan(1e-4);
    });
  }

  it('ignores the diagonal, keeps distant positives finite, and gives 0 when no row has a positive', async () => {
    const g = gpu();
    const N = 4;
    // Positives 200 below the row maximum would underflow with one shared max.
    const sim = Float32Array.from([0, 50, -150, 3, 9, 0, 1, 2, 5, 5, 0, 5, 1, 2, 3, 0]);
    const mask = Uint32Array.from([1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    const S = tensorFrom(g, sim, [N, N]).requireGrad();
    const loss = infoNCE(S, mask);
    const ref = infoNCERef(sim, mask, N);
    expect(ref.count).toBe(2);
    expect(Math.abs((await loss.readF32())[0] - ref.loss)).toBeLessThan(1e-4 * ref.loss);
    backward(loss);
    expect(maxRelError(await S.grad!.readF32(), infoNCEBackwardRef(sim, mask, N))).toBeLessThan(1e-4);

    const none = tensorFrom(g, sim, [N, N]).requireGrad();
    const zero = infoNCE(none, Uint32Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]));
    expect(Array.from(await zero.readF32())).toEqual([0]);
    backward(zero);
    expect(Array.from(await none.grad!.readF32())).toEqual(new Array(N * N).fill(0));
  });

  it('reference backward matches finite differences', () => {
    const N = 6;
    const sim = Float64Array.from(randn(N * N, 8, 2));
    const mask = randomMask(N, 0.4, 9, [2]);
    const fd = finiteDiff((s) => 1.3 * infoNCERef(s, mask, N).loss, sim);
    expect(maxRelError(infoNCEBackwardRef(sim, mask, N, 1.3), fd)).toBeLessThan(1e-6);
  });

  it('rejects bad shapes and masks before any dispatch', () => {
    const g = gpu();
    const S = tensorFrom(g, randn(9, 1), [3, 3]);
    const before = g.dispatchCount;
    expect(() => infoNCE(tensorFrom(g, randn(6, 1), [2, 3]), new Uint32Array(6))).toThrowError(/must be square/);
    expect(() => infoNCE(S, new Uint32Array(8))).toThrowError(/8 positives for sim \[3, 3\]/);
    expect(() => infoNCE(S, tensorFrom(g, new Float32Array(9), [3, 3]))).toThrowError(/positives must be u32/);
    expect(() => infoNCE(S, tensorFrom(g, new Uint32Array(4), [2, 2], 'u32'))).toThrowError(PantherError);
    expect(g.dispatchCount).toBe(before);
  });
});

describe('infoNCELoss', () => {
  const gpu = useGpu();

  it('reference composition backward matches finite differences', () => {
    const [N, E] = [4, 3];
    const z1 = Float64Array.from(randn(N * E, 20));
    const z2 = Float64Array.from(randn(N * E, 21));
    const pos = twoViewPositives(N, randomMask(N, 0.3, 22));
    const { dz1, dz2 } = infoNCELossBackwardRef(z1, z2, pos, 0.5, N, E);
    expect(maxRelError(dz1, finiteDiff((v) => infoNCELossRef(v, z2, pos, 0.5, N, E), z1))).toBeLessThan(1e-6);
    expect(maxRelError(dz2!, finiteDiff((v) => infoNCELossRef(z1, v, pos, 0.5, N, E), z2))).toBeLessThan(1e-6);
  });

  it('one view: users with related profiles as positives, temperature 0.05', async () => {
    const g = gpu();
    const [N, E] = [48, 24];
    const z = randn(N * E, 30);
    const pos = randomMask(N, 0.08, 31, [3, 4]);
    const Z = tensorFrom(g, z, [N, E]).requireGrad();
    const loss = infoNCELoss(Z, null, pos, 0.05);
    const ref = infoNCELossRef(z, null, pos, 0.05, N, E);
    expect(Math.abs((await loss.readF32())[0] - ref)).toBeLessThan(1e-4 * ref);
    backward(loss);
    expect(maxRelError(await Z.grad!.readF32(), infoNCELossBackwardRef(z, null, pos, 0.05, N, E).dz1)).toBeLessThan(1e-4);
  });

  it('two views stacked, with twoViewPositives', async () => {
    const g = gpu();
    const [N, E] = [20, 16];
    const z1 = randn(N * E, 40);
    const z2 = randn(N * E, 41);
    const pos = twoViewPositives(N, randomMask(N, 0.1, 42));
    const A = tensorFrom(g, z1, [N, E]).requireGrad();
    const B = tensorFrom(g, z2, [N, E]).requireGrad();
    const loss = infoNCELoss(A, B, pos, 0.2);
    const ref = infoNCELossRef(z1, z2, pos, 0.2, N, E);
    expect(Math.abs((await loss.readF32())[0] - ref)).toBeLessThan(1e-4 * ref);
    backward(loss);
    const grads = infoNCELossBackwardRef(z1, z2, pos, 0.2, N, E);
    expect(maxRelError(await A.grad!.readF32(), grads.dz1)).toBeLessThan(1e-4);
    expect(maxRelError(await B.grad!.readF32(), grads.dz2!)).toBeLessThan(1e-4);
  });

  it('twoViewPositives pairs each row with its other view', () => {
    const mask = twoViewPositives(2, [0, 1, 0, 0]);
    expect(Array.from(mask)).toEqual([
      0, 1, 1, 1,
      0, 0, 0, 1,
      1, 1, 0, 1,
      0, 1, 0, 0,
    ]);
  });

  it('rejects mismatched views, masks and temperature before any dispatch', () => {
    const g = gpu();
    const A = tensorFrom(g, randn(12, 1), [4, 3]);
    const B = tensorFrom(g, randn(15, 1), [5, 3]);
    const before = g.dispatchCount;
    expect(() => infoNCELoss(A, B, new Uint32Array(81), 0.1)).toThrowError(/z1 \[4,3\] and z2 \[5,3\] differ/);
    expect(() => infoNCELoss(A, A, new Uint32Array(16), 0.1)).toThrowError(/expected \[8, 8\]/);
    expect(() => infoNCELoss(A, null, new Uint32Array(16), 0)).toThrowError(/temperature/);
    expect(g.dispatchCount).toBe(before);
  });
});
