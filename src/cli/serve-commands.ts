import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { loadPreparedData } from '../data/cache.js';
import type { PreparedData } from '../data/prepare.js';
import { loadDataset } from '../data/load.js';
import { HANDBOOK_SPLIT, timeWindowOf, type TimeWindow } from '../data/split.js';
import { PantherError } from '../errors.js';
import { comparisonLines, compareFraudModels, type ComparisonResult } from '../fraud/evaluate.js';
import { checkPriorLag, type PriorMode } from '../fraud/deviation.js';
import { merchantLines, merchantRisk, type MerchantReport } from '../fraud/merchants.js';
import { FraudModel } from '../fraud/model.js';
import { DAY, tableFromDataset, type TransactionTable } from '../fraud/table.js';
import { Gpu } from '../gpu/runtime.js';
import { queueClient, resolveRedis } from '../jobs/connection.js';
import { enqueueRegeneration, type EnqueuedRegeneration } from '../jobs/flow.js';
import { listFlows, progressLines, watchFlows } from '../jobs/progress.js';
import { JobWorker } from '../jobs/worker.js';
import { createLogger } from '../log.js';
import type { PantherModel } from '../model/panther.js';
import { histogramQuantiles, latencyBenchmark, latencyLines, type LatencyReport } from '../serve/bench.js';
import { ScoreServer } from '../serve/server.js';
import { EmbeddingStore } from '../serve/store.js';
import { modelFromCheckpoint } from './model-commands.js';

/**
 * The commands of embedding regeneration, serving and fraud evaluation:
 * `embed`, `worker --jobs`, `jobs`, `serve`, `bench serve`, `fraud-eval`, `merchants`.
 */

function readUserList(file: string): string[] {
  if (!existsSync(file)) throw new PantherError('E_ARGUMENT', 'no such user list (one user id per line, or "all")', file);
  return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
}

async function untilFinished(connection: Redis, config: ClusterConfig, version: number, quiet: boolean): Promise<void> {
  const flows = await watchFlows(connection, config.jobs, { stream: quiet ? devNull() : process.stderr });
  const f = flows.find((x) => x.version === version);
  if (f?.status === 'failed' || f?.finalize === 'failed') throw new PantherError('E_JOB', `regeneration ${version} failed: ${f.failedReason ?? 'a shard ran out of attempts'}`, 'embed');
}

function devNull(): NodeJS.WritableStream {
  return { write: () => true, on: () => undefined, once: () => undefined, emit: () => false, end: () => undefined } as unknown as NodeJS.WritableStream;
}

/** Enqueues a regeneration and, with `inProcess`, runs a job worker here until it is done. */
async function regenerate(config: ClusterConfig, connection: Redis, o: { checkpoint: string; users: string[]; before?: number; inProcess: boolean; quiet?: boolean; log: Logger }): Promise<EnqueuedRegeneration> {
  const e = await enqueueRegeneration(connection, config.jobs, { checkpoint: o.checkpoint, data: config.data, users: o.users, before: o.before });
  o.log.info({ version: e.version, users: e.users, shards: e.shards, queue: config.jobs.queue }, 'regeneration enqueued');
  if (!o.inProcess) return e;
  const gpu = await Gpu.create({ ...gpuOptionsFrom(config.gpu), onError: (m) => o.log.error(m) });
  const worker = new JobWorker({ gpu, connection, jobs: config.jobs, log: o.log });
  try {
    await untilFinished(connection, config, e.version, o.quiet ?? false);
  } finally {
    await worker.close();
    gpu.destroy();
  }
  return e;
}

/** `panther embed --checkpoint FILE [--users FILE|all] [--wait]`. */
export async function embedCommand(config: ClusterConfig, o: { checkpoint: string; users: string; before?: string; wait?: boolean }): Promise<EnqueuedRegeneration> {
  const log = createLogger('embed');
  if (!existsSync(o.checkpoint)) throw new PantherError('E_ARGUMENT', 'no such checkpoint', o.checkpoint);
  const users = o.users === 'all' ? (await loadPreparedData(config.data, { log: (m) => log.warn(m) })).data.users : readUserList(o.users);
  const before = o.before ? Date.parse(o.before) / 1000 : undefined;
  if (before !== undefined && !Number.isFinite(before)) throw new PantherError('E_ARGUMENT', `--before is not a date: ${o.before}`, 'embed');
  const target = await resolveRedis(config, log);
  const connection = queueClient(target.url);
  try {
    // With a private Redis nobody else can take the jobs: run them here.
    const inProcess = Boolean(o.wait) || target.local !== null;
    const e = await regenerate(config, connection, { checkpoint: o.checkpoint, users, before, inProcess, log });
    const store = new EmbeddingStore(connection, config.jobs.keyPrefix);
    const lines = [`version ${e.version}: ${e.users} users in ${e.shards} shard jobs on queue ${config.jobs.queue}`];
    if (inProcess) lines.push(...progressLines(await listFlows(connection, config.jobs, 1), await store.current()));
    else lines.push('start workers with `panther worker --jobs`; follow them with `panther jobs --watch`');
    process.stdout.write(`${lines.join('\n')}\n`);
    return e;
  } finally {
    connection.disconnect();
    await target.local?.stop();
  }
}

/** `panther worker --jobs`: takes regeneration jobs until SIGINT / SIGTERM, then finishes the current one. */
export async function jobWorkerCommand(config: ClusterConfig): Promise<void> {
  const log = createLogger('worker');
  const target = await resolveRedis(config, log);
  if (target.local) {
    await target.local.stop();
    throw new PantherError('E_CONFIG', 'a job worker needs the shared Redis the jobs are enqueued on: set redis.url or $' + config.redis.urlEnv, 'worker');
  }
  const gpu = await Gpu.create({ ...gpuOptionsFrom(config.gpu), onError: (m) => log.error(m) });
  const connection = queueClient(target.url);
  const worker = new JobWorker({ gpu, connection, jobs: config.jobs, log });
  await worker.worker.waitUntilReady();
  log.info({ queue: config.jobs.queue, adapter: gpu.description.device, pid: process.pid }, 'job worker ready');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'finishing the current job, then stopping');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await worker.close();
  connection.disconnect();
  gpu.destroy();
}

/** `panther jobs [--watch]`: regenerations with their shards, users done and users/s. */
export async function jobsCommand(config: ClusterConfig, o: { watch?: boolean; limit: number }): Promise<void> {
  const url = (await import('./doctor.js')).redisUrlFrom(config);
  if (!url) throw new PantherError('E_CONFIG', `no Redis configured (redis.url or $${config.redis.urlEnv}): there are no jobs to show`, 'jobs');
  const connection = queueClient(url);
  try {
    if (o.watch) await watchFlows(connection, config.jobs);
    const store = new EmbeddingStore(connection, config.jobs.keyPrefix);
    process.stdout.write(`${progressLines(await listFlows(connection, config.jobs, o.limit), await store.current()).join('\n')}\n`);
  } finally {
    connection.disconnect();
  }
}

export interface ServeOptions {
  model?: string;
  host?: string;
  port?: number;
  /** With no Redis configured: embed this checkpoint into a private one first. */
  checkpoint?: string;
}

/** `panther serve`: the HTTP scorer until SIGINT / SIGTERM. Prints `listening on URL` on stdout. */
export async function serveCommand(config: ClusterConfig, o: ServeOptions): Promise<void> {
  const log = createLogger('serve');
  const modelPath = o.model ?? config.serve.model;
  if (!modelPath) throw new PantherError('E_ARGUMENT', 'no discriminative model: pass --model FILE (written by panther fraud-eval --save-model) or set serve.model', 'serve');
  const model = FraudModel.load(modelPath);
  const target = await resolveRedis(config, log);
  if (target.local) {
    if (!o.checkpoint) {
      await target.local.stop();
      throw new PantherError('E_CONFIG', 'no Redis configured and no --checkpoint to embed into a private one: set redis.url (or $' + config.redis.urlEnv + ') or pass --checkpoint', 'serve');
    }
    const connection = queueClient(target.url);
    const users = (await loadPreparedData(config.data, { log: (m) => log.warn(m) })).data.users;
    await regenerate(config, connection, { checkpoint: o.checkpoint, users, inProcess: true, quiet: true, log });
    connection.disconnect();
  }
  const server = new ScoreServer({
    redisUrl: target.url, keyPrefix: config.jobs.keyPrefix, model, log,
    serve: { ...config.serve, ...(o.host ? { host: o.host } : {}), ...(o.port !== undefined ? { port: o.port } : {}) },
  });
  const address = await server.listen();
  process.stdout.write(`listening on ${address} (embedding version ${server.servedVersion ?? 'none yet'}, model ${path.basename(modelPath)})\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await server.close();
  await target.local?.stop();
}

/**
 * `panther bench serve`: starts `panther serve` as its own process (so the load generator
 * does not share its event loop), then drives it at a constant rate, open loop, on loopback:
 * scores for cached users (90%) and unknown ones (10%). Needs a finished version in Redis.
 */
export async function benchServeCommand(config: ClusterConfig, o: { configPath?: string; overrides?: string[]; model?: string; rate: number; seconds: number; connections: number; json?: string }): Promise<LatencyReport> {
  const log = createLogger('bench');
  const url = (await import('./doctor.js')).redisUrlFrom(config);
  if (!url) throw new PantherError('E_CONFIG', `the benchmark reads a finished embedding version: set redis.url or $${config.redis.urlEnv} and run panther embed first`, 'bench serve');
  const modelPath = o.model ?? config.serve.model;
  if (!modelPath) throw new PantherError('E_ARGUMENT', 'pass --model FILE (written by panther fraud-eval --save-model)', 'bench serve');
  const connection = queueClient(url);
  const store = new EmbeddingStore(connection, config.jobs.keyPrefix);
  const version = await store.current();
  if (version === null) throw new PantherError('E_NO_VERSION', 'no finished embedding version: run panther embed first', 'bench serve');
  const meta = (await store.readMeta(version))!;
  const users = (await store.users(version, meta.buckets)).slice(0, 5000);
  connection.disconnect();
  const { Tokenizer } = await import('../data/tokenizer.js');
  const tokenizer = Tokenizer.fromJSON(JSON.parse(meta.tokenizer));
  const items = tokenizer.attributes[tokenizer.attributeIndex('item')].values.slice(3);
  let i = 0;
  const body = () => {
    i++;
    const user = i % 10 === 0 ? `unknown-${i}` : users[i % users.length];
    const event = { amount: Math.round(Math.exp(2 + 1.5 * Math.sin(i)) * 100) / 100, ...(items.length ? { item: items[(i * 7919) % items.length] } : {}), time: 1_700_000_000 + i * 60 };
    return JSON.stringify({ user, event });
  };
  const bin = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../bin/panther.js');
  const args = [bin, ...(o.configPath ? ['--config', o.configPath] : []), ...(o.overrides ?? []).flatMap((v) => ['--set', v]), 'serve', '--port', '0', '--model', modelPath];
  const child = spawn(process.execPath, args, { env: { ...process.env, [config.redis.urlEnv]: url }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const address = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => {
        const m = /^listening on (\S+)/.exec(line);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new PantherError('E_ARGUMENT', `panther serve exited with code ${code} before listening`, 'bench serve')));
    });
    log.info({ address, version, users: users.length }, 'server up; warming up');
    await latencyBenchmark(`${address}/v1/score`, { rate: Math.min(o.rate, 500), seconds: 2, connections: o.connections, body });
    const before = histogramQuantiles(await (await fetch(`${address}/metrics`)).text(), '/v1/score', []).count;
    const report = await latencyBenchmark(`${address}/v1/score`, { rate: o.rate, seconds: o.seconds, connections: o.connections, body });
    const server = histogramQuantiles(await (await fetch(`${address}/metrics`)).text(), '/v1/score', [0.5, 0.99]);
    process.stdout.write(`${latencyLines(report).join('\n')}\n`);
    process.stdout.write(`in the server (histogram bucket bounds, warm-up included: ${server.count - before} of ${server.count} requests measured here): p50 <= ${server.quantiles[0]} ms, p99 <= ${server.quantiles[1]} ms\n`);
    if (o.json) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    child.kill('SIGTERM');
  }
}

/** The time window of the fraud protocol: the data's time split (the handbook's by default). */
export function fraudWindow(config: ClusterConfig, sourceName: string): TimeWindow {
  const split = config.data.split;
  if (split.kind === 'time') return timeWindowOf(split);
  if (split.kind === 'auto' && sourceName === 'fraud-handbook') return timeWindowOf(HANDBOOK_SPLIT);
  throw new PantherError('E_CONFIG', 'fraud evaluation needs a time split: set data.split to { kind: time, trainStart: YYYY-MM-DD, trainDays, delayDays, testDays } (pretrain with the same data section)', 'data.split');
}

async function withPriorModel<T>(config: ClusterConfig, checkpoint: string | undefined, log: Logger, fn: (p: { model: PantherModel; data: PreparedData } | null) => Promise<T>): Promise<T> {
  if (!checkpoint) return fn(null);
  const { data } = await loadPreparedData(config.data, { log: (m) => log.warn(m) });
  const gpu = await Gpu.create({ ...gpuOptionsFrom(config.gpu), onError: (m) => log.error(m) });
  try {
    const model = modelFromCheckpoint(gpu, checkpoint, data);
    try {
      return await fn({ model, data });
    } finally {
      model.dispose();
    }
  } finally {
    gpu.destroy();
  }
}

async function transactions(config: ClusterConfig, log: Logger): Promise<{ table: TransactionTable; name: string }> {
  const t0 = performance.now();
  const dataset = await loadDataset(config.data.source, { dataRoot: config.data.dataRoot, onBadRow: config.data.onBadRow });
  const table = tableFromDataset(dataset);
  log.info({ data: dataset.meta.name, transactions: table.n, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)) }, 'transactions read');
  return { table, name: dataset.meta.name };
}

export interface FraudEvalOptions {
  checkpoint?: string;
  prior: PriorMode;
  /** With the daily prior: days by which it predates the event's day. */
  lagDays: number;
  /** Events of context each prior gets at least (default half the window; the window length = exactly the cached prior). */
  minContext?: number;
  components: number;
  rounds?: number;
  /** Tree-ensemble seeds (1, 2, ... N): (a) and (b) trained with each. */
  seeds?: number;
  saveModel?: string;
  json?: string;
}

/**
 * `panther fraud-eval`: the handbook protocol on the configured data: (a) the baseline and,
 * with --checkpoint, (b) the same model plus the behaviour-prior features; prints the table.
 * The checkpoint must be pretrained with this same data section: pretraining then reads only
 * events before the end of the training window, so nothing of the test window leaks in.
 */
export async function fraudEvalCommand(config: ClusterConfig, o: FraudEvalOptions): Promise<ComparisonResult> {
  const log = createLogger('fraud-eval');
  checkPriorLag(o.prior, o.lagDays, 'fraud-eval');
  if (o.seeds !== undefined && !(Number.isInteger(o.seeds) && o.seeds >= 1)) throw new PantherError('E_ARGUMENT', `--seeds must be a whole number >= 1, not ${o.seeds}`, 'fraud-eval');
  const { table, name } = await transactions(config, log);
  const window = fraudWindow(config, name);
  const result = await withPriorModel(config, o.checkpoint, log, async (p) => {
    if (p) {
      const w = p.data.split.window;
      if (!w || w.trainEnd > window.testStart) throw new PantherError('E_CONFIG', 'the pretraining data must be split by time with its fit window ending before the test window (no look-ahead)', 'data.split');
    }
    return compareFraudModels(table, {
      window, dataName: name, gbdt: o.rounds ? { rounds: o.rounds } : {},
      extraSeeds: Array.from({ length: Math.max(0, (o.seeds ?? 1) - 1) }, (_, i) => i + 2),
      prior: p ? { ...p, mode: o.prior, lagDays: o.lagDays, components: o.components, minContext: o.minContext, checkpoint: path.resolve(o.checkpoint!) } : null,
      log: (m) => log.info(m),
    });
  });
  process.stdout.write(`${comparisonLines(result).join('\n')}\n`);
  if (o.saveModel) {
    const file = result.models.withPrior ?? result.models.baseline;
    new FraudModel(file).save(o.saveModel);
    process.stdout.write(`scoring model (${result.models.withPrior ? 'b' : 'a'}) written to ${o.saveModel}\n`);
  }
  if (o.json) {
    const { models: _models, testRows: _rows, ...rest } = result;
    writeFileSync(o.json, `${JSON.stringify(rest, null, 2)}\n`);
  }
  return result;
}

/** `panther merchants --checkpoint FILE`: terminals ranked per day by their customers' deviations. */
export async function merchantsCommand(config: ClusterConfig, o: { checkpoint: string; from?: string; days?: number; quantile: number; minEvents: number; lookbackDays: number; json?: string }): Promise<MerchantReport> {
  const log = createLogger('merchants');
  const { table, name } = await transactions(config, log);
  const window = fraudWindow(config, name);
  const from = o.from ? Date.parse(`${o.from}T00:00:00Z`) / 1000 : window.testStart;
  if (!Number.isFinite(from)) throw new PantherError('E_ARGUMENT', `--from is not a date: ${o.from}`, 'merchants');
  const to = o.days ? from + o.days * DAY : window.testEnd;
  const report = await withPriorModel(config, o.checkpoint, log, async (p) => merchantRisk(table, p!.data, p!.model, {
    from, to, quantile: o.quantile, minEvents: o.minEvents, lookbackDays: o.lookbackDays, tops: [10, 50], log: (m) => log.info(m),
  }));
  process.stdout.write(`${merchantLines(report).join('\n')}\n`);
  if (o.json) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
