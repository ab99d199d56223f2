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
 * and the sum of attention and SPRM in a block (instead of their mean).
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

  /** Gives `model` the parameters of `from` where the names agree, zeros to those whose name has `zero`. */
  async function copyInto(model: PantherModel, from: PantherModel, zero: string): Promise<void> {
    for (const p of model.parameters()) {
      const name = p.name ?? '';
      if (name.includes(zero)) p.write(new Float32Array(p.size));
      else p.write(await from.parameters().find((q) => q.name === name)!.readF32());
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
});
