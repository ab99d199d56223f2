import { SingleBar } from 'cli-progress';
import { loadPreparedData } from '../data/cache.js';
import type { ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { Gpu } from '../gpu/runtime.js';
import { createLogger } from '../log.js';
import { baselineOf } from '../model/config.js';
import type { Evaluation } from '../train/evaluate.js';
import { Trainer, warnWithoutValidation, type TrainSummary } from '../train/trainer.js';

export interface PretrainOptions {
  baseline?: boolean;
  resume?: boolean;
  checkpointDir?: string;
  maxSteps?: number;
  quiet?: boolean;
}

const pct = (x: number) => (100 * x).toFixed(2);

export function formatEvaluation(e: Evaluation | null): string {
  if (!e) return '-';
  return `HR@1 ${pct(e.hr1)}%  HR@10 ${pct(e.hr10)}%  NDCG@10 ${pct(e.ndcg10)}%  HR@50 ${pct(e.hr50)}%  (${e.count} held-out events${e.unknownTargets ? `, ${e.unknownTargets} unseen targets counted as misses` : ''})`;
}

/** `panther pretrain`: a local pretraining on this machine's adapter with progress and final metrics. */
export async function pretrain(config: ClusterConfig, opts: PretrainOptions): Promise<TrainSummary> {
  const log = createLogger('pretrain');
  const modelConfig = opts.baseline ? baselineOf(config.model) : config.model;
  const train = {
    ...config.train,
    ...(opts.checkpointDir ? { checkpointDir: opts.checkpointDir } : {}),
    ...(opts.maxSteps ? { maxSteps: opts.maxSteps } : {}),
  };
  const prepared = await loadPreparedData(config.data, { log: (m) => log.warn(m) });
  const d = prepared.data;
  log.info({
    source: config.data.source.kind, users: d.users.length, events: d.tokens.length, vocab: d.tokenizer.vocabSize,
    cache: prepared.cache.hit ? 'hit' : 'built', seconds: Number(prepared.seconds.toFixed(2)),
  }, 'data ready');
  warnWithoutValidation(d, log);
  const gpu = await Gpu.create({ ...gpuOptionsFrom(config.gpu), onError: (m) => log.error(m) });
  const bar = new SingleBar({
    format: 'step {value}/{total} |{bar}| loss {loss} | {eps} events/s | ETA {eta_formatted}',
    hideCursor: true,
    etaBuffer: 50,
    noTTYOutput: !opts.quiet,
    notTTYSchedule: 10_000,
    stream: process.stderr,
  });
  const trainer = new Trainer({
    gpu, data: d, model: modelConfig, train, maxLength: config.data.maxLength, resume: opts.resume, log,
    hooks: {
      onStep: (r) => { if (!opts.quiet) bar.update(r.step, { loss: r.loss.toFixed(4), eps: Math.round(r.eventsPerSecond) }); },
      onEvaluation: (e, step) => log.info({ step, hr10: e.hr10, ndcg10: e.ndcg10 }, 'validation'),
    },
  });
  log.info({
    model: opts.baseline ? 'transformer baseline' : 'PANTHER', parameters: trainer.model.store.count(),
    windows: trainer.trainingWindows, steps: trainer.totalSteps, adapter: gpu.description.device, checkpointDir: train.checkpointDir,
  }, 'training');
  if (!opts.quiet) bar.start(trainer.totalSteps, 0, { loss: '-', eps: '-' });
  try {
    const summary = await trainer.run();
    if (!opts.quiet) bar.stop();
    const lines = [
      `model        ${opts.baseline ? 'transformer baseline (SPRM and profile off)' : 'PANTHER'}, ${summary.parameters.toLocaleString('en')} parameters`,
      `trained      ${summary.steps} steps (${summary.epochs.toFixed(2)} epochs), ${summary.events.toLocaleString('en')} events in ${summary.seconds.toFixed(1)} s = ${Math.round(summary.eventsPerSecond).toLocaleString('en')} events/s${summary.stoppedEarly ? ', stopped early' : ''}`,
      `validation   ${formatEvaluation(summary.valid)}  [best step ${summary.bestStep}]`,
      `test         ${formatEvaluation(summary.test)}`,
      `checkpoint   ${summary.checkpoint}`,
      `curves       ${summary.curves ?? '-'}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return summary;
  } finally {
    if (!opts.quiet) bar.stop();
    trainer.dispose();
    gpu.destroy();
  }
}
