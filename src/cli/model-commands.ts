import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { makeBatch } from '../data/batching.js';
import { loadPreparedData } from '../data/cache.js';
import { loadDataset } from '../data/load.js';
import type { PreparedData } from '../data/prepare.js';
import type { ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { PantherError } from '../errors.js';
import { Gpu } from '../gpu/runtime.js';
import { createLogger } from '../log.js';
import { baselineOf, effectiveModelConfig, ModelSchema, type ModelConfig, type ModelShape } from '../model/config.js';
import type { TrainSummary } from '../train/trainer.js';
import { PantherModel } from '../model/panther.js';
import { noGrad } from '../tensor/tape.js';
import { tidy } from '../tensor/tensor.js';
import { readCheckpoint, restoreCheckpoint } from '../train/checkpoint.js';
import { evaluationOf, rankHeldOut, type Evaluation } from '../train/evaluate.js';
import { BOOTSTRAP_SAMPLES, RANKING_METRICS, pairedGains, type GainInterval } from '../train/ranking.js';
import { runPretraining } from './cluster-commands.js';
import { formatEvaluation } from './pretrain.js';

/** Rebuilds the model a checkpoint was trained as, on data prepared the same way. */
export function modelFromCheckpoint(gpu: Gpu, path: string, data: PreparedData): PantherModel {
  if (!existsSync(path)) throw new PantherError('E_ARGUMENT', 'no such checkpoint', path);
  const ckpt = readCheckpoint(path);
  const saved = ckpt.model as { config: unknown; shape: ModelShape };
  const config = ModelSchema.parse(saved.config);
  if (saved.shape.vocabSize !== data.tokenizer.vocabSize) {
    throw new PantherError('E_CONFIG', `was trained with a vocabulary of ${saved.shape.vocabSize} tokens, the configured data gives ${data.tokenizer.vocabSize}: use the data section it was trained with`, path);
  }
  const model = new PantherModel(gpu, config, saved.shape);
  restoreCheckpoint(ckpt, model, null, path);
  return model;
}

async function withModelData<T>(config: ClusterConfig, fn: (gpu: Gpu, data: PreparedData) => Promise<T>): Promise<T> {
  const log = createLogger('panther');
  const { data } = await loadPreparedData(config.data, { log: (m) => log.warn(m) });
  const gpu = await Gpu.create({ ...gpuOptionsFrom(config.gpu), onError: (m) => log.error(m) });
  try {
    return await fn(gpu, data);
  } finally {
    gpu.destroy();
  }
}

export interface Comparison {
  model: Evaluation;
  baseline: Evaluation | null;
  /** Relative HR@1 gain of the model over the baseline. */
  hr1Gain: number | null;
  /** Relative gains with 95% paired bootstrap intervals over the held-out users (both models ranked on the same events). */
  intervals: GainInterval[] | null;
}

const percent = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%` : '-');

export function compareLines(c: Comparison): string[] {
  const rows = [['', 'HR@1', 'HR@10', 'NDCG@10', 'HR@50', 'events']];
  const row = (name: string, e: Evaluation) => [name, e.hr1, e.hr10, e.ndcg10, e.hr50].map((v, i) => (i === 0 ? String(v) : (100 * (v as number)).toFixed(2))).concat(String(e.count));
  rows.push(row('PANTHER', c.model));
  if (c.baseline) rows.push(row('transformer', c.baseline));
  if (c.baseline) {
    const gain = (a: number, b: number) => (b > 0 ? percent(a / b - 1) : '-');
    rows.push(['gain', gain(c.model.hr1, c.baseline.hr1), gain(c.model.hr10, c.baseline.hr10), gain(c.model.ndcg10, c.baseline.ndcg10), gain(c.model.hr50, c.baseline.hr50), '']);
  }
  if (c.intervals) {
    const by = new Map(c.intervals.map((g) => [g.metric, g]));
    rows.push(['95% interval', ...RANKING_METRICS.map((m) => `${percent(by.get(m)!.low)}..${percent(by.get(m)!.high)}`), '']);
    rows.push(['P(PANTHER ahead)', ...RANKING_METRICS.map((m) => by.get(m)!.aBetter.toFixed(2)), '']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c2, i) => c2.padStart(widths[i])).join('  '));
  if (c.intervals) lines.push(`(intervals: paired bootstrap over the held-out users, ${BOOTSTRAP_SAMPLES.toLocaleString('en-US')} resamples: how much of a gain could come from which users were held out)`);
  return lines;
}

/**
 * Both checkpoints ranked on the same held-out events, their metrics, and the gains with
 * paired bootstrap intervals.
 */
async function rankAndCompare(gpu: Gpu, data: PreparedData, modelPath: string, baselinePath: string | null, role: 'valid' | 'test'): Promise<Comparison> {
  const rank = async (path: string) => {
    const model = modelFromCheckpoint(gpu, path, data);
    try {
      const r = await rankHeldOut(model, data, { role, length: model.shape.maxLength, batchSize: 64 });
      return { ranks: r.ranks, users: r.users, e: evaluationOf(role, r) };
    } finally {
      model.dispose();
    }
  };
  const model = await rank(modelPath);
  const baseline = baselinePath ? await rank(baselinePath) : null;
  return {
    model: model.e,
    baseline: baseline?.e ?? null,
    hr1Gain: baseline && baseline.e.hr1 > 0 ? model.e.hr1 / baseline.e.hr1 - 1 : null,
    intervals: baseline ? pairedGains(model.ranks, baseline.ranks, { users: model.users }) : null,
  };
}

/** `panther eval`: full-vocabulary ranking of held-out events for a model (and a baseline). */
export async function evalCommand(config: ClusterConfig, o: { checkpoint: string; baselineCheckpoint?: string; split: 'valid' | 'test'; json?: string }): Promise<Comparison> {
  return withModelData(config, async (gpu, data) => {
    const c = await rankAndCompare(gpu, data, o.checkpoint, o.baselineCheckpoint ?? null, o.split);
    process.stdout.write(`${o.split} split, ranked against all ${data.tokenizer.vocabSize} tokens\n${compareLines(c).join('\n')}\n`);
    if (o.json) writeFileSync(o.json, `${JSON.stringify(c, null, 2)}\n`);
    return c;
  });
}

/** `panther inspect --user`: which prototypes (habits) a user's history matches, and the likeliest next events. */
export async function inspectCommand(config: ClusterConfig, o: { checkpoint: string; user: string; top: number }): Promise<void> {
  await withModelData(config, async (gpu, data) => {
    const u = data.users.indexOf(o.user);
    if (u < 0) throw new PantherError('E_ARGUMENT', `user '${o.user}' is not in the data (${data.users.length} users; e.g. ${data.users.slice(0, 3).join(', ')})`, 'inspect');
    const model = modelFromCheckpoint(gpu, o.checkpoint, data);
    try {
      const L = model.shape.maxLength;
      const end = data.offsets[u + 1];
      const start = Math.max(data.offsets[u], end - L);
      const batch = makeBatch(data, [{ user: u, start, end, target: -1 }], L, 'right');
      const [s, w] = noGrad(gpu, () => tidy(gpu, () => {
        const f = model.forward(batch);
        return [model.lastPositionScores(f, batch).keep(), f.prototypeWeights.map((t) => t.keep())] as const;
      }));
      const scores = await s.readF32();
      const weights = await Promise.all(w.map((t) => t.readF32()));
      s.dispose();
      w.forEach((t) => t.dispose());
      const lines = [`user ${o.user}: ${end - data.offsets[u]} events, the last ${end - start} read`];
      const K = model.config.sprm.prototypes;
      weights.forEach((w, layer) => {
        // Mean prototype weight over the user's real events (right-aligned at the end of the window).
        const mean = new Float64Array(K);
        for (let pos = L - (end - start); pos < L; pos++) for (let k = 0; k < K; k++) mean[k] += w[pos * K + k] / (end - start);
        const top = [...mean.keys()].sort((a, b) => mean[b] - mean[a]).slice(0, 5);
        lines.push(`prototypes, block ${layer}: ${top.map((k) => `#${k} ${(100 * mean[k]).toFixed(1)}%`).join('  ')}  (last event: #${top[0]} ${(100 * w[(L - 1) * K + top[0]]).toFixed(1)}%)`);
      });
      if (weights.length === 0) lines.push('prototypes: none (this model has no prototype matching)');
      let max = -Infinity;
      for (const v of scores) max = Math.max(max, v);
      let z = 0;
      for (const v of scores) z += Math.exp(v - max);
      const order = [...scores.keys()].sort((a, b) => scores[b] - scores[a]).slice(0, o.top);
      lines.push('likeliest next events:');
      for (const t of order) lines.push(`  ${(100 * Math.exp(scores[t] - max) / z).toFixed(2).padStart(6)}%  ${data.tokenizer.tokenName(t)}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      model.dispose();
    }
  });
}

/** `panther tokenize --explain --user`: a user's history as token names. */
export async function tokenizeCommand(config: ClusterConfig, o: { user?: string; limit: number }): Promise<void> {
  const log = createLogger('panther');
  const { data } = await loadPreparedData(config.data, { log: (m) => log.warn(m) });
  const t = data.tokenizer;
  const levels = new Map<number, number>();
  for (const l of data.levels) levels.set(l, (levels.get(l) ?? 0) + 1);
  const lines = [
    `${data.meta.name}: ${data.users.length} users, ${data.tokens.length} events, ${t.vocabSize} tokens`,
    `back-off levels used: ${[...levels.entries()].sort((a, b) => a[0] - b[0]).map(([l, n]) => `${l < 0 ? '<unk>' : `level ${l}`} ${n}`).join(', ')}`,
  ];
  if (o.user !== undefined) {
    const dataset = await loadDataset(config.data.source, { dataRoot: config.data.dataRoot, onBadRow: config.data.onBadRow });
    const history = dataset.users.find((h) => h.user === o.user);
    if (!history) throw new PantherError('E_ARGUMENT', `user '${o.user}' is not in the data`, 'tokenize');
    lines.push(...t.explain(history, { limit: o.limit }));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * A run that finished in `dir` (its summary.json, and a best checkpoint of the same model
 * config), or null.
 */
function finishedRun(dir: string, model: ModelConfig): TrainSummary | null {
  const summary = join(dir, 'summary.json');
  const best = join(dir, 'best.safetensors');
  if (!existsSync(summary) || !existsSync(best)) return null;
  const saved = (readCheckpoint(best).model as { config?: unknown } | null)?.config;
  // Through the schema, so that options added since (with their defaults) still match; the
  // options of a switched-off SPRM or profile do not change what trained.
  const parsed = ModelSchema.safeParse(saved);
  const same = (a: ModelConfig, b: ModelConfig) => isDeepStrictEqual(JSON.parse(JSON.stringify(effectiveModelConfig(a))), JSON.parse(JSON.stringify(effectiveModelConfig(b))));
  if (!parsed.success || !same(parsed.data, model)) return null;
  const s = JSON.parse(readFileSync(summary, 'utf8')) as TrainSummary;
  // The checkpoint where the run is now: a run folder may have been moved or copied since.
  return s.test ? { ...s, checkpoint: best } : null;
}

/**
 * `panther experiment`: PANTHER and the plain-transformer baseline trained by the same code
 * with the same budget, then both evaluated on the test split.
 */
export async function experimentCommand(config: ClusterConfig, o: { out: string; reuse?: boolean; maxSteps?: number }): Promise<Comparison> {
  mkdirSync(o.out, { recursive: true });
  const runs = { model: join(o.out, 'panther'), baseline: join(o.out, 'baseline') };
  const train = async (dir: string, baseline: boolean): Promise<TrainSummary> => {
    const done = o.reuse ? finishedRun(dir, baseline ? baselineOf(config.model) : config.model) : null;
    if (done) {
      process.stderr.write(`reusing the finished run in ${dir}\n`);
      return done;
    }
    return runPretraining(config, { checkpointDir: dir, baseline, quiet: true, maxSteps: o.maxSteps });
  };
  const model = await train(runs.model, false);
  const baseline = await train(runs.baseline, true);
  // The evaluated checkpoints again, side by side on the same test events, for the intervals.
  const c = await withModelData(config, (gpu, data) => rankAndCompare(gpu, data, model.checkpoint, baseline.checkpoint, 'test'));
  const report = {
    data: config.data.source,
    comparison: c,
    panther: { steps: model.steps, seconds: model.seconds, eventsPerSecond: model.eventsPerSecond, parameters: model.parameters, bestStep: model.bestStep },
    baseline: { steps: baseline.steps, seconds: baseline.seconds, eventsPerSecond: baseline.eventsPerSecond, parameters: baseline.parameters, bestStep: baseline.bestStep },
  };
  writeFileSync(join(o.out, 'experiment.json'), `${JSON.stringify(report, null, 2)}\n`);
  const lines = [
    `test split, ranked against the full vocabulary`,
    ...compareLines(c),
    `PANTHER     ${formatEvaluation(model.test)}; ${model.steps} steps in ${model.seconds.toFixed(0)} s (${Math.round(model.eventsPerSecond)} events/s)`,
    `transformer ${formatEvaluation(baseline.test)}; ${baseline.steps} steps in ${baseline.seconds.toFixed(0)} s (${Math.round(baseline.eventsPerSecond)} events/s)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return c;
}

