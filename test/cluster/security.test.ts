import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startLocalWorkers, type LocalWorker } from '../../src/cluster/local.js';
import { events, runCluster, SECRET, SECRET_ENV, setupPool, stepLines, tinyConfig } from './support.js';
import { tempDir } from '../support/tmp.js';

/** Connects without the CA (or over plain ws) and reports how it failed. */
function tryConnect(url: string): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.on('error', (err) => resolve(err.message));
    ws.on('open', () => {
      ws.terminate();
      resolve('opened');
    });
  });
}

describe('cluster security', () => {
  const root = tempDir('panther-sec');

  // openssl (installed by the set-up) makes the self-signed certificate.
  it('trains over wss with a self-signed certificate; refuses plain ws, unknown CAs and a wrong secret', async () => {
    const cert = join(root, 'cert.pem');
    const key = join(root, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const config = tinyConfig(root, 'tls', { train: { maxSteps: 6 }, cluster: { tls: { cert, key } } });
    const probes: Record<string, string> = {};
    let intruder: LocalWorker | null = null;
    const run = await runCluster(config, 2, {
      ca: cert,
      hooks: (ctx) => ({
        onStepStart: async ({ step, attempt }) => {
          if (step !== 3 || attempt !== 1) return;
          expect(ctx.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
          probes.plain = await tryConnect(ctx.url.replace('wss:', 'ws:'));
          probes.untrusted = await tryConnect(ctx.url);
          // The ring ports between workers are TLS too.
          const ready = readFileSync(ctx.workers[0].log!, 'utf8').split('\n').filter((l) => l.includes('"msg":"ready"')).map((l) => JSON.parse(l) as { port: number });
          expect(ready).toHaveLength(1);
          probes.ringPlain = await tryConnect(`ws://127.0.0.1:${ready[0].port}`);
          probes.ringUntrusted = await tryConnect(`wss://127.0.0.1:${ready[0].port}`);
          // A worker with the wrong secret is refused and exits with the reason.
          [intruder] = startLocalWorkers({ url: ctx.url, count: 1, first: 9, secretEnv: SECRET_ENV, secret: 'not-the-cluster-secret-at-all', ca: cert, logDir: join(root, 'intruder') });
          expect(await intruder.exited).toBe(1);
        },
      }),
    });
    expect(run.summary.steps).toBe(6);
    expect(stepLines(config.train.checkpointDir)).toHaveLength(6);
    expect(events(config.train.checkpointDir).filter((e) => e.kind === 'join')).toHaveLength(2);
    expect(probes.plain).not.toBe('opened');
    expect(probes.untrusted).toMatch(/self[- ]signed certificate/);
    expect(probes.ringPlain).not.toBe('opened');
    expect(probes.ringUntrusted).toMatch(/self[- ]signed certificate/);
    expect(readFileSync(intruder!.log!, 'utf8')).toMatch(/E_AUTH: wss:\/\/127\.0\.0\.1:\d+: rejected by coordinator: authentication failed: the shared secret does not match/);
    expect(run.logs.some((l) => String(l.msg).startsWith('authentication failed'))).toBe(true);
  }, 300_000);

  it('a worker without a certificate for its ring port is told so by a cluster with TLS ring links', async () => {
    const pool = setupPool({ ringTls: true });
    try {
      const [w] = startLocalWorkers({ url: await pool.start(), count: 1, secretEnv: SECRET_ENV, secret: SECRET, logDir: join(root, 'certless') });
      expect(await w.exited).toBe(1);
      expect(readFileSync(w.log!, 'utf8')).toMatch(/E_CONFIG: worker: this cluster runs its ring links over TLS \(cluster\.tls is set\): start the worker with --tls-cert and --tls-key/);
    } finally {
      await pool.shutdown('test over');
    }
  }, 120_000);

  it('a worker without the secret in its environment says which variable to set', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'worker/main.ts', '--coordinator', 'ws://127.0.0.1:9', '--secret-env', 'PANTHER_UNSET_SECRET_VAR'], { encoding: 'utf8', env: { ...process.env, PANTHER_UNSET_SECRET_VAR: '' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/E_AUTH: env PANTHER_UNSET_SECRET_VAR: the shared cluster secret is not set: export PANTHER_UNSET_SECRET_VAR=/);
  }, 60_000);

  it('a worker given half of a ring certificate, or an unreadable one, says which', () => {
    const worker = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'worker/main.ts', '--coordinator', 'ws://127.0.0.1:9', ...args], { encoding: 'utf8', env: { ...process.env, PANTHER_CLUSTER_SECRET: SECRET } });
    const half = worker('--tls-cert', join(root, 'cert.pem'));
    expect(half.status).toBe(1);
    expect(half.stderr).toMatch(/E_CONFIG: --tls-key: --tls-cert and --tls-key go together/);
    const missing = worker('--tls-cert', join(root, 'nope.pem'), '--tls-key', join(root, 'nope-key.pem'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/E_CONFIG: .*nope\.pem: cannot read the ring port's certificate or key/);
  }, 60_000);
});
