import { join } from 'node:path';
import { loadPreparedData } from '../../src/data/cache.js';
import { DataSchema, type DataConfig } from '../../src/data/config.js';
import type { PreparedData } from '../../src/data/prepare.js';
import type { Gpu } from '../../src/gpu/runtime.js';
import { ModelSchema, type ModelConfig } from '../../src/model/config.js';
import { TrainSchema } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { tempDir } from '../support/tmp.js';

export interface TinyRun {
  dir: string;
  data: PreparedData;
  dataConfig: DataConfig;
  model: ModelConfig;
  checkpoint: string;
}

export const TINY_MODEL = { dModel: 16, heads: 2, layers: 1, ffnMult: 1, sprm: { dilations: [1, 2], prototypes: 4 }, profile: { embedDim: 8 } };

/** A tiny model trained a few steps on small synthetic data: enough to exercise the plumbing. */
export async function tinyRun(gpu: Gpu, o: { users?: number; days?: number; steps?: number; split?: unknown; fraud?: Record<string, number>; model?: Record<string, unknown> } = {}): Promise<TinyRun> {
  const dir = tempDir('panther-tiny');
  const dataConfig = DataSchema.parse({
    source: { kind: 'synthetic', users: o.users ?? 40, days: o.days ?? 20, ...(o.fraud ? { fraud: o.fraud } : {}) },
    maxLength: 16,
    cacheDir: join(dir, 'cache'),
    ...(o.split ? { split: o.split } : {}),
  });
  const { data } = await loadPreparedData(dataConfig);
  const model = ModelSchema.parse({ ...TINY_MODEL, ...o.model });
  const train = TrainSchema.parse({ batchSize: 8, maxSteps: o.steps ?? 3, warmupSteps: 1, lr: 3e-3, checkpointDir: join(dir, 'run'), evalUsers: 8 });
  const t = new Trainer({ gpu, data, model, train, maxLength: 16, test: false });
  const s = await t.run();
  t.dispose();
  return { dir, data, dataConfig, model, checkpoint: s.checkpoint };
}

/** Synthetic data with more fraud than the default, split by time like the handbook protocol (shorter). */
export const FRAUD_RUN = {
  users: 80,
  days: 30,
  fraud: { accountTakeover: 0.15, cardTesting: 0.1, compromisedMerchants: 2 },
  split: { kind: 'time', trainStart: '2024-01-08', trainDays: 10, delayDays: 2, testDays: 10 },
};
