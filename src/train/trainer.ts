import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { batchLength, EpochSchedule, makeBatch, trainingWindows } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';
import type { Gpu } from '../gpu/runtime.js';
import type { ModelConfig, ModelShape } from '../model/config.js';
import { PantherModel } from '../model/panther.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { AdamW } from '../tensor/ops/optim.js';
import { tidy, type Tensor } from '../tensor/tensor.js';
import { checkpointPath, readCheckpoint, restoreCheckpoint, saveCheckpoint, type TrainingState } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { evaluateRanking, type Evaluation } from './evaluate.js';
import { curvePointsOf, plotCurves, type CurvePoint } from './plot.js';
import { learningRate } from './schedule.js';

export function modelShapeOf(data: PreparedData, maxLength: number): ModelShape {
  return {
    vocabSize: data.tokenizer.vocabSize,
    attributeVocab: data.tokenizer.attributes.map((a) => a.values.length),
    profileVocab: data.profile.values.map((v) => v.length),
    maxLength,
  };
}

export interface StepReport {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lossNext: number;
  lossContrastive: number | null;
  lr: number;
  gradNorm: number;
  eventsPerSecond: number;
}

export interface TrainerHooks {
  onStep?(r: StepReport): void;
  onEvaluation?(e: Evaluation, step: number): void;
  /** Called after each checkpoint is written (tests kill the process here). */
  onCheckpoint?(path: string, state: TrainingState): void;
}

export interface TrainSummary {
  steps: number;
  epochs: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  stoppedEarly: boolean;
  bestStep: number;
  valid: Evaluation | null;
  test: Evaluation | null;
  parameters: number;
  checkpoint: string;
  curves: string | null;
}

/**
 * Early stopping on validation NDCG@10: a better value becomes the best (the caller writes
 * the best checkpoint); otherwise one more evaluation without progress, and `stop` once
 * there have been `patience` of them in a row. A split without validation events (a time
 * split with no delay) says nothing: the run goes to its end and its last step is reported.
 */
export function noteValidation(state: TrainingState, e: Evaluation, patience: number): { best: boolean; stop: boolean } {
  if (e.count === 0) return { best: false, stop: false };
  if (e.ndcg10 > state.bestMetric) {
    state.bestMetric = e.ndcg10;
    state.bestStep = state.step;
    state.sinceBest = 0;
    return { best: true, stop: false };
  }
  state.sinceBest++;
  return { best: false, stop: state.sinceBest >= patience };
}

/** Says so when the split holds no validation events: the run then takes no early-stopping decision. */
export function warnWithoutValidation(data: PreparedData, log: { warn(fields: object, message: string): void }): void {
  if (data.split.counts.valid === 0) log.warn({ split: data.split.kind }, 'the split has no validation events: no early stopping, the last step is reported');
}

export interface TrainerOptions {
  gpu: Gpu;
  data: PreparedData;
  model: ModelConfig;
  train: TrainConfig;
  maxLength: number;
  /** Continue from the checkpoint in train.checkpointDir (last.safetensors) when present. */
  resume?: boolean;
  log?: Logger;
  hooks?: TrainerHooks;
  /** Evaluate on the test split at the end (default true). */
  test?: boolean;
}

/** The optimizer of a pretraining run (shared with data-parallel replicas, which must match it). */
export function trainingOptimizer(gpu: Gpu, t: TrainConfig): AdamW {
  // No weight decay on norms, biases and embeddings' tables of few rows: only matrices decay.
  return new AdamW(gpu, {
    lr: t.lr, beta1: t.beta1, beta2: t.beta2, weightDecay: t.weightDecay,
    decay: (p) => p.shape.length >= 2 && !(p.name ?? '').includes('prototypes'),
  });
}

/** Batches per epoch and the run's total steps for this many training windows. */
export function trainingSchedule(windowCount: number, t: TrainConfig): { batchesPerEpoch: number; totalSteps: number } {
  const batchesPerEpoch = Math.ceil(windowCount / t.batchSize);
  const fromEpochs = Math.ceil(t.epochs * batchesPerEpoch);
  return { batchesPerEpoch, totalSteps: Math.max(1, t.maxSteps ? Math.min(t.maxSteps, fromEpochs) : fromEpochs) };
}

const INITIAL_STATE: TrainingState = { step: 0, epoch: 0, position: 0, bestMetric: -1, bestStep: 0, sinceBest: 0, events: 0 };

/**
 * The pretraining loop on one adapter: AdamW with warm-up and cosine decay, gradient
 * clipping, next-token + weighted contrastive loss, periodic validation with early stopping
 * on NDCG@10, atomic checkpoints that resume bit-for-bit, metrics as JSON lines and a plot.
 */
export class Trainer {
  readonly model: PantherModel;
  readonly optimizer: AdamW;
  readonly dir: string;
  private state: TrainingState = { ...INITIAL_STATE };
  private readonly schedule: EpochSchedule;
  readonly totalSteps: number;
  private readonly batchesPerEpoch: number;
  private readonly curve: CurvePoint[] = [];

  constructor(private readonly o: TrainerOptions) {
    const t = o.train;
    this.dir = t.checkpointDir;
    this.model = new PantherModel(o.gpu, o.model, modelShapeOf(o.data, o.maxLength));
    this.optimizer = trainingOptimizer(o.gpu, t);
    this.schedule = new EpochSchedule(trainingWindows(o.data, o.maxLength, t.windowContext), { seed: t.seed, batchSize: t.batchSize, bucketBatches: t.lengthBuckets });
    ({ batchesPerEpoch: this.batchesPerEpoch, totalSteps: this.totalSteps } = trainingSchedule(this.schedule.windows.length, t));
  }

  get trainingWindows(): number {
    return this.schedule.windows.length;
  }

  private metricsFile(): string {
    return join(this.dir, 'metrics.jsonl');
  }

  private record(entry: Record<string, unknown>): void {
    appendFileSync(this.metricsFile(), `${JSON.stringify(entry)}\n`);
  }

  /** Restores model, optimizer, state and the metrics of steps already taken. */
  private resume(): boolean {
    const path = checkpointPath(this.dir, 'last');
    if (!existsSync(path)) return false;
    const ckpt = readCheckpoint(path);
    restoreCheckpoint(ckpt, this.model, this.optimizer, path);
    this.state = { ...ckpt.state };
    // Metrics written after that checkpoint belong to the lost part of the run: drop them.
    if (existsSync(this.metricsFile())) {
      const kept = readFileSync(this.metricsFile(), 'utf8').split('\n').filter((line) => {
        if (!line) return false;
        const e = JSON.parse(line) as { step: number };
        return e.step <= this.state.step;
      });
      writeFileSync(this.metricsFile(), kept.map((l) => `${l}\n`).join(''));
      for (const l of kept) this.addCurve(JSON.parse(l));
    }
    this.o.log?.info({ step: this.state.step, epoch: this.state.epoch, path }, 'resumed from checkpoint');
    return true;
  }

  private addCurve(e: Record<string, unknown>): void {
    this.curve.push(...curvePointsOf(e));
  }

  private async checkpoint(name: 'last' | 'best'): Promise<string> {
    const path = checkpointPath(this.dir, name);
    await saveCheckpoint(path, this.model, name === 'last' ? this.optimizer : null, {
      state: this.state,
      model: JSON.stringify({ config: this.o.model, shape: this.model.shape }),
    });
    this.o.hooks?.onCheckpoint?.(path, this.state);
    return path;
  }

  private async validate(): Promise<Evaluation> {
    const t = this.o.train;
    const e = await evaluateRanking(this.model, this.o.data, { role: 'valid', length: this.o.maxLength, batchSize: Math.max(t.batchSize, 64), limit: t.evalUsers });
    const entry = { kind: 'eval', step: this.state.step, ...e };
    this.record(entry);
    this.addCurve(entry);
    this.o.hooks?.onEvaluation?.(e, this.state.step);
    return e;
  }

  /** One optimizer step on the batch at the current position; returns the losses. */
  private async step(): Promise<StepReport> {
    const { gpu, data, train: t } = this.o;
    const slice = this.schedule.batch(this.state.epoch, this.state.position);
    const batch = makeBatch(data, slice, batchLength(slice, this.o.maxLength), 'right');
    const lr = learningRate(this.state.step, { peak: t.lr, warmup: t.warmupSteps, total: this.totalSteps, minRatio: t.minLrRatio });
    const t0 = performance.now();
    const losses = tidy(gpu, () => {
      const l = this.model.loss(batch, { train: true, step: this.state.step });
      backward(l.total);
      return [l.total, l.next, l.contrastive].map((x) => x?.keep() ?? null);
    });
    const norm = this.optimizer.step(this.model.parameters(), { maxGradNorm: t.maxGradNorm, lr });
    zeroGrad(this.model.parameters());
    const [total, next, con, gn] = await Promise.all([...losses, norm].map((x) => (x ? x.read() : Promise.resolve(null))));
    losses.forEach((x: Tensor | null) => x?.dispose());
    const seconds = (performance.now() - t0) / 1000;
    this.state.step++;
    this.state.events += batch.tokens;
    this.state.position++;
    if (this.state.position >= this.batchesPerEpoch) {
      this.state.epoch++;
      this.state.position = 0;
    }
    return {
      step: this.state.step, totalSteps: this.totalSteps, epoch: this.state.epoch,
      loss: total![0], lossNext: next![0], lossContrastive: con ? con[0] : null,
      lr, gradNorm: gn ? gn[0] : 0, eventsPerSecond: batch.tokens / seconds,
    };
  }

  async run(): Promise<TrainSummary> {
    const t = this.o.train;
    mkdirSync(this.dir, { recursive: true });
    if (!(this.o.resume && this.resume())) writeFileSync(this.metricsFile(), '');
    this.o.data.tokenizer.save(join(this.dir, 'tokenizer.json'));
    const started = performance.now();
    const eventsAtStart = this.state.events;
    let stoppedEarly = false;
    let lastEval: Evaluation | null = null;
    while (this.state.step < this.totalSteps) {
      const r = await this.step();
      if (!Number.isFinite(r.loss)) throw new Error(`training diverged at step ${r.step}: loss ${r.loss}`);
      const entry = { kind: 'step', step: r.step, epoch: r.epoch, loss: r.loss, next: r.lossNext, contrastive: r.lossContrastive, lr: r.lr, gradNorm: r.gradNorm, eventsPerSecond: Math.round(r.eventsPerSecond) };
      this.record(entry);
      this.addCurve(entry);
      this.o.hooks?.onStep?.(r);
      const atEnd = this.state.step >= this.totalSteps;
      if (this.state.step % t.evalEvery === 0 || atEnd) {
        lastEval = await this.validate();
        const v = noteValidation(this.state, lastEval, t.patience);
        if (v.best) await this.checkpoint('best');
        stoppedEarly = v.stop;
      }
      if (this.state.step % t.checkpointEvery === 0 || atEnd || stoppedEarly) await this.checkpoint('last');
      if (stoppedEarly) {
        this.o.log?.info({ step: this.state.step, bestStep: this.state.bestStep }, 'early stop: validation NDCG@10 stopped improving');
        break;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    let curves: string | null = null;
    try {
      curves = (await plotCurves(this.curve, join(this.dir, 'curves'), `training ${this.dir}`)).png;
    } catch (err) {
      this.o.log?.warn({ err: (err as Error).message }, 'could not draw the training curves');
    }
    // Report the best validated model: reload it before testing.
    const best = checkpointPath(this.dir, 'best');
    if (existsSync(best) && this.state.bestStep !== this.state.step) restoreCheckpoint(readCheckpoint(best), this.model, null, best);
    const valid = lastEval && this.state.bestStep === this.state.step ? lastEval : existsSync(best) ? await this.validate() : lastEval;
    const test = this.o.test === false ? null : await evaluateRanking(this.model, this.o.data, { role: 'test', length: this.o.maxLength, batchSize: Math.max(t.batchSize, 64) });
    const events = this.state.events - eventsAtStart;
    const summary: TrainSummary = {
      steps: this.state.step,
      epochs: this.state.step / this.batchesPerEpoch,
      events,
      seconds,
      eventsPerSecond: events / Math.max(seconds, 1e-9),
      stoppedEarly,
      bestStep: this.state.bestStep,
      valid,
      test,
      parameters: this.model.store.count(),
      checkpoint: existsSync(best) ? best : checkpointPath(this.dir, 'last'),
      curves,
    };
    writeFileSync(join(this.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  }

  dispose(): void {
    this.model.dispose();
  }
}
