import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterConfig } from '../config/schema.js';
import { PantherError } from '../errors.js';
import { createLogger } from '../log.js';
import { randomSecret } from './auth.js';
import { Coordinator, type CoordinatorHooks } from './coordinator.js';
import { startLocalWorkers, stopLocalWorkers, type LocalWorker } from './local.js';
import { MemberLost, WorkerPool, type Member } from './pool.js';
import type { Message } from './protocol.js';

export interface BenchOptions {
  /** Workers in the all-reduce ring (default 4). */
  workers?: number;
  /** Bytes all-reduced per repetition (default 16 MiB). */
  bytes?: number;
  /** Bucket size (default cluster.bucketBytes): buckets are all-reduced concurrently, as in a step. */
  bucketBytes?: number;
  reps?: number;
  /** Worker counts of the training runs (default 1, 2, 4); empty to skip. */
  train?: number[];
  /** Steps per training run (default 20). */
  steps?: number;
  /** Also time a recovery: kill -9 one of 3 workers mid-run (default true). */
  recovery?: boolean;
}

export interface BenchResult {
  machine: { cpus: number; load1: number };
  allreduce: { workers: number; bytes: number; bucketBytes: number; reps: number; medianSeconds: number; algBytesPerSecond: number; busBytesPerSecond: number };
  /** One stream of the same frames between two of the workers, no reduction. */
  raw: { frameBytes: number; frames: number; seconds: number; bytesPerSecond: number };
  /** Bus bandwidth as a fraction of the raw stream's. */
  busOverRaw: number;
  /**
   * Every worker streaming the same frames to its ring neighbour at once, no reduction: the
   * all-reduce's traffic alone, on the same cores. Its per-link throughput is the bus
   * bandwidth a ring all-reduce would reach if sending were all it did.
   */
  ringStreams: { frameBytes: number; frames: number; seconds: number; bytesPerSecond: number };
  /** Bus bandwidth as a fraction of the concurrent ring streams' per-link throughput. */
  busOverRingStreams: number;
  training: { workers: number; steps: number; seconds: number; stepsPerSecond: number; eventsPerSecond: number }[];
  /** A worker of 3 killed (SIGKILL) as a step goes out: until the loss is detected, and until that step is applied on the other 2. */
  recovery: { workers: number; detectedMs: number; resumedMs: number } | null;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function ringOf(pool: WorkerPool): Promise<Member[]> {
  const members = pool.live();
  const layout = members.map((m) => ({ id: m.id, host: m.ready.peer.host, port: m.ready.peer.port }));
  await pool.request(members, (m) => ({ t: 'ring', gen: 1, rank: members.indexOf(m), members: layout }),
    (_m, msg) => (msg.t === 'ring-ready' ? true : undefined), { timeoutMs: 60_000, what: 'ring set-up' });
  return members;
}

async function benchRequest(pool: WorkerPool, members: Member[], request: number, kind: Message<'bench'>['kind'], bytes: number, reps: number): Promise<Message<'bench-result'>[]> {
  const got = await pool.request(members, () => ({ t: 'bench', request, kind, bytes, reps }),
    (_m, msg) => (msg.t === 'bench-result' && msg.request === request ? msg : undefined), { what: `bench ${kind}` });
  return members.map((m) => got.get(m)!);
}

/**
 * All-reduce bus bandwidth on N local workers over loopback (nccl-tests: busbw =
 * algbw * 2(N-1)/N, algbw = bytes / time), the raw throughput of one WebSocket stream of
 * the same frames between two of the same workers and that of all N workers streaming to
 * their ring neighbours at once, measured in the same run, and the
 * training throughput (steps/s, events/s) of the configured model for 1, 2 and 4 workers.
 */
export async function benchAllreduce(config: ClusterConfig, o: BenchOptions = {}): Promise<BenchResult> {
  const log = createLogger('bench', process.env.PANTHER_LOG_LEVEL ?? 'warn');
  const N = o.workers ?? 4;
  const bytes = Math.floor((o.bytes ?? 16 * 1024 * 1024) / 4) * 4;
  const reps = o.reps ?? 5;
  const secret = randomSecret();
  const bucketBytes = o.bucketBytes ?? config.cluster.bucketBytes;
  const maxPayload = Math.max(config.cluster.maxPayload, 2 * bucketBytes + 1024);
  const pool = new WorkerPool({
    host: '127.0.0.1', port: 0, secret, maxPayload, heartbeatTimeoutMs: 60_000, heartbeatMs: 1000, readyTimeoutMs: 60_000, capacity: N, log,
    setupFor: () => ({ mode: 'bench', config: null, gpu: null, dataKey: null, baseDir: null, heartbeatMs: 1000, heartbeatTimeoutMs: 60_000, maxPayload, bucketBytes, ringTls: false }),
    checkReady: () => null, isStale: () => false,
    onUnsolicited: (m, msg) => { if (msg.t === 'failed') pool.evict(m, msg.message); },
  });
  const url = await pool.start();
  let workers: LocalWorker[] = [];
  let allreduce: BenchResult['allreduce'];
  let raw: BenchResult['raw'];
  let ringStreams: BenchResult['ringStreams'];
  try {
    workers = startLocalWorkers({ url, count: N, secretEnv: config.cluster.secretEnv, secret, prefix: 'bench', env: { PANTHER_LOG_LEVEL: process.env.PANTHER_LOG_LEVEL ?? 'warn' } });
    await pool.waitForMembers(N, 60_000);
    const members = await ringOf(pool);
    // One warm-up repetition, not timed.
    const results = await benchRequest(pool, members, 1, 'allreduce', bytes, reps + 1);
    const perRep = Array.from({ length: reps }, (_, r) => Math.max(...results.map((x) => x.seconds[r + 1])));
    const t = median(perRep);
    const alg = bytes / t;
    allreduce = { workers: N, bytes, bucketBytes, reps, medianSeconds: t, algBytesPerSecond: alg, busBytesPerSecond: (alg * 2 * (N - 1)) / N };
    // The ring sends chunks of a bucket / N: stream frames of that size, as many as the all-reduces sent.
    const frameBytes = Math.max(4, Math.floor(Math.min(bucketBytes, bytes) / N / 4) * 4);
    const frames = Math.max(16, Math.min(4096, Math.ceil((Math.ceil(bytes / frameBytes) * 2 * (N - 1) * reps) / N)));
    const stream = async (request: number, kind: 'raw' | 'ring') => {
      // Timed from the first frame received to the last; with N streams, the slowest link.
      const got = await benchRequest(pool, members, request, kind, frameBytes, frames);
      const seconds = Math.max(...got.filter((x) => x.seconds.length).map((x) => x.seconds[0]));
      return { frameBytes, frames, seconds, bytesPerSecond: ((frames - 1) * frameBytes) / seconds };
    };
    raw = await stream(2, 'raw');
    ringStreams = await stream(3, 'ring');
  } catch (err) {
    if (err instanceof MemberLost) throw new PantherError('E_CLUSTER', `a bench worker was lost: ${err.message}`, 'bench allreduce');
    throw err;
  } finally {
    await pool.shutdown('bench over');
    await stopLocalWorkers(workers);
  }

  const quiet = { PANTHER_LOG_LEVEL: process.env.PANTHER_LOG_LEVEL ?? 'warn' };
  const steps = o.steps ?? 20;
  /** One training run on n local workers, with hooks; removes its folder afterwards. */
  const train = async (n: number, hooks: CoordinatorHooks): Promise<void> => {
    const dir = mkdtempSync(join(tmpdir(), `panther-bench-${n}-`));
    const run: ClusterConfig = {
      ...config,
      train: { ...config.train, maxSteps: steps, evalEvery: 1_000_000, evalUsers: 16, checkpointEvery: 1_000_000, checkpointDir: dir },
    };
    const coordinator = new Coordinator({ config: run, secret, log, workers: n, test: false, listen: { host: '127.0.0.1', port: 0 }, hooks });
    const threads = process.env.LP_NUM_THREADS ?? String(Math.max(1, Math.floor(cpus().length / n)));
    const local = startLocalWorkers({ url: await coordinator.start(), count: n, secretEnv: config.cluster.secretEnv, secret, prefix: `bench${n}`, env: { LP_NUM_THREADS: threads, ...quiet } });
    try {
      await coordinator.run();
    } finally {
      await coordinator.close();
      await stopLocalWorkers(local);
      rmSync(dir, { recursive: true, force: true });
    }
  };

  const training: BenchResult['training'] = [];
  for (const n of o.train ?? [1, 2, 4]) {
    // Steady state: from the end of step 1 (kernels compiled) to the end of the last step.
    const times: number[] = [];
    let events = 0;
    await train(n, { onStep: (r) => { times.push(performance.now()); if (r.step > 1) events += r.events; } });
    const timed = times.length - 1;
    const seconds = (times[times.length - 1] - times[0]) / 1000;
    training.push({ workers: n, steps: timed, seconds, stepsPerSecond: timed / seconds, eventsPerSecond: events / seconds });
  }

  let recovery: BenchResult['recovery'] = null;
  if (o.recovery !== false) {
    const at = Math.max(2, Math.ceil(steps / 2));
    let killedAt = 0;
    let detectedMs = Number.NaN;
    let resumedMs = Number.NaN;
    await train(3, {
      onStepStart: ({ step, attempt, members }) => {
        if (step !== at || attempt !== 1) return;
        killedAt = performance.now();
        process.kill(members[1].pid, 'SIGKILL');
      },
      onWorkerLost: () => { detectedMs = performance.now() - killedAt; },
      onStep: (r) => { if (r.step === at) resumedMs = performance.now() - killedAt; },
    });
    recovery = { workers: 3, detectedMs, resumedMs };
  }
  return { machine: { cpus: cpus().length, load1: loadavg()[0] }, allreduce: allreduce!, raw: raw!, busOverRaw: allreduce!.busBytesPerSecond / raw!.bytesPerSecond,
    ringStreams: ringStreams!, busOverRingStreams: allreduce!.busBytesPerSecond / ringStreams!.bytesPerSecond, training, recovery };
}

const mb = (x: number) => `${(x / 1e6).toFixed(1)} MB/s`;

export function formatBench(r: BenchResult): string {
  const lines = [
    `all-reduce of ${(r.allreduce.bytes / 2 ** 20).toFixed(1)} MiB in buckets of ${(r.allreduce.bucketBytes / 2 ** 20).toFixed(2)} MiB on ${r.allreduce.workers} local workers (median of ${r.allreduce.reps}): ${(r.allreduce.medianSeconds * 1000).toFixed(1)} ms`,
    `  algorithm bandwidth  ${mb(r.allreduce.algBytesPerSecond)}`,
    `  bus bandwidth        ${mb(r.allreduce.busBytesPerSecond)}   (2(N-1)/N x bytes / time)`,
    `  raw WebSocket stream ${mb(r.raw.bytesPerSecond)}   (${r.raw.frames} frames of ${(r.raw.frameBytes / 1024).toFixed(0)} KiB between two workers)`,
    `  bus / raw            ${(100 * r.busOverRaw).toFixed(0)}%`,
    `  ring of ${r.allreduce.workers} streams   ${mb(r.ringStreams.bytesPerSecond)} per link   (every worker sending to its neighbour at once, no reduction)`,
    `  bus / ring streams   ${(100 * r.busOverRingStreams).toFixed(0)}%`,
    '',
    'workers  steps/s  events/s',
    ...r.training.map((t) => `${String(t.workers).padStart(7)}  ${t.stepsPerSecond.toFixed(2).padStart(7)}  ${Math.round(t.eventsPerSecond).toString().padStart(8)}`),
    ...(r.recovery ? ['', `kill -9 of 1 of ${r.recovery.workers} workers: detected after ${r.recovery.detectedMs.toFixed(0)} ms, its step applied on the others ${r.recovery.resumedMs.toFixed(0)} ms after the kill`] : []),
    `(${r.machine.cpus} cores, load ${r.machine.load1.toFixed(1)})`,
  ];
  return lines.join('\n');
}
