import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPreparedData } from '../../src/data/cache.js';
import { prepareDataset, type PreparedData } from '../../src/data/prepare.js';
import { generateSynthetic } from '../../src/data/synthetic.js';
import { ModelSchema } from '../../src/model/config.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { TrainSchema } from '../../src/train/config.js';
import type { Evaluation } from '../../src/train/evaluate.js';
import { noteValidation, Trainer, warnWithoutValidation } from '../../src/train/trainer.js';
import { useGpu } from '../support/gpu.js';
import { tempDir } from '../support/tmp.js';

describe('trainer', () => {
  const gpu = useGpu();
  let data: PreparedData;
  const root = tempDir('panther-train');
  const model = ModelSchema.parse({ dModel: 16, heads: 2, layers: 1, ffnMult: 1, sprm: { dilations: [1, 2], prototypes: 4 } });

  beforeAll(async () => {
    ({ data } = await loadPreparedData({ source: { kind: 'synthetic', users: 120, days: 30 }, maxLength: 16 }, { cacheDir: join(root, 'cache') }));
  });

  const train = (dir: string, extra: Record<string, unknown> = {}) =>
    TrainSchema.parse({ batchSize: 8, maxSteps: 12, evalEvery: 4, checkpointEvery: 4, warmupSteps: 3, lr: 3e-3, checkpointDir: dir, evalUsers: 40, ...extra });

  it('lowers the loss, validates, writes checkpoints, metrics and curves', async () => {
    const dir = join(root, 'plain');
    const losses: number[] = [];
    const t = new Trainer({ gpu: gpu(), data, model, train: train(dir, { maxSteps: 30, evalEvery: 10 }), maxLength: 16, hooks: { onStep: (r) => losses.push(r.loss) } });
    const s = await t.run();
    t.dispose();
    expect(s.steps).toBe(30);
    expect(losses.slice(-5).reduce((a, b) => a + b) / 5).toBeLessThan(0.9 * losses[0]);
    expect(s.valid!.count).toBe(40);
    expect(s.test!.count).toBeGreaterThan(100);
    for (const f of ['best.safetensors', 'last.safetensors', 'tokenizer.json', 'metrics.jsonl', 'curves.png', 'summary.json']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.kind === 'step')).toHaveLength(30);
    expect(lines.filter((l) => l.kind === 'eval').length).toBeGreaterThanOrEqual(3);
  });

  it('resumes from a checkpoint bit-for-bit the same as an uninterrupted run', async () => {
    const whole = join(root, 'whole');
    const a = new Trainer({ gpu: gpu(), data, model, train: train(whole), maxLength: 16, test: false });
    await a.run();
    a.dispose();

    const broken = join(root, 'broken');
    const crash = new Error('simulated crash');
    const b = new Trainer({
      gpu: gpu(), data, model, train: train(broken), maxLength: 16, test: false,
      hooks: { onCheckpoint: (path, state) => { if (path.endsWith('last.safetensors') && state.step === 8) throw crash; } },
    });
    await expect(b.run()).rejects.toBe(crash);
    b.dispose();
    const c = new Trainer({ gpu: gpu(), data, model, train: train(broken), maxLength: 16, resume: true, test: false });
    await c.run();
    c.dispose();

    const x = readCheckpoint(join(whole, 'last.safetensors'));
    const y = readCheckpoint(join(broken, 'last.safetensors'));
    expect(y.state).toEqual(x.state);
    expect([...y.tensors.keys()].sort()).toEqual([...x.tensors.keys()].sort());
    for (const [name, t] of x.tensors) {
      expect(Buffer.from(y.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    }
    const metrics = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').map((l) => l.replace(/"eventsPerSecond":\d+,?/, ''));
    expect(metrics(broken)).toEqual(metrics(whole));
  });

  it('stops early when validation stops improving', async () => {
    const dir = join(root, 'early');
    // A learning rate this small cannot improve NDCG@10 between validations.
    const t = new Trainer({ gpu: gpu(), data, model, train: train(dir, { maxSteps: 40, evalEvery: 2, patience: 2, lr: 1e-9, warmupSteps: 0 }), maxLength: 16, test: false });
    const s = await t.run();
    t.dispose();
    expect(s.stoppedEarly).toBe(true);
    expect(s.steps).toBeLessThan(40);
  });
});

describe('early stopping', () => {
  const evaluation = (count: number, ndcg10: number): Evaluation => ({ role: 'valid', count, hr1: 0, hr10: 0, hr50: 0, ndcg10, mrr: 0, unknownTargets: 0, withoutHistory: 0 });
  const fresh = () => ({ step: 0, epoch: 0, position: 0, bestMetric: -1, bestStep: 0, sinceBest: 0, events: 0 });

  it('keeps the best NDCG@10 and stops after `patience` evaluations without progress', () => {
    const s = fresh();
    const seen = [0.1, 0.2, 0.15, 0.2, 0.19].map((v, i) => {
      s.step = 100 * (i + 1);
      return noteValidation(s, evaluation(50, v), 3);
    });
    expect(seen).toEqual([{ best: true, stop: false }, { best: true, stop: false }, { best: false, stop: false }, { best: false, stop: false }, { best: false, stop: true }]);
    expect([s.bestStep, s.bestMetric]).toEqual([200, 0.2]);
  });

  it('takes no decision from a split without validation events', () => {
    const s = fresh();
    for (let i = 0; i < 5; i++) expect(noteValidation(s, evaluation(0, 0), 2)).toEqual({ best: false, stop: false });
    expect([s.bestStep, s.sinceBest]).toEqual([0, 0]);
  });
});

describe('a split without validation events', () => {
  it('is reported (single-process and coordinator runs call this before training), a split with them is not', () => {
    const world = generateSynthetic({ users: 40, days: 30, seed: 3 });
    const warnings: [unknown, string][] = [];
    const log = { warn: (o: unknown, m: string) => void warnings.push([o, m]) };
    warnWithoutValidation(prepareDataset(world, { split: { kind: 'time', trainStart: '2024-01-08', trainDays: 10, delayDays: 0, testDays: 10 } }), log);
    warnWithoutValidation(prepareDataset(world, { split: { kind: 'time', trainStart: '2024-01-08', trainDays: 10, delayDays: 2, testDays: 10 } }), log);
    warnWithoutValidation(prepareDataset(world, { split: { kind: 'leave-one-out' } }), log);
    expect(warnings).toEqual([[{ split: 'time' }, expect.stringMatching(/no validation events: no early stopping/)]]);
  });
});
