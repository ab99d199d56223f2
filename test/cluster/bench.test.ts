import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { BenchResult } from '../../src/cluster/bench.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);

describe('panther bench allreduce', () => {
  it('prints bus bandwidth next to the raw WebSocket stream, and steps/s and events/s per worker count, as a table and JSON', async () => {
    const dir = tempDir('panther-bench');
    const config = join(dir, 'cluster.yaml');
    writeFileSync(config, [
      'data: { source: { kind: synthetic, users: 120, days: 30 }, maxLength: 16, cacheDir: ' + join(dir, 'cache') + ' }',
      'model: { dModel: 16, layers: 1, ffnMult: 1, sprm: { dilations: [1, 2], prototypes: 4 } }',
      'train: { batchSize: 16 }',
      '',
    ].join('\n'));
    const { stdout } = await run(process.execPath, ['bin/panther.js', '--config', config, 'bench', 'allreduce', '--mib', '0.5', '--bucket-mib', '0.25', '--reps', '2', '--train', '1,2', '--steps', '4'], { maxBuffer: 1 << 24 });
    expect(stdout).toMatch(/all-reduce of 0\.5 MiB in buckets of 0\.25 MiB on 4 local workers/);
    expect(stdout).toMatch(/bus bandwidth\s+[\d.]+ MB\/s/);
    expect(stdout).toMatch(/raw WebSocket stream\s+[\d.]+ MB\/s/);
    expect(stdout).toMatch(/workers\s+steps\/s\s+events\/s\n\s+1\s+[\d.]+\s+\d+\n\s+2\s+[\d.]+\s+\d+/);
    const r = JSON.parse(stdout.slice(stdout.indexOf('\n{') + 1)) as BenchResult;
    expect(r.allreduce.workers).toBe(4);
    expect(r.allreduce.bytes).toBe(512 * 1024);
    // nccl-tests: busbw = algbw * 2(N-1)/N, algbw = bytes / time.
    expect(r.allreduce.algBytesPerSecond).toBeCloseTo(r.allreduce.bytes / r.allreduce.medianSeconds, 3);
    expect(r.allreduce.busBytesPerSecond).toBeCloseTo((r.allreduce.algBytesPerSecond * 2 * 3) / 4, 3);
    expect(r.raw.bytesPerSecond).toBeGreaterThan(0);
    expect(r.busOverRaw).toBeCloseTo(r.allreduce.busBytesPerSecond / r.raw.bytesPerSecond, 6);
    expect(r.ringStreams.frames).toBe(r.raw.frames);
    expect(r.ringStreams.bytesPerSecond).toBeGreaterThan(0);
    expect(r.busOverRingStreams).toBeCloseTo(r.allreduce.busBytesPerSecond / r.ringStreams.bytesPerSecond, 6);
    expect(stdout).toMatch(/ring of 4 streams\s+[\d.]+ MB\/s per link/);
    expect(r.training.map((t) => [t.workers, t.steps])).toEqual([[1, 3], [2, 3]]);
    for (const t of r.training) expect(t.eventsPerSecond).toBeGreaterThan(t.stepsPerSecond);
    // A worker of 3 killed mid-run: its loss is detected, then the step is applied on the other two.
    expect(r.recovery!.workers).toBe(3);
    expect(r.recovery!.resumedMs).toBeGreaterThanOrEqual(r.recovery!.detectedMs);
    expect(stdout).toMatch(/kill -9 of 1 of 3 workers: detected after \d+ ms, its step applied on the others \d+ ms after the kill/);
  }, 300_000);
});
