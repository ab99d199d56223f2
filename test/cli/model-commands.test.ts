import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);

describe('pretrain, eval, inspect and tokenize commands', () => {
  const dir = tempDir('panther-cli');
  const config = join(dir, 'cluster.yaml');
  const cli = (...args: string[]) => run('node', ['bin/panther.js', '--config', config, ...args], { maxBuffer: 1 << 24 });

  beforeAll(() => {
    writeFileSync(config, [
      'data:',
      '  source: { kind: synthetic, users: 80, days: 20 }',
      '  maxLength: 16',
      `  cacheDir: ${join(dir, 'cache')}`,
      'model: { dModel: 16, layers: 1, ffnMult: 1, sprm: { dilations: [1, 2], prototypes: 4 } }',
      `train: { batchSize: 8, maxSteps: 6, evalEvery: 3, checkpointDir: ${join(dir, 'run')} }`,
      '',
    ].join('\n'));
  });

  it('pretrain prints the final metrics and writes the run', async () => {
    const { stdout } = await cli('pretrain');
    expect(stdout).toMatch(/trained\s+6 steps/);
    expect(stdout).toMatch(/test\s+HR@1 [\d.]+%\s+HR@10 [\d.]+%\s+NDCG@10/);
    expect(existsSync(join(dir, 'run', 'best.safetensors'))).toBe(true);
    const base = await cli('pretrain', '--baseline', '--checkpoint-dir', join(dir, 'base'));
    expect(base.stdout).toMatch(/transformer baseline/);
  });

  it('eval compares a model with a baseline on the full vocabulary', async () => {
    const { stdout } = await cli('eval', '--checkpoint', join(dir, 'run', 'best.safetensors'), '--baseline-checkpoint', join(dir, 'base', 'best.safetensors'));
    expect(stdout).toMatch(/ranked against all \d+ tokens/);
    expect(stdout).toMatch(/PANTHER\s+[\d.]+\s+[\d.]+/);
    expect(stdout).toMatch(/transformer\s+[\d.]+/);
    expect(stdout).toMatch(/gain/);
    expect(stdout).toMatch(/95% interval\s+[-+][\d.]+%\.\.[-+][\d.]+%/);
    expect(stdout).toMatch(/P\(PANTHER ahead\)\s+[01]\.\d\d/);
  });

  it('inspect shows prototype weights and named next events', async () => {
    const { stdout } = await cli('inspect', '--user', 'u03', '--checkpoint', join(dir, 'run', 'best.safetensors'), '--top', '3');
    expect(stdout).toMatch(/prototypes, block 0: #\d+ [\d.]+%/);
    expect(stdout.split('likeliest next events:')[1].trim().split('\n')).toHaveLength(3);
    expect(stdout).toMatch(/%\s+\w+ \/ /);
  });

  it('tokenize --explain shows a history as token names', async () => {
    const { stdout } = await cli('tokenize', '--explain', '--user', 'u03', '--limit', '5');
    expect(stdout).toMatch(/user u03: \d+ events/);
    expect(stdout.trim().split('\n').filter((l) => l.includes('->'))).toHaveLength(5);
  });

  it('names an unknown user and a missing checkpoint clearly', async () => {
    const e1 = await cli('inspect', '--user', 'nobody', '--checkpoint', join(dir, 'run', 'best.safetensors')).catch((e) => e);
    expect(e1.stderr).toMatch(/user 'nobody' is not in the data/);
    const e2 = await cli('eval', '--checkpoint', join(dir, 'missing.safetensors')).catch((e) => e);
    expect(e2.stderr).toMatch(/no such checkpoint/);
  });

  it('experiment trains both, compares them on the test split, and with --reuse keeps finished runs of the same model', async () => {
    const out = join(dir, 'exp');
    const first = await cli('experiment', '--out', out);
    expect(first.stdout).toMatch(/PANTHER\s+HR@1 [\d.]+%.*; 6 steps in \d+ s/);
    expect(first.stdout).toMatch(/transformer HR@1 [\d.]+%.*; 6 steps in \d+ s/);
    const report = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8'));
    expect(report.panther.steps).toBe(6);
    expect(report.baseline.steps).toBe(6);
    expect(report.panther.parameters).toBeGreaterThan(report.baseline.parameters);
    // The side-by-side ranking of the evaluated checkpoints gives the runs' own test metrics.
    for (const [side, run2] of [['model', 'panther'], ['baseline', 'baseline']] as const) {
      const summary = JSON.parse(readFileSync(join(out, run2, 'summary.json'), 'utf8'));
      for (const m of ['hr1', 'hr10', 'ndcg10', 'hr50', 'count']) expect(report.comparison[side][m]).toBeCloseTo(summary.test[m], 12);
    }
    expect(report.comparison.intervals.map((g: { metric: string }) => g.metric)).toEqual(['hr1', 'hr10', 'ndcg10', 'hr50']);

    const again = await cli('experiment', '--out', out, '--reuse');
    expect(again.stderr.match(/reusing the finished run/g)).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')).comparison).toEqual(report.comparison);
    // Runs moved to another folder are found where they are now, not where they were trained.
    const moved = join(dir, 'moved');
    renameSync(out, moved);
    const there = await cli('experiment', '--out', moved, '--reuse');
    expect(there.stderr.match(/reusing the finished run/g)).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(moved, 'experiment.json'), 'utf8')).comparison).toEqual(report.comparison);
    renameSync(moved, out);

    // An ablation of the SPRM trains PANTHER again; the baseline (SPRM off) is the same model.
    const ablation = await cli('--set', 'model.sprm.temperature=0.3', 'experiment', '--out', out, '--reuse');
    expect(ablation.stderr.match(/reusing the finished run in \S+/g)).toEqual([`reusing the finished run in ${join(out, 'baseline')}`]);
    expect(JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8')).comparison.baseline).toEqual(report.comparison.baseline);

    // Another model in the same folder is trained again, not taken for the old one.
    const wider = join(dir, 'wider.yaml');
    writeFileSync(wider, readFileSync(config, 'utf8').replace('dModel: 16', 'dModel: 24'));
    const other = await run('node', ['bin/panther.js', '--config', wider, 'experiment', '--out', out, '--reuse', '--max-steps', '4'], { maxBuffer: 1 << 24 });
    expect(other.stderr).not.toMatch(/reusing the finished run/);
    const widerReport = JSON.parse(readFileSync(join(out, 'experiment.json'), 'utf8'));
    expect(widerReport.panther.parameters).toBeGreaterThan(report.panther.parameters);
    // --max-steps: the same smaller budget for both.
    expect([widerReport.panther.steps, widerReport.baseline.steps]).toEqual([4, 4]);
  });
});
