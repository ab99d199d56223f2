import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Worker processes on this machine (`panther pretrain` with `cluster.workers: N`, tests and
 * benchmarks): each is `node --import tsx worker/main.ts --coordinator URL`, with the
 * secret in the environment variable the config names and its output in a log file.
 */

export interface LocalWorkerOptions {
  url: string;
  count: number;
  secretEnv: string;
  secret: string;
  /** PEM file to trust for wss. */
  ca?: string;
  /** Certificate and key files for the workers' ring ports (TLS ring links). */
  tls?: { cert: string; key: string };
  /** Where each worker's log goes (`worker-<i>.log`); default: inherited stderr. */
  logDir?: string;
  /** Extra environment (LP_NUM_THREADS, PANTHER_GPU_*). */
  env?: Record<string, string>;
  /** Name prefix (default `local`). */
  prefix?: string;
  /** Index of the first worker (names and log files), for replacements. */
  first?: number;
  /** Per worker index: a test fault to inject (see WorkerOptions.fault). */
  faults?: Record<number, string>;
}

export interface LocalWorker {
  name: string;
  process: ChildProcess;
  pid: number;
  log: string | null;
  /** Exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
}

const require = createRequire(import.meta.url);
const WORKER_MAIN = fileURLToPath(new URL('../../worker/main.ts', import.meta.url));

export function startLocalWorkers(o: LocalWorkerOptions): LocalWorker[] {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  if (o.logDir) mkdirSync(o.logDir, { recursive: true });
  const first = o.first ?? 0;
  return Array.from({ length: o.count }, (_, k) => {
    const i = first + k;
    const name = `${o.prefix ?? 'local'}-${i}`;
    const log = o.logDir ? join(o.logDir, `worker-${i}.log`) : null;
    const fd = log ? openSync(log, 'a') : null;
    const args = ['--import', tsx, WORKER_MAIN, '--coordinator', o.url, '--name', name, '--secret-env', o.secretEnv];
    if (o.ca) args.push('--ca', o.ca);
    if (o.tls) args.push('--tls-cert', o.tls.cert, '--tls-key', o.tls.key);
    const fault = o.faults?.[i];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...o.env, [o.secretEnv]: o.secret, ...(fault ? { PANTHER_TEST_FAULT: fault } : {}) },
      stdio: ['ignore', fd ?? 'inherit', fd ?? 'inherit'],
    });
    if (fd !== null) closeSync(fd);
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
    return { name, process: child, pid: child.pid ?? -1, log, exited };
  });
}

/** Waits for the workers to leave (they do once the coordinator shuts down); kills stragglers. */
export async function stopLocalWorkers(workers: readonly LocalWorker[], graceMs = 15_000): Promise<void> {
  await Promise.all(workers.map(async (w) => {
    if (w.process.exitCode !== null || w.process.signalCode !== null) return;
    const timer = setTimeout(() => w.process.kill('SIGKILL'), graceMs);
    await w.exited;
    clearTimeout(timer);
  }));
}
