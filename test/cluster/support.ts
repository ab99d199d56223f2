import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { pino } from 'pino';
import { Coordinator, type ClusterSummary, type CoordinatorHooks } from '../../src/cluster/coordinator.js';
import { startLocalWorkers, stopLocalWorkers, type LocalWorker } from '../../src/cluster/local.js';
import { WorkerPool } from '../../src/cluster/pool.js';
import { ClusterConfigSchema, type ClusterConfig } from '../../src/config/schema.js';
import { loadPreparedData } from '../../src/data/cache.js';
import type { Gpu } from '../../src/gpu/runtime.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { Trainer } from '../../src/train/trainer.js';

export const SECRET = 'test-secret-0123456789abcdef';
export const SECRET_ENV = 'PANTHER_TEST_CLUSTER_SECRET';

/** A tiny model on synthetic data: a step takes tens of milliseconds on lavapipe. */
export function tinyConfig(
  root: string, name: string,
  extra: { model?: Record<string, unknown>; train?: Record<string, unknown>; cluster?: Record<string, unknown> } = {},
): ClusterConfig {
  return ClusterConfigSchema.parse({
    data: { source: { kind: 'synthetic', users: 120, days: 30 }, maxLength: 16, cacheDir: join(root, 'cache') },
    model: { dModel: 16, heads: 2, layers: 1, ffnMult: 1, sprm: { dilations: [1, 2], prototypes: 4 }, ...extra.model },
    train: {
      batchSize: 16, maxSteps: 20, evalEvery: 1000, checkpointEvery: 1000, warmupSteps: 3, evalUsers: 20,
      checkpointDir: join(root, name), ...extra.train,
    },
    cluster: { secretEnv: SECRET_ENV, heartbeat: { intervalMs: 500, timeoutMs: 30_000 }, ...extra.cluster },
  });
}

/** The single-process Trainer's run of `config` (the reference the cluster runs must equal); its step lines. */
export async function trainReference(gpu: Gpu, config: ClusterConfig): Promise<StepLine[]> {
  const { data } = await loadPreparedData(config.data);
  const t = new Trainer({ gpu, data, model: config.model, train: config.train, maxLength: config.data.maxLength, test: false });
  await t.run();
  t.dispose();
  return stepLines(config.train.checkpointDir);
}

/** Logs of the in-process coordinator, kept for assertions (and printed when a test fails). */
export function memoryLogger(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void chunks.push(s) });
  return { log, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

export interface ClusterRun {
  summary: ClusterSummary;
  workers: LocalWorker[];
  coordinator: Coordinator;
  logs: Record<string, unknown>[];
}

/** What hooks of a test run can reach: the coordinator, its address and the worker processes. */
export interface RunContext {
  coordinator: Coordinator;
  url: string;
  workers: LocalWorker[];
  config: ClusterConfig;
}

/**
 * A coordinator's membership alone, handing out a bench set-up (no data, no GPU): for tests
 * of what a worker does with its set-up. The pool beats every `beatMs`.
 */
export function setupPool(o: { beatMs?: number; workerTimeoutMs?: number; ringTls?: boolean } = {}): WorkerPool {
  const maxPayload = 1 << 20;
  return new WorkerPool({
    host: '127.0.0.1', port: 0, secret: SECRET, maxPayload, heartbeatTimeoutMs: 60_000, heartbeatMs: o.beatMs ?? 1000, readyTimeoutMs: 60_000, capacity: 1,
    log: pino({ level: 'silent' }),
    setupFor: () => ({
      mode: 'bench', config: null, gpu: null, dataKey: null, baseDir: null, heartbeatMs: 200, heartbeatTimeoutMs: o.workerTimeoutMs ?? 60_000,
      maxPayload, bucketBytes: 1 << 16, ringTls: o.ringTls ?? false,
    }),
    checkReady: () => null, isStale: () => false, onUnsolicited: () => undefined,
  });
}

/** With cluster.tls, local workers serve their ring ports with the same certificate. */
function ringTls(config: ClusterConfig): { cert: string; key: string } | undefined {
  return config.cluster.tls ? { cert: config.cluster.tls.cert, key: config.cluster.tls.key } : undefined;
}

/** A coordinator in this process and `n` real worker processes (LP_NUM_THREADS=1 each). */
export async function runCluster(config: ClusterConfig, n: number, o: { hooks?: (ctx: RunContext) => CoordinatorHooks; faults?: Record<number, string>; ca?: string; resume?: boolean; test?: boolean } = {}): Promise<ClusterRun> {
  const { log, lines } = memoryLogger();
  const ctx = { url: '', workers: [] as LocalWorker[], config } as RunContext;
  const hooks = o.hooks?.(ctx);
  const coordinator = new Coordinator({ config, secret: SECRET, log, workers: n, test: o.test ?? false, resume: o.resume, listen: { port: 0 }, hooks });
  ctx.coordinator = coordinator;
  ctx.url = await coordinator.start();
  ctx.workers = startLocalWorkers({
    url: ctx.url, count: n, secretEnv: SECRET_ENV, secret: SECRET, ca: o.ca, logDir: join(config.train.checkpointDir, 'logs'),
    env: { LP_NUM_THREADS: '1' }, faults: o.faults, tls: ringTls(config),
  });
  try {
    const summary = await coordinator.run();
    return { summary, workers: ctx.workers, coordinator, logs: lines() };
  } catch (err) {
    // The coordinator's log travels with the error, for the test to check or show.
    Object.assign(err as object, { logs: lines() });
    throw err;
  } finally {
    await coordinator.close();
    await stopLocalWorkers(ctx.workers);
  }
}

/** A worker process more, joining a running test cluster. */
export function addWorker(ctx: RunContext, index: number): LocalWorker {
  const [w] = startLocalWorkers({
    url: ctx.url, count: 1, first: index, secretEnv: SECRET_ENV, secret: SECRET, logDir: join(ctx.config.train.checkpointDir, 'logs'), env: { LP_NUM_THREADS: '1' },
    tls: ringTls(ctx.config),
  });
  ctx.workers.push(w);
  return w;
}

export interface StepLine {
  kind: string;
  step: number;
  loss: number;
  next: number;
  contrastive: number | null;
  gradNorm: number;
  workers?: number;
  attempts?: number;
}

export function stepLines(dir: string): StepLine[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.kind === 'step');
}

export function events(dir: string): Record<string, unknown>[] {
  return readFileSync(join(dir, 'cluster.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export interface ParameterDifference {
  /** Worst per-tensor max|a - b| / max|a|. */
  worst: number;
  name: string;
  tensors: number;
}

export function parameterDifference(refDir: string, dir: string): ParameterDifference {
  const a = readCheckpoint(join(refDir, 'last.safetensors'));
  const b = readCheckpoint(join(dir, 'last.safetensors'));
  const out: ParameterDifference = { worst: 0, name: '', tensors: 0 };
  for (const [name, t] of a.tensors) {
    if (name.startsWith('optimizer.')) continue;
    const u = b.tensors.get(name);
    expect(u, name).toBeDefined();
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < t.data.length; i++) {
      diff = Math.max(diff, Math.abs(t.data[i] - u!.data[i]));
      scale = Math.max(scale, Math.abs(t.data[i]));
    }
    const rel = diff / Math.max(scale, 1e-30);
    out.tensors++;
    if (rel >= out.worst) {
      out.worst = rel;
      out.name = name;
    }
  }
  return out;
}

/** Parameters agree within 1e-5 relative per tensor. */
export function expectSameParameters(refDir: string, dir: string): ParameterDifference {
  const d = parameterDifference(refDir, dir);
  expect(d.tensors).toBeGreaterThan(20);
  expect(d.worst, `worst tensor ${d.name}`).toBeLessThanOrEqual(1e-5);
  return d;
}

/** Losses of the same steps agree within `tol` (absolute, on losses of order 1-10). */
export function expectSameLosses(ref: StepLine[], got: StepLine[], tol = 1e-5): void {
  expect(got.map((l) => l.step)).toEqual(ref.map((l) => l.step));
  ref.forEach((r, i) => {
    expect(Math.abs(got[i].loss - r.loss), `loss at step ${r.step}: ${got[i].loss} vs ${r.loss}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(r.loss)));
    expect(Math.abs(got[i].next - r.next), `next-token loss at step ${r.step}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(r.next)));
    if (r.contrastive !== null) expect(Math.abs(got[i].contrastive! - r.contrastive), `contrastive loss at step ${r.step}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(r.contrastive)));
    else expect(got[i].contrastive).toBeNull();
  });
}
