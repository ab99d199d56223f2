import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobsConfig } from '../serve/config.js';
import { EmbeddingStore, type VersionStatus } from '../serve/store.js';
import { finalizeJobId, shardJobId, type ShardProgress } from './messages.js';

/** Where one regeneration (one version) stands, from its jobs' states and progress. */
export interface ShardState {
  id: string;
  state: string;
  done: number;
  total: number;
  /** Times a worker started the job beyond the first (failures retried, stalls taken back). */
  retries: number;
  stalled: number;
}

export interface FlowProgress {
  version: number;
  status: VersionStatus;
  finalize: string;
  failedReason?: string;
  shards: ShardState[];
  users: number;
  usersDone: number;
  /** Users encoded per second since the first shard started (until the last one finished). */
  usersPerSecond: number;
  seconds: number;
}

function progressOf(p: unknown): ShardProgress | null {
  if (p && typeof p === 'object' && 'done' in p && 'total' in p) return p as ShardProgress;
  return null;
}

export async function flowProgress(queue: Queue, store: EmbeddingStore, version: number): Promise<FlowProgress | null> {
  const info = await store.info(version);
  if (!info) return null;
  const finished = info.status === 'ready' || info.status === 'current' || info.status === 'retired';
  const shards: ShardState[] = [];
  let first = Infinity;
  let last = 0;
  let anyRunning = false;
  for (let i = 0; i < info.shards; i++) {
    const id = shardJobId(version, i);
    const job = await queue.getJob(id);
    if (!job) {
      shards.push({ id, state: finished ? 'completed' : 'missing', done: finished ? 1 : 0, total: finished ? 1 : 0, retries: 0, stalled: 0 });
      continue;
    }
    const state = await job.getState();
    const total = job.data?.users?.length ?? 0;
    const p = progressOf(job.progress);
    const done = state === 'completed' ? total : Math.min(p?.done ?? 0, total);
    if (job.processedOn) first = Math.min(first, job.processedOn);
    if (job.finishedOn) last = Math.max(last, job.finishedOn);
    if (state !== 'completed' && state !== 'failed') anyRunning = true;
    shards.push({ id, state, done, total, retries: Math.max(0, (job.attemptsStarted ?? 0) - 1), stalled: job.stalledCounter ?? 0 });
  }
  const fin = await queue.getJob(finalizeJobId(version));
  const finalize = fin ? await fin.getState() : finished ? 'completed' : 'missing';
  const usersDone = shards.reduce((n, s) => n + s.done, 0);
  const end = anyRunning || !Number.isFinite(first) ? Date.now() : Math.max(last, first);
  const seconds = Number.isFinite(first) ? Math.max(0.001, (end - first) / 1000) : 0;
  const status: VersionStatus = finalize === 'failed' ? 'failed' : info.status;
  return {
    version, status, finalize, ...(fin?.failedReason ? { failedReason: fin.failedReason } : {}), shards, users: info.users,
    usersDone, usersPerSecond: seconds > 0 ? usersDone / seconds : 0, seconds,
  };
}

export async function listFlows(connection: Redis, jobs: JobsConfig, limit = 10): Promise<FlowProgress[]> {
  const store = new EmbeddingStore(connection, jobs.keyPrefix);
  const queue = new Queue(jobs.queue, { connection });
  try {
    const out: FlowProgress[] = [];
    for (const v of await store.versions(limit)) {
      const p = await flowProgress(queue, store, v.version);
      if (p) out.push(p);
    }
    return out;
  } finally {
    await queue.close();
  }
}

export function progressLines(flows: readonly FlowProgress[], current: number | null): string[] {
  if (!flows.length) return ['no regeneration has been enqueued (panther embed --checkpoint FILE)'];
  const rows = [['version', 'status', 'shards done', 'users done', 'users/s', 'seconds']];
  for (const f of flows) {
    const done = f.shards.filter((s) => s.state === 'completed').length;
    const retried = f.shards.filter((s) => s.retries > 0 || s.stalled > 0).length;
    rows.push([
      `${f.version}${f.version === current ? ' *' : ''}`,
      f.status,
      `${done}/${f.shards.length}${retried ? ` (${retried} retried)` : ''}`,
      `${f.usersDone}/${f.users}`,
      f.usersPerSecond.toFixed(1),
      f.seconds.toFixed(1),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  lines.push('* = the version readers use');
  for (const f of flows) if (f.failedReason) lines.push(`version ${f.version} failed: ${f.failedReason}`);
  return lines;
}

/**
 * Progress bars (cli-progress) for the unfinished regenerations: one per shard job and one
 * overall with users/s, until every one is done or failed.
 */
export async function watchFlows(connection: Redis, jobs: JobsConfig, o: { intervalMs?: number; stream?: NodeJS.WritableStream } = {}): Promise<FlowProgress[]> {
  const store = new EmbeddingStore(connection, jobs.keyPrefix);
  const queue = new Queue(jobs.queue, { connection });
  const multi = new MultiBar({
    format: '{name} |{bar}| {value}/{total} users | {rate} users/s | {state}',
    hideCursor: true,
    clearOnComplete: false,
    noTTYOutput: true,
    notTTYSchedule: 2000,
    stream: (o.stream ?? process.stderr) as NodeJS.WriteStream,
  }, Presets.shades_classic);
  const bars = new Map<string, SingleBar>();
  const bar = (key: string, total: number) => {
    let b = bars.get(key);
    if (!b) bars.set(key, (b = multi.create(total, 0, { name: key.padEnd(16), rate: '-', state: '' })));
    b.setTotal(Math.max(total, 1));
    return b;
  };
  try {
    const versions = (await store.versions(20)).filter((v) => v.status === 'building').map((v) => v.version);
    let flows: FlowProgress[] = [];
    for (;;) {
      flows = (await Promise.all(versions.map((v) => flowProgress(queue, store, v)))).filter((f): f is FlowProgress => f !== null);
      let users = 0;
      let done = 0;
      let rate = 0;
      for (const f of flows) {
        users += f.users;
        done += f.usersDone;
        rate += f.usersPerSecond;
        for (const s of f.shards) bar(s.id, s.total).update(s.done, { rate: '-', state: s.state + (s.retries ? ` (retried ${s.retries}x)` : '') });
      }
      bar('overall', users).update(done, { rate: rate.toFixed(1), state: `${flows.filter((f) => f.status === 'building' && f.finalize !== 'failed').length} running` });
      if (flows.every((f) => f.status !== 'building' || f.finalize === 'failed')) break;
      await new Promise((r) => setTimeout(r, o.intervalMs ?? 500));
    }
    return flows;
  } finally {
    multi.stop();
    await queue.close();
  }
}
