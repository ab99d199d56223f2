import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBatch } from '../../src/data/batching.js';
import { enqueueRegeneration } from '../../src/jobs/flow.js';
import { shardJobId } from '../../src/jobs/messages.js';
import { listFlows, progressLines } from '../../src/jobs/progress.js';
import { JobWorker, type JobWorkerHooks } from '../../src/jobs/worker.js';
import { modelFromCheckpoint } from '../../src/cli/model-commands.js';
import { startLocalRedis, type LocalRedis } from '../../src/redis/local-server.js';
import { JobsSchema, type JobsConfig } from '../../src/serve/config.js';
import { CachedPrior } from '../../src/serve/prior.js';
import { EmbeddingStore } from '../../src/serve/store.js';
import { noGrad } from '../../src/tensor/tape.js';
import { tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { tinyRun, type TinyRun } from './fixture.js';

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, seconds = 240): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('embedding regeneration flows on BullMQ (real redis-server)', () => {
  const gpu = useGpu();
  let redis: LocalRedis;
  let conn: Redis;
  let run: TinyRun;
  let n = 0;

  beforeAll(async () => {
    redis = await startLocalRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    run = await tinyRun(gpu());
  });

  afterAll(async () => {
    await conn?.quit();
    await redis?.stop();
  });

  const config = (extra: Record<string, unknown> = {}): JobsConfig => {
    n++;
    return JobsSchema.parse({ queue: `regen${n}`, keyPrefix: `t${n}:emb`, shardUsers: 12, batchUsers: 4, buckets: 4, topK: 8, backoffMs: 50, graceSeconds: 600, ...extra });
  };

  async function regenerate(jobs: JobsConfig, hooks?: JobWorkerHooks) {
    const worker = new JobWorker({ gpu: gpu(), connection: conn, jobs, hooks });
    try {
      const store = new EmbeddingStore(conn, jobs.keyPrefix);
      const e = await enqueueRegeneration(conn, jobs, { checkpoint: run.checkpoint, data: run.dataConfig, users: run.data.users });
      await until(`version ${e.version}`, async () => (await store.info(e.version))?.status === 'current');
      return { e, store };
    } finally {
      await worker.close();
    }
  }

  it('writes exactly one entry per user under a new version, then flips the pointer', async () => {
    const jobs = config();
    const store = new EmbeddingStore(conn, jobs.keyPrefix);
    expect(await store.current()).toBeNull();
    const { e } = await regenerate(jobs);
    expect(e.shards).toBe(Math.ceil(run.data.users.length / 12));
    expect(await store.current()).toBe(e.version);
    expect(await store.countEntries(e.version, jobs.buckets)).toBe(run.data.users.length);
    expect((await store.users(e.version, jobs.buckets)).sort()).toEqual([...run.data.users].sort());

    const meta = (await store.readMeta(e.version))!;
    expect(meta.vocab).toBe(run.data.tokenizer.vocabSize);
    expect(meta.embeddingKind).toBe('profile');
    const population = (await store.readPopulation(e.version))!;
    expect(population.users).toBe(run.data.users.length);
    expect(population.embedding).toHaveLength(8);

    // The cached prior agrees with the model run directly on the user's last events.
    const user = 5;
    const entry = (await store.readEntry(e.version, jobs.buckets, run.data.users[user]))!;
    expect(entry.embedding).toHaveLength(8);
    expect(entry.prior.topTokens).toHaveLength(8);
    expect(entry.prototype!.index).toBeGreaterThanOrEqual(0);
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    const end = run.data.offsets[user + 1];
    const batch = makeBatch(run.data, [{ user, start: Math.max(run.data.offsets[user], end - 16), end, target: -1 }], 16, 'right');
    const scoresT = noGrad(gpu(), () => tidy(gpu(), () => model.lastPositionScores(model.forward(batch), batch).keep()));
    const scores = await scoresT.readF32();
    scoresT.dispose();
    model.dispose();
    const best = scores.indexOf(Math.max(...scores));
    expect(entry.prior.topTokens[0]).toBe(best);
    const prior = new CachedPrior(entry.prior, entry.state, meta.head);
    let z = 0;
    const max = scores[best];
    for (const s of scores) z += Math.exp(s - max);
    for (const t of [best, 7, meta.vocab - 1]) expect(prior.logProb(t)).toBeCloseTo(scores[t] - max - Math.log(z), 4);
    expect(prior.deviation(best).rank).toBe(1);
  });

  it('retries a failing shard, which rewrites the same keys: still one entry per user', async () => {
    const jobs = config();
    let injected = 0;
    const { e, store } = await regenerate(jobs, {
      onBatch: ({ shard, attempt, done }) => {
        if (shard === 1 && attempt === 0 && done >= 8) {
          injected++;
          throw new Error('injected failure after two batches');
        }
      },
    });
    expect(injected).toBe(1);
    const queue = new Queue(jobs.queue, { connection: conn });
    const job = await queue.getJob(shardJobId(e.version, 1));
    await queue.close();
    expect(job!.attemptsMade).toBe(2); // the failure, then the success
    const lines = progressLines(await listFlows(conn, jobs, 5), await store.current()).join('\n');
    expect(lines).toMatch(new RegExp(`${e.version} \\*\\s+current\\s+${e.shards}/${e.shards} \\(1 retried\\)\\s+${run.data.users.length}/${run.data.users.length}\\s+\\d+\\.\\d`));
    expect(await store.countEntries(e.version, jobs.buckets)).toBe(run.data.users.length);
  });

  it('replaces a version atomically and removes the old one after its grace period', async () => {
    const jobs = config({ graceSeconds: 1 });
    const { e: first, store } = await regenerate(jobs);
    const { e: second } = await regenerate({ ...jobs });
    expect(second.version).toBeGreaterThan(first.version);
    expect(await store.current()).toBe(second.version);
    expect((await store.info(first.version))!.status).toBe('retired');
    // An older version finishing late never takes the pointer back.
    expect((await store.activate(first.version, 1)).activated).toBe(false);
    expect(await store.current()).toBe(second.version);

    // The prune job is delayed by the grace period; a worker must be running to take it.
    const worker = new JobWorker({ gpu: gpu(), connection: conn, jobs });
    try {
      await until('the old version to be removed', async () => (await conn.keys(`${jobs.keyPrefix}:v:${first.version}:*`)).length === 0, 60);
    } finally {
      await worker.close();
    }
    expect(await store.countEntries(second.version, jobs.buckets)).toBe(run.data.users.length);
    expect(await store.info(first.version)).toBeNull();
  });
});
