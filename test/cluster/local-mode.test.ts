import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { events, stepLines } from './support.js';
import { tempDir } from '../support/tmp.js';

interface Done {
  code: number | string;
  stdout: string;
  stderr: string;
}

function cli(config: string, args: string[], o: { killWhen?: () => boolean } = {}): Promise<Done> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/panther.js', '--config', config, ...args], { env: { ...process.env, PANTHER_CLUSTER_SECRET: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let watch: NodeJS.Timeout | null = null;
    if (o.killWhen) {
      watch = setInterval(() => {
        if (o.killWhen!()) {
          clearInterval(watch!);
          child.kill('SIGKILL');
        }
      }, 25);
    }
    child.on('exit', (code, signal) => {
      if (watch) clearInterval(watch);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    });
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * `panther pretrain` with `cluster.workers: 2`: the CLI process coordinates and starts two
 * local worker processes; a coordinator killed with SIGKILL leaves no workers behind, and
 * `--resume` continues from the last checkpoint to the same bytes as an uninterrupted run.
 */
describe('panther pretrain with cluster.workers: 2', () => {
  const dir = tempDir('panther-local');
  const config = join(dir, 'cluster.yaml');
  writeFileSync(config, [
    'data:',
    '  source: { kind: synthetic, users: 120, days: 30 }',
    '  maxLength: 16',
    `  cacheDir: ${join(dir, 'cache')}`,
    'model: { dModel: 16, layers: 1, ffnMult: 1, sprm: { dilations: [1, 2], prototypes: 4 } }',
    'train: { batchSize: 16, maxSteps: 40, evalEvery: 20, evalUsers: 20, checkpointEvery: 5 }',
    'cluster: { workers: 2 }',
    '',
  ].join('\n'));

  it('trains on two local worker processes, and resumes after the coordinator is killed to the same bytes', async () => {
    const whole = join(dir, 'whole');
    const a = await cli(config, ['pretrain', '--checkpoint-dir', whole]);
    expect(a.code, a.stderr.slice(-3000)).toBe(0);
    expect(a.stdout).toMatch(/trained\s+40 steps/);
    expect(a.stdout).toMatch(/workers\s+2 at the end, 2 joined, 0 lost/);
    expect(a.stdout).toMatch(/test\s+HR@1 [\d.]+%\s+HR@10 [\d.]+%\s+NDCG@10/);
    expect(existsSync(join(whole, 'best.safetensors'))).toBe(true);
    expect(stepLines(whole).every((l) => l.workers === 2)).toBe(true);

    const broken = join(dir, 'broken');
    const b = await cli(config, ['pretrain', '--checkpoint-dir', broken], {
      // Mid-run, after the checkpoint of step 10.
      killWhen: () => existsSync(join(broken, 'metrics.jsonl')) && stepLines(broken).length >= 12,
    });
    expect(b.code).toBe('SIGKILL');
    const killedAt = stepLines(broken).length;
    expect(killedAt).toBeLessThan(40);
    // Its workers notice the coordinator is gone and exit.
    const pids = events(broken).filter((e) => e.kind === 'join').map((e) => e.pid as number);
    expect(pids).toHaveLength(2);
    for (let i = 0; i < 300 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(pids.filter(alive)).toEqual([]);

    const c = await cli(config, ['pretrain', '--checkpoint-dir', broken, '--resume']);
    expect(c.code, c.stderr.slice(-3000)).toBe(0);
    // It went on from the last checkpoint written before the kill (every 5 steps).
    const resumedAt = events(broken).find((e) => e.kind === 'resume')!.step as number;
    expect(resumedAt % 5).toBe(0);
    expect(resumedAt).toBeGreaterThanOrEqual(Math.max(10, killedAt - 5));
    expect(resumedAt).toBeLessThanOrEqual(killedAt);
    expect(c.stdout).toMatch(/trained\s+40 steps/);

    const x = readCheckpoint(join(whole, 'last.safetensors'));
    const y = readCheckpoint(join(broken, 'last.safetensors'));
    expect(y.state).toEqual(x.state);
    expect([...y.tensors.keys()].sort()).toEqual([...x.tensors.keys()].sort());
    for (const [name, t] of x.tensors) expect(Buffer.from(y.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    const metrics = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').split('\n').map((l) => l.replace(/"eventsPerSecond":\d+,?/, ''));
    expect(metrics(broken)).toEqual(metrics(whole));
  }, 600_000);

  it('replaces a local worker killed with SIGKILL; the run ends with two workers and every step applied once', async () => {
    const runDir = join(dir, 'replaced');
    let killed = 0;
    // Long enough for the replacement to start, join and be synced before the end.
    const longer = join(dir, 'longer.yaml');
    writeFileSync(longer, readFileSync(config, 'utf8').replace('maxSteps: 40', 'maxSteps: 200, epochs: 20'));
    const r = await cli(longer, ['pretrain', '--checkpoint-dir', runDir], {
      killWhen: () => {
        if (killed || !existsSync(join(runDir, 'metrics.jsonl')) || stepLines(runDir).length < 5) return false;
        killed = events(runDir).find((e) => e.kind === 'join')!.pid as number;
        process.kill(killed, 'SIGKILL');
        return false;
      },
    });
    expect(killed).toBeGreaterThan(0);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(/trained\s+200 steps/);
    expect(r.stdout).toMatch(/workers\s+2 at the end, 3 joined, 1 lost/);
    expect(r.stderr).toMatch(/started a replacement local worker/);
    expect(stepLines(runDir).map((l) => l.step)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(stepLines(runDir).at(-1)!.workers).toBe(2);
  }, 600_000);

  it('panther coordinator and panther worker: a fleet started by hand', async () => {
    const runDir = join(dir, 'fleet');
    const env = { ...process.env, PANTHER_CLUSTER_SECRET: 'fleet-secret-0123456789', LP_NUM_THREADS: '1' };
    const coordinator = spawn(process.execPath, ['bin/panther.js', '--config', config, 'coordinator', '--port', '0', '--max-steps', '8', '--checkpoint-dir', runDir], { env });
    let stdout = '';
    let stderr = '';
    coordinator.stdout.on('data', (d) => (stdout += d));
    const url = await new Promise<string>((resolve) => coordinator.stderr.on('data', (d) => {
      stderr += d;
      const m = /coordinator at (ws:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) resolve(m[1]);
    }));
    const workers = [0, 1].map((i) => spawn(process.execPath, ['bin/panther.js', 'worker', '--coordinator', url, '--name', `hand-${i}`], { env, stdio: 'ignore' }));
    const exits = workers.map((w) => new Promise((r) => w.on('exit', (code) => r(code))));
    const code = await new Promise((r) => coordinator.on('exit', (c) => r(c)));
    expect(code, stderr.slice(-2000)).toBe(0);
    expect(stdout).toMatch(/trained\s+8 steps/);
    expect(stdout).toMatch(/workers\s+2 at the end, 2 joined, 0 lost/);
    expect(await Promise.all(exits)).toEqual([0, 0]);
    expect(stepLines(runDir)).toHaveLength(8);
  }, 300_000);
});
