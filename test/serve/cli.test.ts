import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { beforeAll, describe, expect, it } from 'vitest';
import { modelFromCheckpoint } from '../../src/cli/model-commands.js';
import { loadDataset } from '../../src/data/load.js';
import { timeWindowOf } from '../../src/data/split.js';
import { compareFraudModels } from '../../src/fraud/evaluate.js';
import { FraudModel } from '../../src/fraud/model.js';
import { tableFromDataset } from '../../src/fraud/table.js';
import { useGpu } from '../support/gpu.js';
import { FRAUD_RUN, tinyRun, type TinyRun } from '../jobs/fixture.js';

/** The commands as a person runs them, with no Redis configured: each starts a private one. */
describe('panther embed and serve without a configured Redis', () => {
  const gpu = useGpu();
  let run: TinyRun;
  let config: string;
  let modelFile: string;
  const env = { ...process.env };
  delete env.REDIS_URL;

  beforeAll(async () => {
    run = await tinyRun(gpu(), FRAUD_RUN);
    config = join(run.dir, 'cluster.yaml');
    writeFileSync(config, JSON.stringify({ data: run.dataConfig, model: run.model, jobs: { shardUsers: 30, batchUsers: 16 } }));
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    const r = await compareFraudModels(tableFromDataset(await loadDataset(run.dataConfig.source)), {
      window: timeWindowOf(FRAUD_RUN.split as never), dataName: 'synthetic', gbdt: { rounds: 10, maxDepth: 3 },
      prior: { model, data: run.data, mode: 'fresh', components: 2, checkpoint: run.checkpoint },
    });
    model.dispose();
    modelFile = join(run.dir, 'fraud-model.json');
    new FraudModel(r.models.withPrior!).save(modelFile);
  });

  it('embed runs the flow in-process on a private redis-server and reports the finished version', async () => {
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, ['bin/panther.js', '--config', config, 'embed', '--checkpoint', run.checkpoint], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
      c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      c.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/version 1: 80 users in 3 shard jobs/);
    expect(out.stdout).toMatch(/1 \*\s+current\s+3\/3\s+80\/80/);
    expect(out.stderr).toMatch(/started a private redis-server for this run/);
  });

  it('serve --checkpoint embeds into a private Redis, then answers scores until SIGTERM', async () => {
    const c = spawn(process.execPath, ['bin/panther.js', '--config', config, 'serve', '--port', '0', '--model', modelFile, '--checkpoint', run.checkpoint], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
    try {
      const address = await new Promise<string>((resolve, reject) => {
        createInterface({ input: c.stdout! }).on('line', (line) => {
          const m = /^listening on (\S+) \(embedding version 1/.exec(line);
          if (m) resolve(m[1]);
        });
        void exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
      });
      const res = await fetch(`${address}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: run.data.users[7], event: { amount: 20, item: 'm0001' } }) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { version: number; populationDefault: boolean; fraudProbability: number };
      expect(body).toMatchObject({ version: 1, populationDefault: false });
    } finally {
      c.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('names what is missing when serve has neither a model nor a Redis', async () => {
    const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, ['bin/panther.js', '--config', config, 'serve', '--model', modelFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      c.once('exit', (code) => resolve({ code, stderr }));
    });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/E_CONFIG: serve: no Redis configured and no --checkpoint/);
  });
});
