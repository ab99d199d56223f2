import { describe, expect, it } from 'vitest';
import { ModelSchema } from '../../src/model/config.js';
import { inBatchCandidates, PantherModel } from '../../src/model/panther.js';
import { backward, zeroGrad } from '../../src/tensor/autograd.js';
import { transpose } from '../../src/tensor/ops/matmul.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { finiteDiff, maxRelError, randn } from '../support/numeric.js';

const [N, d, V] = [29, 8, 23];
const TARGETS = Int32Array.from({ length: N }, (_, i) => (i % 6 === 0 ? 0 : 1 + ((i * 5) % 11)));

interface HeadVariant {
  loss: 'full' | 'in-batch';
  cosine: boolean;
  temperature: number;
}

/** Float64 reference of the next-token loss: h [N, d], W [d, V] row-major. */
function referenceLoss(h: ArrayLike<number>, W: ArrayLike<number>, targets: Int32Array, v: HeadVariant): number {
  const columns = v.loss === 'full' ? [...Array(V).keys()] : [0, ...[...new Set(targets)].filter((t) => t !== 0)];
  const col = (j: number) => {
    const w = Array.from({ length: d }, (_, k) => W[k * V + j]);
    if (!v.cosine) return w;
    const n = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    return w.map((x) => x / n);
  };
  const cols = columns.map(col);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < targets.length; i++) {
    if (targets[i] === 0) continue;
    let x = Array.from({ length: d }, (_, k) => h[i * d + k]);
    if (v.cosine) {
      const n = Math.sqrt(x.reduce((s, a) => s + a * a, 0));
      x = x.map((a) => a / n / v.temperature);
    }
    const logits = cols.map((w) => w.reduce((s, wk, k) => s + wk * x[k], 0));
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
    sum += lse - logits[columns.indexOf(targets[i])];
    count++;
  }
  return sum / count;
}

describe('next-token head: full or in-batch softmax, dot or cosine logits', () => {
  const gpu = useGpu();

  const variants: HeadVariant[] = [
    { loss: 'full', cosine: false, temperature: 1 },
    { loss: 'full', cosine: true, temperature: 0.2 },
    { loss: 'in-batch', cosine: false, temperature: 1 },
    { loss: 'in-batch', cosine: true, temperature: 0.2 },
  ];
  for (const v of variants) {
    it(`${v.loss}${v.cosine ? ', cosine' : ''}: loss and gradients match a float64 reference and its finite differences`, async () => {
      const config = ModelSchema.parse({ dModel: d, heads: 2, layers: 1, head: v });
      const model = new PantherModel(gpu(), config, { vocabSize: V, attributeVocab: [7], profileVocab: [], maxLength: 8 });
      const hHost = randn(N * d, 3);
      const h = tensorFrom(gpu(), hHost, [N, d]).requireGrad();
      const W = await model.head.readF32();
      const loss = model.nextTokenLoss(h, TARGETS);
      const value = (await loss.read())[0];
      const expected = referenceLoss(hHost, W, TARGETS, v);
      expect(Math.abs(value - expected) / expected).toBeLessThan(1e-5);
      backward(loss);
      const gh = await h.grad!.readF32();
      const gW = await model.head.grad!.readF32();
      const hIdx = [0, 9, 50, 77, 120, 200, 231];
      const fdH = finiteDiff((x) => referenceLoss(x, W, TARGETS, v), hHost, 1e-5, hIdx);
      expect(maxRelError(hIdx.map((i) => gh[i]), hIdx.map((i) => fdH[i]))).toBeLessThan(1e-3);
      // Columns of targets and of tokens never targeted (no gradient under in-batch negatives).
      const wIdx = [1, 3, 5 * V + 6, 2 * V + 11, 7 * V + 1, 4 * V + 15, 6 * V + 22];
      const fdW = finiteDiff((x) => referenceLoss(hHost, x, TARGETS, v), W, 1e-5, wIdx);
      expect(maxRelError(wIdx.map((i) => gW[i]), wIdx.map((i) => fdW[i]))).toBeLessThan(1e-3);
      if (v.loss === 'in-batch') expect(gW[4 * V + 15]).toBe(0);
      zeroGrad(model.parameters());
      model.dispose();
    });
  }

  it('scores rank the whole vocabulary with the logits the loss trains, and the serving head reproduces them', async () => {
    const v: HeadVariant = { loss: 'in-batch', cosine: true, temperature: 0.1 };
    const model = new PantherModel(gpu(), ModelSchema.parse({ dModel: d, heads: 2, layers: 1, head: v }), { vocabSize: V, attributeVocab: [7], profileVocab: [], maxLength: 8 });
    const hHost = randn(4 * d, 5);
    const h = tensorFrom(gpu(), hHost, [4, d]);
    const scores = await model.scores(h).readF32();
    const input = await model.headInput(h).readF32();
    const head = await model.servingHead();
    const W = await model.head.readF32();
    for (let r = 0; r < 4; r++) {
      // A one-row batch whose only target is t has the full-softmax loss lse - logit_t: differences of
      // these losses are differences of logits (token 0, <pad>, is never a target: compare with token 1).
      const losses = Array.from({ length: V }, (_, t) => (t === 0 ? NaN : referenceLoss(hHost.slice(r * d, (r + 1) * d), W, Int32Array.of(t), { ...v, loss: 'full' })));
      for (let t = 2; t < V; t++) {
        expect(scores[r * V + t] - scores[r * V + 1]).toBeCloseTo(losses[1] - losses[t], 3);
      }
      for (let t = 0; t < V; t++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += input[r * d + k] * head[k * V + t];
        expect(s).toBeCloseTo(scores[r * V + t], 3);
      }
    }
    model.dispose();
  });

  it('in-batch candidates keep <pad> as column 0 and map every target to its column', () => {
    const c = inBatchCandidates(Int32Array.of(9, 0, 4, 9, 17, 4));
    expect([...c.tokens]).toEqual([0, 4, 9, 17]);
    expect([...c.targets]).toEqual([2, 0, 1, 2, 3, 1]);
    // Among a superset (a data-parallel shard among its global batch's targets).
    const g = inBatchCandidates(Int32Array.of(9, 0, 4), Int32Array.of(2, 4, 9, 17));
    expect([...g.tokens]).toEqual([0, 2, 4, 9, 17]);
    expect([...g.targets]).toEqual([3, 0, 2]);
    expect(() => inBatchCandidates(Int32Array.of(9, 5), Int32Array.of(4, 9))).toThrowError(/target 5 at position 1 is not among the 2 candidates/);
  });

  it('transpose is on the tape: its gradient is the transposed upstream gradient', async () => {
    const g = gpu();
    const x = tensorFrom(g, randn(3 * 5, 7), [3, 5]).requireGrad();
    const y = transpose(x);
    expect(y.shape).toEqual([5, 3]);
    const xs = await x.readF32();
    const ys = await y.readF32();
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) expect(ys[j * 3 + i]).toBe(xs[i * 5 + j]);
    const up = randn(5 * 3, 8);
    backward(y, tensorFrom(g, up, [5, 3]));
    const gx = await x.grad!.readF32();
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) expect(gx[i * 5 + j]).toBe(up[j * 3 + i]);
  });
});
