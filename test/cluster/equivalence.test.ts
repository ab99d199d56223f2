import { beforeAll, describe, expect, it } from 'vitest';
import { Trainer } from '../../src/train/trainer.js';
import { useGpu } from '../support/gpu.js';
import { events, expectSameLosses, expectSameParameters, runCluster, stepLines, tinyConfig, trainReference, type StepLine } from './support.js';
import { tempDir } from '../support/tmp.js';

/**
 * The key property of data parallelism: the same global batches and seed on 1, 2 or 4
 * worker processes train the same model as the single-process Trainer. Parameters after
 * 20 steps within 1e-5 relative (per tensor max|diff| / max|ref|), losses within 1e-5.
 * Measured on lavapipe: 0 for 1 worker (bit-identical), <= 4e-6 for 2 and 4 workers.
 */
describe('data-parallel pretraining on worker processes', () => {
  const gpu = useGpu();
  const root = tempDir('panther-dp');
  const refConfig = tinyConfig(root, 'single');
  let ref: StepLine[];

  beforeAll(async () => {
    ref = await trainReference(gpu(), refConfig);
    expect(ref).toHaveLength(20);
    // The contrastive term takes part in most steps (so the all-gather path is tested).
    expect(ref.filter((l) => l.contrastive !== null).length).toBeGreaterThan(10);
  }, 300_000);

  it.each([1, 2, 4])('%i workers train the same parameters and losses as one process', async (n) => {
    // Small buckets: several of them go into the ring while backward is still running.
    const config = tinyConfig(root, `workers-${n}`, { cluster: { bucketBytes: 4096 } });
    const run = await runCluster(config, n);
    expect(run.summary.steps).toBe(20);
    expect(run.summary.workers).toBe(n);
    expect(run.summary.discardedAttempts).toBe(0);
    const lines = stepLines(config.train.checkpointDir);
    expect(lines.every((l) => l.workers === n && l.attempts === 1)).toBe(true);
    expectSameLosses(ref, lines);
    const d = expectSameParameters(refConfig.train.checkpointDir, config.train.checkpointDir);
    // One worker sums nothing: it is the Trainer bit for bit.
    if (n === 1) expect(d.worst).toBe(0);
    // Replicas compared their checksums every 10 steps and at join.
    expect(events(config.train.checkpointDir).filter((e) => e.kind === 'checksum').map((e) => e.step)).toEqual([10, 20]);
    process.stderr.write(`${n} workers: worst parameter difference ${d.worst.toExponential(2)} (${d.name})\n`);
  }, 300_000);

  it('with in-batch negatives (the global batch\'s targets) and context-only window positions, 2 workers train as one process', async () => {
    const model = { head: { loss: 'in-batch', cosine: true, temperature: 0.1 } };
    const train = { windowContext: 4 };
    const single = tinyConfig(root, 'in-batch-single', { model, train });
    const reference = await trainReference(gpu(), single);
    const config = tinyConfig(root, 'in-batch-workers-2', { model, train });
    const run = await runCluster(config, 2);
    expect(run.summary.steps).toBe(20);
    expectSameLosses(reference, stepLines(config.train.checkpointDir));
    expectSameParameters(single.train.checkpointDir, config.train.checkpointDir);
    // The in-batch loss is not the full softmax's: the option reached both runs.
    expect(reference.map((l) => l.next)).not.toEqual(ref.map((l) => l.next));
  }, 300_000);
});
