import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { ClusterConfig } from '../config/schema.js';
import { PantherError } from '../errors.js';
import { createLogger } from '../log.js';
import { baselineOf } from '../model/config.js';
import { randomSecret, readSecret } from '../cluster/auth.js';
import { benchAllreduce as runBenchAllreduce, formatBench, type BenchOptions } from '../cluster/bench.js';
import { workerSlots } from '../cluster/config.js';
import { Coordinator, type ClusterSummary } from '../cluster/coordinator.js';
import { startLocalWorkers, stopLocalWorkers, type LocalWorker } from '../cluster/local.js';
import { runWorker } from '../cluster/worker.js';
import type { TrainSummary } from '../train/trainer.js';
import { formatEvaluation, pretrain, type PretrainOptions } from './pretrain.js';

/**
 * The cluster's commands: `panther coordinator`, `panther worker`, the `cluster.workers: N`
 * path of `panther pretrain` (a coordinator in this process and N local worker processes),
 * and `panther bench allreduce`.
 */

/**
 * Pretraining as `cluster.yaml` asks for it: a coordinator here and N local worker
 * processes when `cluster.workers` is 2 or more, else this process alone.
 */
export async function runPretraining(config: ClusterConfig, opts: PretrainOptions): Promise<TrainSummary> {
  return wantsCluster(config) ? pretrainCluster(config, opts) : pretrain(config, opts);
}

/** True when `panther pretrain` should run data-parallel (two or more workers configured). */
export function wantsCluster(config: ClusterConfig): boolean {
  return workerSlots(config.cluster).length >= 2;
}

function withRunOptions(config: ClusterConfig, opts: PretrainOptions): ClusterConfig {
  return {
    ...config,
    model: opts.baseline ? baselineOf(config.model) : config.model,
    train: {
      ...config.train,
      ...(opts.checkpointDir ? { checkpointDir: opts.checkpointDir } : {}),
      ...(opts.maxSteps ? { maxSteps: opts.maxSteps } : {}),
    },
  };
}

function summaryLines(s: ClusterSummary, baseline: boolean): string[] {
  return [
    `model        ${baseline ? 'transformer baseline (SPRM and profile off)' : 'PANTHER'}, ${s.parameters.toLocaleString('en')} parameters`,
    `trained      ${s.steps} steps (${s.epochs.toFixed(2)} epochs), ${s.events.toLocaleString('en')} events in ${s.seconds.toFixed(1)} s = ${Math.round(s.eventsPerSecond).toLocaleString('en')} events/s${s.stoppedEarly ? ', stopped early' : ''}`,
    `workers      ${s.workers} at the end, ${s.joined} joined, ${s.lost.length} lost, ${s.discardedAttempts} step attempts redone${s.recoverySeconds.length ? ` (back to training ${s.recoverySeconds.map((x) => `${x.toFixed(1)} s`).join(', ')} after a loss)` : ''}`,
    `validation   ${formatEvaluation(s.valid)}  [best step ${s.bestStep}]`,
    `test         ${formatEvaluation(s.test)}`,
    `checkpoint   ${s.checkpoint}`,
    `curves       ${s.curves ?? '-'}`,
  ];
}

function progress(quiet: boolean | undefined): { bar: SingleBar | null } {
  if (quiet) return { bar: null };
  return {
    bar: new SingleBar({
      format: 'step {value}/{total} |{bar}| loss {loss} | {eps} events/s | {workers} workers | ETA {eta_formatted}',
      hideCursor: true, etaBuffer: 50, noTTYOutput: true, notTTYSchedule: 10_000, stream: process.stderr,
    }),
  };
}

/**
 * `panther pretrain` with `cluster.workers: N`: this process coordinates and owns the
 * checkpoints; N local worker processes (one adapter each, as chosen per worker) train.
 * The secret comes from `cluster.secretEnv` when set, otherwise a random one is made for
 * this run and handed to the workers it starts.
 */
export async function pretrainCluster(config: ClusterConfig, opts: PretrainOptions): Promise<ClusterSummary> {
  const log = createLogger('coordinator');
  const run = withRunOptions(config, opts);
  const slots = workerSlots(config.cluster);
  const secret = process.env[config.cluster.secretEnv] ? readSecret(config.cluster.secretEnv) : randomSecret();
  const { bar } = progress(opts.quiet);
  let started = false;
  let workers: LocalWorker[] = [];
  let restarts = 0;
  let finishing = false;
  const threads = process.env.LP_NUM_THREADS ?? String(Math.max(1, Math.floor(cpus().length / slots.length)));
  const spawn = (url: string, count: number): LocalWorker[] => startLocalWorkers({
    url, count, first: workers.length, secretEnv: config.cluster.secretEnv, secret,
    ca: config.cluster.tls ? (config.cluster.tls.ca ?? config.cluster.tls.cert) : undefined,
    // Local workers serve their ring ports with the coordinator's certificate (same host).
    tls: config.cluster.tls ? { cert: config.cluster.tls.cert, key: config.cluster.tls.key } : undefined,
    logDir: join(run.train.checkpointDir, 'logs'), env: { LP_NUM_THREADS: threads },
  });
  const coordinator = new Coordinator({
    config: run, secret, log, resume: opts.resume,
    // Local workers: any free port on the configured host.
    listen: { port: 0 },
    hooks: {
      onStep: (r) => {
        if (!bar) return;
        if (!started) {
          bar.start(r.totalSteps, r.step - 1, { loss: '-', eps: '-', workers: r.workers });
          started = true;
        }
        bar.update(r.step, { loss: r.loss.toFixed(4), eps: Math.round(r.eventsPerSecond), workers: r.workers });
      },
      onEvaluation: (e, step) => log.info({ step, hr10: e.hr10, ndcg10: e.ndcg10 }, 'validation'),
      // A local worker that dies is replaced (up to cluster.localRestarts times); the run
      // goes on re-sharded meanwhile, and the newcomer is synced from a live replica.
      onWorkerLost: (info) => {
        if (finishing || !workers.some((w) => w.pid === info.pid)) return;
        if (restarts >= config.cluster.localRestarts) {
          log.warn({ id: info.id, restarts }, 'not replacing the lost worker: cluster.localRestarts reached');
          return;
        }
        restarts++;
        const [replacement] = spawn(url, 1);
        workers.push(replacement);
        log.warn({ lost: info.id, pid: info.pid, reason: info.reason, replacement: replacement.pid }, 'started a replacement local worker');
      },
    },
  });
  const url = await coordinator.start();
  workers = spawn(url, slots.length);
  log.info({ url, workers: workers.map((w) => w.pid), steps: coordinator.totalSteps, checkpointDir: run.train.checkpointDir }, 'pretraining on local workers');
  try {
    const summary = await coordinator.run();
    bar?.stop();
    if (!opts.quiet) process.stdout.write(`${summaryLines(summary, Boolean(opts.baseline)).join('\n')}\n`);
    return summary;
  } finally {
    finishing = true;
    bar?.stop();
    await coordinator.close();
    await stopLocalWorkers(workers);
  }
}

export interface CoordinatorCommandOptions extends PretrainOptions {
  host?: string;
  port?: number;
}

/** `panther coordinator`: waits for the configured workers to join from anywhere, then trains. */
export async function coordinatorCommand(config: ClusterConfig, opts: CoordinatorCommandOptions): Promise<ClusterSummary> {
  const log = createLogger('coordinator');
  const slots = workerSlots(config.cluster);
  if (slots.length === 0) throw new PantherError('E_CONFIG', 'set cluster.workers to the number of workers (or a list) the coordinator should wait for', 'cluster.workers');
  const run = withRunOptions(config, opts);
  const coordinator = new Coordinator({
    config: run, secret: readSecret(config.cluster.secretEnv), log, resume: opts.resume,
    listen: { host: opts.host, port: opts.port },
    hooks: { onStep: (r) => { if (r.step % 10 === 0 || r.step === r.totalSteps) log.info({ step: r.step, loss: r.loss, workers: r.workers, eventsPerSecond: Math.round(r.eventsPerSecond) }, 'step'); } },
  });
  const url = await coordinator.start();
  process.stderr.write(`coordinator at ${url}: start ${slots.length} workers with  ${config.cluster.secretEnv}=... panther worker --coordinator ${url}\n`);
  try {
    const summary = await coordinator.run();
    if (!opts.quiet) process.stdout.write(`${summaryLines(summary, Boolean(opts.baseline)).join('\n')}\n`);
    return summary;
  } finally {
    await coordinator.close();
  }
}

export interface WorkerCommandOptions {
  coordinator: string;
  name?: string;
  secretEnv?: string;
  /** PEM file of the certificate authority (or self-signed certificate) to trust for wss. */
  ca?: string;
  listen?: string;
  advertise?: string;
  /** Certificate and key (PEM files) of the ring port, for clusters with TLS ring links. */
  tlsCert?: string;
  tlsKey?: string;
}

/** `panther worker`: joins a coordinator and trains until it is told to stop. */
export async function workerCommand(opts: WorkerCommandOptions): Promise<void> {
  const log = createLogger(`worker${opts.name ? ` ${opts.name}` : ''}`);
  let ca: Buffer | undefined;
  if (opts.ca) {
    try {
      ca = readFileSync(opts.ca);
    } catch (err) {
      throw new PantherError('E_CONFIG', `cannot read the CA file (${(err as Error).message})`, opts.ca);
    }
  }
  await runWorker({
    url: opts.coordinator, secret: readSecret(opts.secretEnv ?? 'PANTHER_CLUSTER_SECRET'), name: opts.name, ca, log,
    listenHost: opts.listen, advertiseHost: opts.advertise, fault: process.env.PANTHER_TEST_FAULT,
    tls: opts.tlsCert || opts.tlsKey ? ringCertificate(opts.tlsCert, opts.tlsKey) : undefined,
  });
}

/** The ring port's certificate and key: both files, readable. */
function ringCertificate(cert: string | undefined, key: string | undefined): { cert: string; key: string } {
  if (!cert || !key) throw new PantherError('E_CONFIG', '--tls-cert and --tls-key go together', cert ? '--tls-key' : '--tls-cert');
  for (const f of [cert, key]) {
    try {
      readFileSync(f);
    } catch (err) {
      throw new PantherError('E_CONFIG', `cannot read the ring port's certificate or key (${(err as Error).message})`, f);
    }
  }
  return { cert, key };
}

/** `panther bench allreduce`: bus bandwidth next to raw WebSocket throughput, and steps/s for 1, 2, 4 workers. */
export async function benchAllreduce(config: ClusterConfig, opts: BenchOptions): Promise<void> {
  const result = await runBenchAllreduce(config, opts);
  process.stdout.write(`${formatBench(result)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
