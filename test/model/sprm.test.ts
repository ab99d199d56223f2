import { beforeAll, describe, expect, it } from 'vitest';
import { makeBatch, trainingWindows } from '../../src/data/batching.js';
import { prepareDataset, type PreparedData } from '../../src/data/prepare.js';
import { generateSynthetic } from '../../src/data/synthetic.js';
import { ModelSchema } from '../../src/model/config.js';
import { PantherModel } from '../../src/model/panther.js';
import { tidy } from '../../src/tensor/tensor.js';
import { modelShapeOf } from '../../src/train/trainer.js';
import { useGpu } from '../support/gpu.js';
import { maxRelError } from '../support/numeric.js';

/**
 * Options of the SPRM, each checked against a model it reduces to when some of its weights
 * are zero: residual convolutions (the authors' released code, the SPRM reads x + gelu(conv x))
 * the sum of attention and SPRM in a block (instead of their mean), and cross-attention to the
 * prototypes (separate key and value prototypes).
 */
describe('SPRM options', () => {
  const gpu = useGpu();
  let data: PreparedData;
  const L = 24;
  beforeAll(() => {
    data = prepareDataset(generateSynthetic({ users: 40, days: 30, seed: 4 }), { split: { kind: 'leave-one-out' } });
  });

  function build(sprm: Record<string, unknown>): PantherModel {
    const config = ModelSchema.parse({ dModel: 16, heads: 2, layers: 2, ffnMult: 1, sprm: { prototypes: 4, ...sprm }, profile: { enabled: false } });
    return new PantherModel(gpu(), config, modelShapeOf(data, L));
  }

  /** Scores at the last position of 8 users' windows, in evaluation mode. */
  async function scores(model: PantherModel): Promise<Float32Array> {
    const batch = makeBatch(data, trainingWindows(data, L).slice(0, 8), L, 'right');
    const out = tidy(model.gpu, () => model.lastPositionScores(model.forward(batch), batch).keep());
    const values = await out.readF32();
    out.dispose();
    return values;
  }

  /**
   * Gives `model` the parameters of `from` where the names agree, zeros to those whose name has
   * `zero`; parameters `from` does not have keep their own values.
   */
  async function copyInto(model: PantherModel, from: PantherModel, zero: string): Promise<void> {
    for (const p of model.parameters()) {
      const name = p.name ?? '';
      const source = from.parameters().find((q) => q.name === name);
      if (name.includes(zero)) p.write(new Float32Array(p.size));
      else if (source) p.write(await source.readF32());
    }
  }

  it('with zero convolution weights the SPRM matches its input alone, as with no convolutions; without the residual it does not', async () => {
    const plain = build({ dilations: [] });
    const expected = await scores(plain);
    const residual = build({ dilations: [1, 2], residual: true });
    await copyInto(residual, plain, '.sprm.conv');
    expect(maxRelError(await scores(residual), expected)).toBeLessThan(1e-5);
    // The control: the same zero convolutions without the residual leave the prototypes gelu(0) = 0 to match.
    const bare = build({ dilations: [1, 2], residual: false });
    await copyInto(bare, plain, '.sprm.conv');
    expect(maxRelError(await scores(bare), expected)).toBeGreaterThan(1e-2);
    for (const m of [plain, residual, bare]) m.dispose();
  });

  it('with a zero SPRM output, the sum of attention and SPRM is the plain transformer; their mean is not', async () => {
    const transformer = build({ enabled: false });
    const expected = await scores(transformer);
    const sum = build({ dilations: [1, 2], merge: 'sum' });
    await copyInto(sum, transformer, '.sprm.');
    expect(maxRelError(await scores(sum), expected)).toBeLessThan(1e-5);
    // The control: the mean halves attention.
    const mean = build({ dilations: [1, 2], merge: 'mean' });
    await copyInto(mean, transformer, '.sprm.');
    expect(maxRelError(await scores(mean), expected)).toBeGreaterThan(1e-2);
    for (const m of [transformer, sum, mean]) m.dispose();
  });

  it('with zero value prototypes, cross-attention to the prototypes adds nothing, as with no prototypes; with its values it does', async () => {
    const plain = build({ dilations: [1, 2], prototypes: 0 });
    const expected = await scores(plain);
    const attention = build({ dilations: [1, 2], matching: 'attention' });
    const names = attention.parameters().map((p) => p.name ?? '');
    for (const part of ['.sprm.prototypes', '.sprm.prototype_values', '.sprm.prototype_query.weight']) expect(names.some((n) => n.endsWith(part)), part).toBe(true);
    // The control first: the plain model's parameters, but the attention's own random values.
    await copyInto(attention, plain, '.nothing.');
    expect(maxRelError(await scores(attention), expected)).toBeGreaterThan(1e-2);
    await copyInto(attention, plain, '.sprm.prototype_values');
    expect(maxRelError(await scores(attention), expected)).toBeLessThan(1e-5);
    for (const m of [plain, attention]) m.dispose();
  });

  it('cross-attention weights are per position a distribution over the prototypes (the mean over heads)', async () => {
    const model = build({ dilations: [1], matching: 'attention' });
    const batch = makeBatch(data, trainingWindows(data, L).slice(0, 4), L, 'right');
    const w = tidy(model.gpu, () => model.forward(batch).prototypeWeights.map((t) => t.keep()));
    expect(w.map((t) => t.shape)).toEqual([[4 * L, 4], [4 * L, 4]]);
    for (const t of w) {
      const v = await t.readF32();
      for (let n = 0; n < 4 * L; n++) {
        const row = Array.from(v.slice(n * 4, n * 4 + 4));
        expect(row.every((x) => x > 0)).toBe(true);
        expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
      }
      t.dispose();
    }
    model.dispose();
  });
});
