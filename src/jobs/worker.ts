import { statSync } from 'node:fs';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { modelFromCheckpoint } from '../cli/model-commands.js';
import { loadPreparedData } from '../data/cache.js';
import type { PreparedData } from '../data/prepare.js';
import { PantherError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import type { PantherModel } from '../model/panther.js';
import type { JobsConfig } from '../serve/config.js';
import { EmbeddingStore } from '../serve/store.js';
import { encodeUsers, versionMetaOf } from './encode.js';
import {
  FinalizeJobSchema,
  JOB_FORMAT,
  JOB_NAMES,
  parseJob,
  PruneJobSchema,
  ShardJobSchema,
  ShardResultSchema,
  type ShardProgress,
  type ShardResult,
} from './messages.js';

/** Called after each batch of a shard is written (tests fail or stall a shard here). */
export interface JobWorkerHooks {
  onBatch?(info: { jobId: string; attempt: number; shard: number; done: number; total: number }): void | Promise<void>;
}

export interface JobWorkerOptions {
  gpu: Gpu;
  /** An ioredis client with maxRetriesPerRequest: null (BullMQ's blocking commands need it). */
  connection: Redis;
  jobs: JobsConfig;
  log?: Logger;
  hooks?: JobWorkerHooks;
}

export interface FinalizeResult {
  version: number;
  users: number;
  withoutHistory: number;
  activated: boolean;
  previous: number | null;
}

interface Loaded {
  key: string;
  model: PantherModel;
  data: PreparedData;
}

/**
 * A BullMQ worker for the regeneration queue, holding one adapter. Shard jobs encode their
 * users and write the entries; finalize checks that the version has exactly one entry per
 * encoded user, stores the population default and flips the pointer; prune removes versions
 * whose grace period is over. A killed worker's shard goes back to the queue when its lock
 * expires (stalled) and is redone from the start, rewriting the same keys.
 */
export class JobWorker {
  readonly worker: Worker;
  private loaded: Loaded | null = null;
  private queue: Queue | null = null;
  private closed = false;

  constructor(private readonly o: JobWorkerOptions) {
    const j = o.jobs;
    this.worker = new Worker(j.queue, (job) => this.process(job), {
      connection: o.connection,
      concurrency: j.concurrency,
      lockDuration: j.lockDurationMs,
      stalledInterval: j.stalledIntervalMs,
      maxStalledCount: j.maxStalledCount,
    });
    this.worker.on('failed', (job, err) => o.log?.warn({ job: job?.id, attempt: job?.attemptsMade, err: err.message }, 'job failed'));
    this.worker.on('error', (err) => o.log?.error({ err: err.message }, 'worker error'));
  }

  private async process(job: Job): Promise<unknown> {
    switch (job.name) {
      case JOB_NAMES.shard:
        return this.shard(job);
      case JOB_NAMES.finalize:
        return this.finalize(job);
      case JOB_NAMES.prune: {
        const p = parseJob(PruneJobSchema, job.data, `job ${job.id}`);
        const store = new EmbeddingStore(this.o.connection, p.keyPrefix);
        const removed = await store.prune();
        this.o.log?.info({ removed }, 'pruned old versions');
        // Versions retired later than this job was scheduled for get a job of their own.
        const next = await store.nextPruneAt();
        if (next !== null) await this.schedulePrune(p.keyPrefix, `prune-at-${next}`, next - Date.now());
        return { removed };
      }
      default:
        throw new PantherError('E_JOB', `unknown job name '${job.name}'`, `job ${job.id}`);
    }
  }

  private async load(checkpoint: string, dataConfig: Record<string, unknown>): Promise<Loaded> {
    let mtime: number;
    try {
      mtime = statSync(checkpoint).mtimeMs;
    } catch {
      throw new PantherError('E_ARGUMENT', 'no such checkpoint on this worker', checkpoint);
    }
    const key = `${checkpoint}@${mtime}:${JSON.stringify(dataConfig)}`;
    if (this.loaded?.key === key) return this.loaded;
    this.loaded?.model.dispose();
    this.loaded = null;
    const { data } = await loadPreparedData(dataConfig as never, { log: (m) => this.o.log?.warn(m) });
    const model = modelFromCheckpoint(this.o.gpu, checkpoint, data);
    this.loaded = { key, model, data };
    return this.loaded;
  }

  private async shard(job: Job): Promise<ShardResult> {
    const where = `job ${job.id}`;
    const s = parseJob(ShardJobSchema, job.data, where);
    const t0 = performance.now();
    const { model, data } = await this.load(s.checkpoint, s.data);
    const store = new EmbeddingStore(this.o.connection, s.keyPrefix);
    if (!(await this.o.connection.exists(store.versionKey(s.version, 'meta')))) {
      await store.writeMetaOnce(await versionMetaOf(model, data, s.version, s.checkpoint, s.buckets));
    }
    const index = new Map(data.users.map((u, i) => [u, i]));
    const users: number[] = [];
    const unknown: string[] = [];
    for (const u of s.users) {
      const i = index.get(u);
      if (i === undefined) unknown.push(u);
      else users.push(i);
    }
    const sum = new Float64Array(model.profileEnabled ? model.config.profile.embedDim : model.config.dModel);
    let done = 0;
    const total = s.users.length;
    const r = await encodeUsers(model, data, users, { topK: s.topK, batchUsers: s.batchUsers, before: s.before }, async (entries) => {
      await store.writeEntries(s.version, s.buckets, entries);
      for (const e of entries) for (let j = 0; j < sum.length; j++) sum[j] += e.embedding[j];
      done += entries.length;
      const progress: ShardProgress = { done, total };
      await job.updateProgress(progress as never);
      await this.o.hooks?.onBatch?.({ jobId: job.id!, attempt: job.attemptsMade, shard: s.shard, done, total });
    });
    await job.updateProgress({ done: total, total } as never);
    return {
      shard: s.shard,
      encoded: r.encoded,
      withoutHistory: [...unknown, ...r.withoutHistory.map((u) => data.users[u])],
      embeddingSum: [...sum],
      seconds: (performance.now() - t0) / 1000,
    };
  }

  private async finalize(job: Job): Promise<FinalizeResult> {
    const where = `job ${job.id}`;
    const f = parseJob(FinalizeJobSchema, job.data, where);
    const store = new EmbeddingStore(this.o.connection, f.keyPrefix);
    const values = await job.getChildrenValues();
    const results = Object.values(values).map((v) => parseJob(ShardResultSchema, v, where));
    if (results.length !== f.shards) throw new PantherError('E_JOB', `version ${f.version}: ${results.length} of ${f.shards} shards reported`, where);
    const encoded = results.reduce((n, r) => n + r.encoded, 0);
    const withoutHistory = results.reduce((n, r) => n + r.withoutHistory.length, 0);
    if (encoded + withoutHistory !== f.users) throw new PantherError('E_JOB', `version ${f.version}: shards account for ${encoded + withoutHistory} users, the flow had ${f.users}`, where);
    const count = await store.countEntries(f.version, f.buckets);
    if (count !== encoded) throw new PantherError('E_JOB', `version ${f.version} holds ${count} entries for ${encoded} encoded users`, where);
    if (!(await store.readMeta(f.version))) throw new PantherError('E_JOB', `version ${f.version} has no metadata`, where);
    const dim = results[0]?.embeddingSum.length ?? 0;
    const mean = new Float32Array(dim);
    for (const r of results) r.embeddingSum.forEach((v, j) => (mean[j] += v / Math.max(encoded, 1)));
    await store.writePopulation(f.version, { users: encoded, embedding: mean });
    await store.setStatus(f.version, 'ready');
    const a = await store.activate(f.version, f.graceSeconds);
    const retired = a.activated ? a.previous : f.version;
    if (retired !== null) await this.schedulePrune(f.keyPrefix, `prune-${retired}`, f.graceSeconds * 1000);
    this.o.log?.info({ version: f.version, users: encoded, activated: a.activated, previous: a.previous }, 'version finished');
    return { version: f.version, users: encoded, withoutHistory, activated: a.activated, previous: a.previous };
  }

  private async schedulePrune(keyPrefix: string, jobId: string, delayMs: number): Promise<void> {
    this.queue ??= new Queue(this.o.jobs.queue, { connection: this.o.connection });
    await this.queue.add(JOB_NAMES.prune, { format: JOB_FORMAT, keyPrefix }, { jobId, delay: Math.max(0, Math.round(delayMs)), removeOnComplete: true });
  }

  /** Finishes the running jobs (graceful) and frees the model. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.close();
    await this.queue?.close();
    this.loaded?.model.dispose();
    this.loaded = null;
  }
}
