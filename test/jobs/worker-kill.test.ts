import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueRegeneration } from '../../src/jobs/flow.js';
import { shardJobId } from '../../src/jobs/messages.js';
import { startLocalRedis, type LocalRedis } from '../../src/redis/local-server.js';
import { JobsSchema } from '../../src/serve/config.js';
import { EmbeddingStore } from '../../src/serve/store.js';
import { useGpu } from '../support/gpu.js';
import { tinyRun, type TinyRun } from './fixture.js';

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, seconds: number, log: () => string): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}; worker output:\n${log()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('a job worker process killed mid-job (kill -9)', () => {
  const gpu = useGpu();
  let redis: LocalRedis;
  let conn: Redis;
  let run: TinyRun;
  const children: ChildProcess[] = [];
  let output = '';

  beforeAll(async () => {
    redis = await startLocalRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    run = await tinyRun(gpu());
  });

  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await exited;
      }
    }
    await conn?.quit();
    await redis?.stop();
  });

  const startWorker = (config: string): ChildProcess => {
    const child = spawn(process.execPath, ['bin/panther.js', '--config', config, 'worker', '--jobs'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    children.push(child);
    return child;
  };

  it('loses and duplicates no user: the stalled shard is redone by another worker', async () => {
    const jobs = JobsSchema.parse({
      queue: 'killtest', keyPrefix: 'kill:emb', shardUsers: 20, batchUsers: 1, buckets: 4, topK: 4,
      lockDurationMs: 2000, stalledIntervalMs: 500, backoffMs: 50,
    });
    const config = join(run.dir, 'cluster.yaml');
    // YAML is a superset of JSON.
    writeFileSync(config, JSON.stringify({ redis: { url: redis.url }, data: run.dataConfig, model: run.model, jobs }));
    const store = new EmbeddingStore(conn, jobs.keyPrefix);
    const queue = new Queue(jobs.queue, { connection: conn });
    try {
      const e = await enqueueRegeneration(conn, jobs, { checkpoint: run.checkpoint, data: run.dataConfig, users: run.data.users });
      expect(e.shards).toBe(2);
      const first = startWorker(config);
      const firstExit = new Promise((r) => first.once('exit', (code, signal) => r(signal ?? code)));

      // Kill the worker while a shard has written some of its users but not all.
      const victim = await until('a shard part-way through', async () => {
        for (let s = 0; s < e.shards; s++) {
          const job = await queue.getJob(shardJobId(e.version, s));
          const p = job?.progress as { done: number; total: number } | undefined;
          if (p && p.done > 0 && p.done < p.total && (await job!.getState()) === 'active') return { shard: s, done: p.done };
        }
        return null;
      }, 240, () => output);
      first.kill('SIGKILL');
      expect(await firstExit).toBe('SIGKILL');
      expect((await store.info(e.version))!.status).toBe('building');
      const partial = await store.countEntries(e.version, jobs.buckets);
      expect(partial).toBeGreaterThanOrEqual(victim.done);
      expect(partial).toBeLessThan(run.data.users.length);

      // A fresh worker takes the stalled shard back once its lock expires, and finishes the flow.
      const second = startWorker(config);
      await until(`version ${e.version} to become current`, async () => (await store.current()) === e.version, 240, () => output);
      expect(await store.countEntries(e.version, jobs.buckets)).toBe(run.data.users.length);
      expect((await store.users(e.version, jobs.buckets)).sort()).toEqual([...run.data.users].sort());
      const job = (await queue.getJob(shardJobId(e.version, victim.shard)))!;
      expect(await job.getState()).toBe('completed');
      expect(job.attemptsStarted).toBeGreaterThanOrEqual(2);
      expect(job.stalledCounter).toBeGreaterThanOrEqual(1);

      // `panther jobs` shows the finished version with its retried shard and users/s.
      const jobsOut = await new Promise<string>((resolve) => {
        const c = spawn(process.execPath, ['bin/panther.js', '--config', config, 'jobs'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
        c.once('exit', () => resolve(out));
      });
      expect(jobsOut).toMatch(new RegExp(`${e.version} \\*\\s+current\\s+2/2 \\(1 retried\\)\\s+40/40\\s+\\d+\\.\\d`));

      const secondExit = new Promise((r) => second.once('exit', (code) => r(code)));
      second.kill('SIGTERM');
      expect(await secondExit).toBe(0);
    } finally {
      await queue.close();
    }
  });
});
