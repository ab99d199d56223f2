import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { adamwStepRef, clipScaleRef, gradNormRef, type AdamWRefOptions } from '../../src/reference/optim.js';
import { AdamW, adamwStep, clipScale, gradNorm } from '../../src/tensor/ops/optim.js';
import { tensorFrom, type Tensor } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { maxRelError, randn } from '../support/numeric.js';

async function scalar(t: Tensor): Promise<number> {
  return (await t.readF32())[0];
}

describe('gradNorm and clipScale', () => {
  const gpu = useGpu();

  it('matches the float64 norm over tensors of ragged sizes', async () => {
    const g = gpu();
    // 1 element, less than a lane row, one chunk plus a bit, several chunks (chunk = 64 x 256
    // elements, or vec4s for sizes that are multiples of 4).
    const sizes = [1, 63, 64 * 256 + 5, 100_003, 7, 8, 4 * 64 * 256 + 12, 200_000];
    const hosts = sizes.map((n, i) => randn(n, 50 + i, 0.1 * (i + 1)));
    const tensors = hosts.map((h, i) => tensorFrom(g, h, [sizes[i]]));
    const norm = gradNorm(tensors);
    expect(norm.shape).toEqual([1]);
    const ref = gradNormRef(hosts);
    expect(Math.abs((await scalar(norm)) - ref)).toBeLessThan(1e-5 * ref);
    // Fixed-order reduction: the same bits on every run.
    const again = gradNorm(tensors);
    expect(await scalar(again)).toBe(await scalar(norm));
  });

  it('is 0 for zero gradients and writes into a given output', async () => {
    const g = gpu();
    const out = tensorFrom(g, [123], [1]);
    gradNorm([tensorFrom(g, new Float32Array(10), [10])], out);
    expect(await scalar(out)).toBe(0);
  });

  it('clipScale is min(1, maxNorm / (norm + 1e-6))', async () => {
    const g = gpu();
    for (const [norm, maxNorm] of [[10, 1], [0.5, 1], [0, 1], [2, 2]]) {
      const s = clipScale(tensorFrom(g, [norm], [1]), maxNorm);
      expect(Math.abs((await scalar(s)) - clipScaleRef(norm, maxNorm))).toBeLessThan(1e-6);
    }
  });

  it('rejects empty lists, bad outputs and maxNorm before any dispatch', () => {
    const g = gpu();
    const before = g.dispatchCount;
    const t = tensorFrom(g, [1, 2], [2]);
    expect(() => gradNorm([])).toThrowError(PantherError);
    expect(() => gradNorm([t], tensorFrom(g, [0, 0], [2]))).toThrowError(/out must be an f32 tensor of 1 element/);
    expect(() => gradNorm([t, tensorFrom(g, [1], [1], 'i32')])).toThrowError(/tensor 1 .* is not f32/);
    expect(() => clipScale(t, 1)).toThrowError(/norm must be/);
    expect(() => clipScale(tensorFrom(g, [1], [1]), 0)).toThrowError(/maxNorm/);
    expect(g.dispatchCount).toBe(before);
  });
});

describe('adamwStep', () => {
  const gpu = useGpu();
  const hyper: AdamWRefOptions = { lr: 1e-2, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.1, step: 1 };

  // Sizes that are multiples of 4 take the vec4 kernel.
  for (const n of [1, 5, 12, 257, 4096, 10_007]) {
    it(`three steps on ${n} parameters, with and without a gradient scale`, async () => {
      const g = gpu();
      const p0 = randn(n, n);
      const P = tensorFrom(g, p0, [n]);
      const M = tensorFrom(g, new Float32Array(n), [n]);
      const V = tensorFrom(g, new Float32Array(n), [n]);
      const p = Float64Array.from(p0);
      const m = new Float64Array(n);
      const v = new Float64Array(n);
      for (let step = 1; step <= 3; step++) {
        const grad = randn(n, 1000 * step + n, step);
        const scale = step === 2 ? 0.25 : 1;
        adamwStep(P, tensorFrom(g, grad, [n]), M, V, { ...hyper, step }, step === 2 ? tensorFrom(g, [scale], [1]) : undefined);
        adamwStepRef(p, grad, m, v, { ...hyper, step }, scale);
      }
      expect(maxRelError(await P.readF32(), p)).toBeLessThan(1e-5);
      expect(maxRelError(await M.readF32(), m)).toBeLessThan(1e-5);
      expect(maxRelError(await V.readF32(), v)).toBeLessThan(1e-5);
    });
  }

  it('rejects mismatched tensors and bad hyper-parameters before any dispatch', () => {
    const g = gpu();
    const a = tensorFrom(g, [1, 2, 3], [3]);
    const b = tensorFrom(g, [1, 2], [2]);
    const before = g.dispatchCount;
    const [c, d, e] = [4, 5, 6].map((k) => tensorFrom(g, [k, k, k], [3]));
    expect(() => adamwStep(a, b, c, d, hyper)).toThrowError(/grad has 2 elements, param \[3\] has 3/);
    expect(() => adamwStep(a, c, d, e, { ...hyper, step: 0 })).toThrowError(/step is 0, must be an integer >= 1/);
    expect(() => adamwStep(a, c, d, e, { ...hyper, beta2: 1 })).toThrowError(/beta2 is 1/);
    expect(() => adamwStep(a, c, d, e, hyper, b)).toThrowError(/scale must be/);
    expect(() => adamwStep(a, c, a, e, hyper)).toThrowError(/four different tensors/);
    expect(g.dispatchCount).toBe(before);
  });
});

describe('AdamW', () => {
  const gpu = useGpu();

  /** Runs `steps` optimizer steps on the GPU and in float64 with the same gradients. */
  async function compare(maxGradNorm: number | undefined, gradScale: number, expectClipped: boolean) {
    const g = gpu();
    const shapes = [[17, 9], [9], [3, 1000]];
    const hosts = shapes.map((s, i) => randn(s.reduce((a, b) => a * b, 1), 70 + i));
    const params = hosts.map((h, i) => tensorFrom(g, h, shapes[i]).requireGrad());
    const opts = { lr: 3e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.05 };
    // No decay for 1-D parameters (biases, norms), as commonly done.
    const opt = new AdamW(g, { ...opts, decay: (p) => p.shape.length > 1 });
    const ref = hosts.map((h) => ({ p: Float64Array.from(h), m: new Float64Array(h.length), v: new Float64Array(h.length) }));
    for (let step = 1; step <= 4; step++) {
      const grads = hosts.map((h, i) => randn(h.length, 100 * step + i, gradScale));
      params.forEach((p, i) => {
        p.grad?.dispose();
        p.grad = tensorFrom(g, grads[i], p.shape);
      });
      const normTensor = opt.step(params, { maxGradNorm });
      const norm = gradNormRef(grads);
      const scale = maxGradNorm === undefined ? 1 : clipScaleRef(norm, maxGradNorm);
      expect(scale < 1).toBe(expectClipped);
      if (normTensor) expect(Math.abs((await scalar(normTensor)) - norm)).toBeLessThan(1e-5 * norm);
      ref.forEach((r, i) => {
        adamwStepRef(r.p, grads[i], r.m, r.v, { ...opts, weightDecay: shapes[i].length > 1 ? opts.weightDecay : 0, step }, scale);
      });
    }
    expect(opt.stepCount).toBe(4);
    for (let i = 0; i < params.length; i++) {
      expect(maxRelError(await params[i].readF32(), ref[i].p)).toBeLessThan(1e-5);
      expect(maxRelError(await opt.stateOf(params[i]).v.readF32(), ref[i].v)).toBeLessThan(1e-5);
    }
    opt.dispose();
  }

  it('four steps with clipping active match the float64 reference', () => compare(1, 1, true));
  it('four steps with clipping inactive match the float64 reference', () => compare(1e3, 1, false));
  it('four steps without clipping match the float64 reference', () => compare(undefined, 0.5, false));

  it('skips parameters without a gradient and counts bias corrections per parameter', async () => {
    const g = gpu();
    const a = tensorFrom(g, [1, -2], [2]).requireGrad();
    const b = tensorFrom(g, [3, 4], [2]).requireGrad();
    const opt = new AdamW(g, { lr: 0.1, weightDecay: 0 });
    a.grad = tensorFrom(g, [0.5, -0.5], [2]);
    opt.step([a, b]);
    expect(Array.from(await b.readF32())).toEqual([3, 4]);
    b.grad = tensorFrom(g, [1, 1], [2]);
    opt.step([a, b]);
    expect(opt.stateOf(a).step).toBe(2);
    expect(opt.stateOf(b).step).toBe(1);
    // b's first update: mhat / sqrt(vhat) = sign(g), so b moves by lr.
    const bv = await b.readF32();
    expect(Math.abs(bv[0] - 2.9)).toBeLessThan(1e-6);
    opt.dispose();
  });

  it('rejects bad options before any dispatch', () => {
    const g = gpu();
    const before = g.dispatchCount;
    expect(() => new AdamW(g, { lr: -1 })).toThrowError(/lr is -1/);
    const opt = new AdamW(g, { lr: 0.1 });
    const p = tensorFrom(g, [1], [1]).requireGrad();
    p.grad = tensorFrom(g, [1, 2], [2]);
    expect(() => opt.step([p])).toThrowError(/has 2 elements/);
    p.grad = tensorFrom(g, [1], [1]);
    expect(() => opt.step([p], { maxGradNorm: 0 })).toThrowError(/maxGradNorm/);
    expect(opt.stepCount).toBe(0);
    expect(g.dispatchCount).toBe(before);
  });
});
