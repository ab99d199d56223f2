import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelFromCheckpoint } from '../../src/cli/model-commands.js';
import { makeBatch } from '../../src/data/batching.js';
import { loadDataset } from '../../src/data/load.js';
import { timeWindowOf } from '../../src/data/split.js';
import { compareFraudModels } from '../../src/fraud/evaluate.js';
import { FraudModel } from '../../src/fraud/model.js';
import { tableFromDataset } from '../../src/fraud/table.js';
import { enqueueRegeneration } from '../../src/jobs/flow.js';
import { JobWorker } from '../../src/jobs/worker.js';
import { startLocalRedis, type LocalRedis } from '../../src/redis/local-server.js';
import { histogramQuantiles, latencyBenchmark } from '../../src/serve/bench.js';
import { JobsSchema, ServeSchema } from '../../src/serve/config.js';
import { ScoreServer } from '../../src/serve/server.js';
import { EmbeddingStore } from '../../src/serve/store.js';
import { noGrad } from '../../src/tensor/tape.js';
import { tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { FRAUD_RUN, tinyRun, type TinyRun } from '../jobs/fixture.js';

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, seconds = 120): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startRedisOn(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (/Ready to accept connections/.test(out)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  return child;
}

describe('the HTTP scorer (fastify) over a real redis-server', () => {
  const gpu = useGpu();
  let redis: LocalRedis;
  let restarted: ChildProcess | null = null;
  let conn: Redis;
  let run: TinyRun;
  let server: ScoreServer;
  let base: string;
  let version: number;
  let fraudModel: FraudModel;
  const jobs = JobsSchema.parse({ queue: 'serve-test', keyPrefix: 'serve:emb', shardUsers: 40, batchUsers: 16, buckets: 4, topK: 8 });

  beforeAll(async () => {
    redis = await startLocalRedis();
    conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    run = await tinyRun(gpu(), FRAUD_RUN);
    const worker = new JobWorker({ gpu: gpu(), connection: conn, jobs });
    const store = new EmbeddingStore(conn, jobs.keyPrefix);
    const e = await enqueueRegeneration(conn, jobs, { checkpoint: run.checkpoint, data: run.dataConfig, users: run.data.users });
    await until('the version', async () => (await store.current()) === e.version, 240);
    await worker.close();
    version = e.version;
    // The scoring model: (b) of the fraud comparison on the same tiny data.
    const table = tableFromDataset(await loadDataset(run.dataConfig.source));
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    const r = await compareFraudModels(table, {
      window: timeWindowOf(FRAUD_RUN.split as never), dataName: 'synthetic', gbdt: { rounds: 20, maxDepth: 3 },
      prior: { model, data: run.data, mode: 'fresh', components: 4, checkpoint: run.checkpoint },
    });
    model.dispose();
    fraudModel = new FraudModel(r.models.withPrior!);
    server = new ScoreServer({ redisUrl: redis.url, keyPrefix: jobs.keyPrefix, model: fraudModel, serve: ServeSchema.parse({ port: 0, pointerRefreshMs: 100 }) });
    base = await server.listen();
  });

  afterAll(async () => {
    await server?.close();
    await conn?.quit().catch(() => {});
    if (restarted && restarted.exitCode === null) {
      const exited = new Promise((r) => restarted!.once('exit', r));
      restarted.kill('SIGTERM');
      await exited;
    }
    await redis?.stop();
  });

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  const userIndex = 3;
  const lastEvent = () => run.data.offsets[userIndex + 1] - 1;

  it('scores a cached user: probability, deviation from the prior, prototype, version', async () => {
    const user = run.data.users[userIndex];
    const event = { amount: 42.5, item: 'm0001', type: 'payment', category: 'grocery', channel: 'card', time: run.data.time[lastEvent()] + 3600 };
    const { status, body } = await post('/v1/score', { user, event });
    expect(status).toBe(200);
    expect(body.version).toBe(version);
    expect(body.populationDefault).toBe(false);
    expect(body.fraudProbability).toBeGreaterThan(0);
    expect(body.fraudProbability).toBeLessThan(1);
    expect(body.prototype.index).toBeGreaterThanOrEqual(0);
    expect(body.deviation.tokenName).toMatch(/\w/);

    // The deviation equals the log-softmax of the model run directly on the user's history.
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    const end = lastEvent() + 1;
    const batch = makeBatch(run.data, [{ user: userIndex, start: Math.max(run.data.offsets[userIndex], end - 16), end, target: -1 }], 16, 'right');
    const t = noGrad(gpu(), () => tidy(gpu(), () => model.lastPositionScores(model.forward(batch), batch).keep()));
    const scores = await t.readF32();
    t.dispose();
    model.dispose();
    const max = Math.max(...scores);
    const lse = max + Math.log(scores.reduce((s, v) => s + Math.exp(v - max), 0));
    const token = body.deviation.token as number;
    expect(body.deviation.nll).toBeCloseTo(lse - scores[token], 3);
    const exactRank = scores.filter((s) => s >= scores[token]).length;
    if (body.deviation.rankExact) expect(body.deviation.rank).toBe(exactRank);
    else expect(body.deviation.rank).toBeGreaterThan(8);
  });

  it('gives a user with no cached embedding the population default and a flag, not an error', async () => {
    const { status, body } = await post('/v1/score', { user: 'never-seen', event: { amount: 10, item: 'm0001' } });
    expect(status).toBe(200);
    expect(body.populationDefault).toBe(true);
    expect(body.prototype).toBeNull();
    const store = new EmbeddingStore(conn, jobs.keyPrefix);
    const meta = (await store.readMeta(version))!;
    expect(body.deviation.nll).toBeCloseTo(-meta.populationLogProbs[body.deviation.token], 4);
    expect(body.imputed).toEqual(expect.arrayContaining(['customer_tx_1d', 'terminal_risk_30d']));
  });

  it('answers malformed requests with 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ event: { amount: 1 } }, 'user'],
      [{ user: 'u1', event: { amount: -3 } }, 'event.amount'],
      [{ user: 'u1', event: { amount: '12' } }, 'event.amount'],
      [{ user: 'u1', event: { colour: 'red' } }, 'event.colour'],
      [{ user: 'u1', event: { time: 'yesterday-ish' } }, 'event.time'],
      [{ user: 'u1', event: {}, features: { customer_tx_1d: 'many' } }, 'features.customer_tx_1d'],
      ['{"user": "u1", "event": ', '(body)'],
    ];
    for (const [body, field] of cases) {
      const r = await post('/v1/score', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.code).toBe('E_REQUEST');
      expect(r.body.field, JSON.stringify(body)).toBe(field);
    }
    const batch = await post('/v1/score/batch', { events: [{ user: 'u1', event: {} }, { user: 'u2', event: { amount: -1 } }] });
    expect(batch.status).toBe(400);
    expect(batch.body.field).toBe('events.1.event.amount');
  });

  it('scores a batch in order, cached and unknown users mixed', async () => {
    const users = [run.data.users[0], 'nobody-1', run.data.users[5], 'nobody-2'];
    const { status, body } = await post('/v1/score/batch', { events: users.map((user, i) => ({ user, event: { amount: 5 + i, item: 'm0001' } })) });
    expect(status).toBe(200);
    expect(body.results.map((r: { user: string }) => r.user)).toEqual(users);
    expect(body.results.map((r: { populationDefault: boolean }) => r.populationDefault)).toEqual([false, true, false, true]);
    // The same event scored alone gets the same answer.
    const single = await post('/v1/score', { user: users[2], event: { amount: 7, item: 'm0001' } });
    expect(single.body.fraudProbability).toBeCloseTo(body.results[2].fraudProbability, 12);
  });

  it('reports health and Prometheus metrics: requests, latency histogram, cache hits and misses', async () => {
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', redis: 'up', version });
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/panther_requests_total\{route="\/v1\/score",status="200"\} 3/);
    expect(text).toMatch(/panther_requests_total\{route="\/v1\/score",status="400"\} 7/);
    expect(text).toMatch(/panther_request_duration_seconds_bucket\{le="0.005",route="\/v1\/score"\} \d+/);
    expect(text).toMatch(/panther_request_duration_seconds_count\{route="\/v1\/score"\} 10/);
    // Hits: the cached user, batch x2, the single re-score; misses: never-seen, batch x2.
    expect(text).toMatch(/panther_cache_hits_total 4/);
    expect(text).toMatch(/panther_cache_misses_total 3/);
    // The in-memory cache of the served version: only the single re-score found its user there.
    expect(text).toMatch(/panther_local_cache_hits_total 1/);
    expect(text).toMatch(/panther_local_cache_misses_total 6/);
    expect(text).toMatch(new RegExp(`panther_embedding_version ${version}`));
  });

  it('drives the scorer at a constant rate, open loop, and reads its own histogram', async () => {
    const body = () => JSON.stringify({ user: run.data.users[Math.floor(Math.random() * 10)], event: { amount: 12, item: 'm0001' } });
    const t0 = performance.now();
    const r = await latencyBenchmark(`${base}/v1/score`, { rate: 100, seconds: 1, connections: 2, body });
    const wall = (performance.now() - t0) / 1000;
    // Exactly rate x seconds requests, spread over the second rather than sent at once.
    expect(r.requests).toBe(100);
    expect(wall).toBeGreaterThan(0.95);
    expect(r.non2xx + r.errors + r.timeouts).toBe(0);
    expect(r.p50).toBeGreaterThan(0);
    expect(r.p99).toBeGreaterThanOrEqual(r.p50);
    expect(r.scheduledP99).toBeGreaterThanOrEqual(r.p99 - 1e-9);
    expect(r.lagP99).toBeGreaterThanOrEqual(0);
    const server = histogramQuantiles(await (await fetch(`${base}/metrics`)).text(), '/v1/score', [0.5, 1]);
    expect(server.count).toBeGreaterThanOrEqual(10 + r.requests);
    expect(server.quantiles[1]).toBeGreaterThanOrEqual(server.quantiles[0]);
  });

  it('counts refused connections as errors, not latencies', async () => {
    const r = await latencyBenchmark('http://127.0.0.1:1/v1/score', { rate: 50, seconds: 0.2, connections: 1, body: () => '{}' });
    expect(r.requests).toBe(10);
    expect(r.errors).toBe(10);
    expect(Number.isNaN(r.p50)).toBe(true);
  });

  it('drops the cached entries of a version when the pointer moves to a new one', async () => {
    const user = run.data.users[2];
    const first = await post('/v1/score', { user, event: { amount: 9, item: 'm0001' } });
    expect(first.body.version).toBe(version);
    // A new version that differs from the served one in this user's entry only.
    const store = new EmbeddingStore(conn, jobs.keyPrefix);
    const meta = (await store.readMeta(version))!;
    const next = await store.nextVersion();
    await store.registerVersion({ version: next, users: 1, shards: 1, checkpoint: meta.checkpoint });
    await store.writeMetaOnce({ ...meta, version: next });
    const population = await store.readPopulation(version);
    if (population) await store.writePopulation(next, population);
    const entry = (await store.readEntry(version, meta.buckets, user))!;
    expect(first.body.prototype.index).not.toBe(entry.prototype!.index + 1);
    await store.writeEntries(next, meta.buckets, [{ ...entry, prototype: { index: entry.prototype!.index + 1, weight: 0.5 } }]);
    expect((await store.activate(next, 60)).activated).toBe(true);
    const moved = await until('the scorer to serve the new version', async () => {
      const r = await post('/v1/score', { user, event: { amount: 9, item: 'm0001' } });
      return r.body.version === next ? r : null;
    });
    expect(moved.body.prototype.index).toBe(entry.prototype!.index + 1);
    version = next;
  });

  it('answers 503 while Redis is down and recovers when it is back on the same port', async () => {
    const dir = ((await conn.config('GET', 'dir')) as string[])[1];
    await conn.save();
    await conn.quit();
    const exited = new Promise((r) => redis.process.once('exit', r));
    redis.process.kill('SIGKILL');
    await exited;

    // Once the server has seen the connection drop, even a user in its cache gets 503: the
    // pointer may move while Redis is away.
    await until('the server to see Redis down', async () => (await fetch(`${base}/health`)).status === 503);
    const down = await post('/v1/score', { user: run.data.users[2], event: { amount: 3 } });
    expect(down.status).toBe(503);
    expect(down.body.code).toBe('E_REDIS_UNAVAILABLE');
    expect((await fetch(`${base}/health`)).status).toBe(503);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/panther_redis_errors_total [1-9]/);

    restarted = await startRedisOn(redis.port, dir);
    const back = await until('the scorer to recover', async () => {
      const r = await post('/v1/score', { user: run.data.users[2], event: { amount: 3 } });
      return r.status === 200 ? r : null;
    });
    expect(back.body.version).toBe(version);
    expect(back.body.populationDefault).toBe(false);
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});
