import { describe, expect, it } from 'vitest';
import { lmHeadLoss } from '../../src/model/lm-head.js';
import { crossEntropyBackwardRef, crossEntropyRef } from '../../src/reference/cross_entropy.js';
import { matmulRef } from '../../src/reference/linalg.js';
import { backward } from '../../src/tensor/autograd.js';
import { clearTape } from '../../src/tensor/tape.js';
import { crossEntropy } from '../../src/tensor/ops/cross_entropy.js';
import { matmul } from '../../src/tensor/ops/matmul.js';
import { tensorFrom, tidy } from '../../src/tensor/tensor.js';
import { PantherError } from '../../src/errors.js';
import { useGpu } from '../support/gpu.js';
import { maxRelError, randn } from '../support/numeric.js';

describe('chunked vocabulary head', () => {
  const gpu = useGpu();

  async function run(chunkRows: number | undefined, normalizer?: number) {
    const g = gpu();
    const [N, d, V] = [37, 12, 53];
    const h = tensorFrom(g, randn(N * d, 1), [N, d]).requireGrad();
    const W = tensorFrom(g, randn(d * V, 2, 0.3), [d, V]).requireGrad();
    const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? 0 : 1 + ((i * 7) % (V - 1))));
    const loss = chunkRows === undefined
      ? crossEntropy(matmul(h, W), targets, { ignoreIndex: 0 })
      : lmHeadLoss(h, W, targets, { chunkRows, normalizer });
    const value = (await loss.read())[0];
    backward(loss);
    return { value, gh: await h.grad!.readF32(), gW: await W.grad!.readF32(), valid: targets.filter((t) => t !== 0).length };
  }

  it('matches full-logits cross-entropy in value and gradients, whatever the chunking', async () => {
    const full = await run(undefined);
    for (const rows of [1, 8, 37]) {
      const c = await run(rows);
      expect(Math.abs(c.value - full.value) / full.value).toBeLessThan(1e-5);
      expect(maxRelError(c.gh, full.gh)).toBeLessThan(1e-4);
      expect(maxRelError(c.gW, full.gW)).toBeLessThan(1e-4);
    }
  });

  it('divides by a global normalizer so shards add up to the whole batch', async () => {
    const full = await run(undefined);
    const c = await run(10, 2 * full.valid);
    expect(c.value).toBeCloseTo(full.value / 2, 5);
    expect(maxRelError(c.gW, full.gW.map((x) => x / 2))).toBeLessThan(1e-4);
  });

  // Rows and vocabulary aligned to 4 or not: the head pads both for its matmuls.
  for (const [N, d, V] of [[37, 12, 53], [40, 16, 64], [9, 8, 30]] as const) {
    it(`matches the float64 reference: loss, dh and dW ([${N}, ${d}] x [${d}, ${V}], chunks of 8 rows)`, async () => {
      const g = gpu();
      const hv = randn(N * d, 3 + V);
      const Wv = randn(d * V, 4 + V, 0.3);
      const targets = Int32Array.from({ length: N }, (_, i) => (i % 4 === 1 ? 0 : 1 + ((i * 11) % (V - 1))));
      const h = tensorFrom(g, hv, [N, d]).requireGrad();
      const W = tensorFrom(g, Wv, [d, V]).requireGrad();
      const loss = lmHeadLoss(h, W, targets, { chunkRows: 8 });
      const logits = matmulRef(hv, Wv, N, V, d);
      const ref = crossEntropyRef(logits, targets, N, V, 0);
      expect(Math.abs((await loss.read())[0] - ref.loss)).toBeLessThan(1e-5 * ref.loss);
      backward(loss, tensorFrom(g, [0.6], [1]));
      const dlogits = crossEntropyBackwardRef(logits, targets, N, V, 0.6, 0);
      expect(maxRelError(await h.grad!.readF32(), matmulRef(dlogits, Wv, N, d, V, { transB: true }))).toBeLessThan(1e-4);
      expect(maxRelError(await W.grad!.readF32(), matmulRef(hv, dlogits, d, V, N, { transA: true }))).toBeLessThan(1e-4);
      expect(W.grad!.shape).toEqual([d, V]);
    });
  }

  it('reuses the forward logits or computes them again with the same gradients, and leaves no buffer behind', async () => {
    const g = gpu();
    const [N, d, V] = [30, 8, 45];
    const targets = Int32Array.from({ length: N }, (_, i) => (i % 6 === 2 ? 0 : 1 + ((i * 5) % (V - 1))));
    const h = tensorFrom(g, randn(N * d, 21), [N, d]).requireGrad();
    const W = tensorFrom(g, randn(d * V, 22, 0.3), [d, V]).requireGrad();
    const live = () => g.pool.stats().live;
    const grads = async (keepLogitsBytes: number) => {
      const before = live();
      tidy(g, () => backward(lmHeadLoss(h, W, targets, { chunkRows: 8, keepLogitsBytes })));
      const out = { gh: await h.grad!.readF32(), gW: await W.grad!.readF32() };
      h.grad!.dispose();
      W.grad!.dispose();
      h.grad = null;
      W.grad = null;
      clearTape(g);
      expect(live()).toBe(before);
      return out;
    };
    const kept = await grads(1 << 30);
    const recomputed = await grads(0);
    expect(Array.from(recomputed.gh)).toEqual(Array.from(kept.gh));
    expect(Array.from(recomputed.gW)).toEqual(Array.from(kept.gW));
    // A forward pass whose backward never runs frees what it saved with its scope.
    const before = live();
    tidy(g, () => {
      lmHeadLoss(h, W, targets, { chunkRows: 8 });
    });
    clearTape(g);
    expect(live()).toBe(before);
  });

  it('rejects targets outside the vocabulary before any dispatch', () => {
    const g = gpu();
    const h = tensorFrom(g, randn(6 * 4, 31), [6, 4]);
    const W = tensorFrom(g, randn(4 * 10, 32), [4, 10]);
    const before = g.dispatchCount;
    expect(() => lmHeadLoss(h, W, Int32Array.from([1, 2, 0, 10, 3, 4]))).toThrowError(PantherError);
    expect(() => lmHeadLoss(h, W, Int32Array.from([1, 2, 0, 10, 3, 4]))).toThrowError(/target at row 3 is 10, outside \[0, 10\)/);
    expect(() => lmHeadLoss(h, W, Int32Array.from([1, -2, 0, 1, 3, 4]))).toThrowError(/row 1 is -2/);
    expect(() => lmHeadLoss(h, W, Int32Array.from([1, 2]))).toThrowError(/2 targets for 6 rows/);
    expect(g.dispatchCount).toBe(before);
  });
});
