import { describe, expect, it } from 'vitest';
import { makeBatch } from '../../src/data/batching.js';
import { modelFromCheckpoint } from '../../src/cli/model-commands.js';
import { encodeUsers, versionMetaOf } from '../../src/jobs/encode.js';
import type { UserEntry } from '../../src/serve/entry.js';
import { CachedPrior } from '../../src/serve/prior.js';
import { noGrad } from '../../src/tensor/tape.js';
import { tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { tinyRun } from './fixture.js';

describe('encoder pass with a cosine head (in-batch negatives)', () => {
  const gpu = useGpu();

  it('caches a state and head whose product gives the model log-probabilities, and the raw hidden state as embedding', async () => {
    const run = await tinyRun(gpu(), { model: { head: { loss: 'in-batch', cosine: true, temperature: 0.1 }, profile: { enabled: false } } });
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    try {
      const users = [2, 5, 11];
      const entries: UserEntry[] = [];
      await encodeUsers(model, run.data, users, { topK: 8, batchUsers: 2 }, async (e) => void entries.push(...e));
      const meta = await versionMetaOf(model, run.data, 1, run.checkpoint, 4);
      expect(entries).toHaveLength(3);
      for (const [i, u] of users.entries()) {
        const end = run.data.offsets[u + 1];
        const batch = makeBatch(run.data, [{ user: u, start: Math.max(run.data.offsets[u], end - 16), end, target: -1 }], 16, 'right');
        const [scoresT, hiddenT] = noGrad(gpu(), () => tidy(gpu(), () => {
          const f = model.forward(batch);
          return [model.lastPositionScores(f, batch).keep(), f.hidden.keep()] as const;
        }));
        const scores = await scoresT.readF32();
        const hidden = await hiddenT.readF32();
        scoresT.dispose();
        hiddenT.dispose();
        const e = entries[i];
        const d = model.config.dModel;
        // The unit state over the temperature has norm 1 / T; the embedding is the hidden state itself.
        expect(Math.hypot(...e.state)).toBeCloseTo(10, 3);
        expect([...e.embedding]).toEqual([...hidden.slice(15 * d, 16 * d)]);
        const max = Math.max(...scores);
        let z = 0;
        for (const s of scores) z += Math.exp(s - max);
        const prior = new CachedPrior(e.prior, e.state, meta.head);
        for (const t of [e.prior.topTokens[0], 3, meta.vocab - 1]) expect(prior.logProb(t)).toBeCloseTo(scores[t] - max - Math.log(z), 3);
      }
    } finally {
      model.dispose();
    }
  });
});
