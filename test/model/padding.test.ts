import { beforeAll, describe, expect, it } from 'vitest';
import { batchLength, makeBatch, trainingWindows, type Window } from '../../src/data/batching.js';
import { prepareDataset, type PreparedData } from '../../src/data/prepare.js';
import { generateSynthetic } from '../../src/data/synthetic.js';
import { ModelSchema } from '../../src/model/config.js';
import { PantherModel } from '../../src/model/panther.js';
import { backward, zeroGrad } from '../../src/tensor/autograd.js';
import { tidy } from '../../src/tensor/tensor.js';
import { modelShapeOf } from '../../src/train/trainer.js';
import { useGpu } from '../support/gpu.js';
import { maxRelError } from '../support/numeric.js';

/**
 * Batches are cut to their longest window (batchLength), so the model must give every real
 * position the same output, loss and gradients whatever the left padding of its row.
 */
describe('model outputs do not depend on padding', () => {
  const gpu = useGpu();
  let data: PreparedData;
  const L = 32;
  beforeAll(() => {
    data = prepareDataset(generateSynthetic({ users: 60, days: 30, seed: 9 }), { split: { kind: 'leave-one-out' } });
  });

  async function run(model: PantherModel, windows: Window[], length: number) {
    const batch = makeBatch(data, windows, length, 'right');
    batch.rowIndex = Int32Array.from(windows, (_, i) => i);
    const out = tidy(model.gpu, () => {
      const f = model.forward(batch, { train: true, step: 3 });
      const l = model.lossOf(batch, f);
      backward(l.total);
      return { loss: l.total.keep(), scores: model.lastPositionScores(f, batch).keep() };
    });
    const grads = await Promise.all(model.parameters().map((p) => (p.grad ? p.grad.readF32() : Promise.resolve(new Float32Array(0)))));
    zeroGrad(model.parameters());
    const result = { loss: (await out.loss.read())[0], scores: await out.scores.readF32(), grads };
    out.loss.dispose();
    out.scores.dispose();
    return result;
  }

  // The SPRM's two halves can be switched off one at a time (ablations).
  const variants = {
    panther: { dilations: [1, 2, 4], prototypes: 4 },
    'panther, convolutions only': { dilations: [1, 2, 4], prototypes: 0 },
    'panther, prototypes only': { dilations: [], prototypes: 4 },
    "panther, the authors' released SPRM (one residual full convolution, scaled-dot matching)": { dilations: [1], depthwise: false, residual: true, prototypes: 4, matching: 'scaled-dot' },
    'panther, cross-attention to the prototypes': { dilations: [1, 2], residual: true, prototypes: 4, matching: 'attention' },
    transformer: null,
  };
  for (const [variant, sprm] of Object.entries(variants)) {
    it(`${variant}: a batch cut to its longest window gives the same loss, scores and gradients`, async () => {
      const config = ModelSchema.parse({
        dModel: 16, heads: 2, layers: 2, ffnMult: 1, dropout: 0.2,
        sprm: sprm ? { enabled: true, ...sprm } : { enabled: false },
        profile: { enabled: sprm !== null },
      });
      const model = new PantherModel(gpu(), config, modelShapeOf(data, L));
      const names = model.parameters().map((p) => p.name ?? '');
      expect(names.some((n) => n.includes('.sprm.conv'))).toBe((sprm?.dilations.length ?? 0) > 0);
      expect(names.some((n) => n.endsWith('.sprm.prototypes'))).toBe((sprm?.prototypes ?? 0) > 0);
      const matching = (sprm as { matching?: string } | null)?.matching;
      expect(names.some((n) => n.includes('.sprm.prototypes_norm'))).toBe(matching === 'scaled-dot');
      expect(names.some((n) => n.includes('.sprm.prototype_values'))).toBe(matching === 'attention');
      // Short windows (3..11 events) of different users, so the cut batch is 16 wide.
      const windows = trainingWindows(data, L).slice(0, 12).map((w, i) => ({ ...w, start: Math.max(w.start, w.end - 3 - (i % 9)) }));
      const cut = batchLength(windows, L);
      expect(cut).toBeLessThan(L);
      const full = await run(model, windows, L);
      const short = await run(model, windows, cut);
      expect(Math.abs(short.loss - full.loss) / full.loss).toBeLessThan(1e-5);
      expect(maxRelError(short.scores, full.scores)).toBeLessThan(1e-4);
      let compared = 0;
      full.grads.forEach((g, i) => {
        if (g.length === 0) return;
        const name = model.parameters()[i].name ?? String(i);
        expect(maxRelError(short.grads[i], g), name).toBeLessThan(1e-3);
        compared++;
      });
      expect(compared).toBeGreaterThan(10);
      // Every SPRM parameter learns (the prototypes' layer norm included).
      model.parameters().forEach((p, i) => {
        if (p.name?.includes('.sprm.')) expect(full.grads[i].some((v) => v !== 0), p.name).toBe(true);
      });
      model.dispose();
    });
  }
});
