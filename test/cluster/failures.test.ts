import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useGpu } from '../support/gpu.js';
import { addWorker, events, expectSameLosses, expectSameParameters, runCluster, stepLines, tinyConfig, trainReference, type StepLine } from './support.js';
import { tempDir } from '../support/tmp.js';

/**
 * Real failures of real processes: a worker killed with SIGKILL mid-step, a replacement
 * that joins and receives the state of a live replica, a worker stopped (SIGSTOP) past the
 * heartbeat timeout, and a worker that sends a ring chunk of the wrong size. Each time the
 * step in flight is discarded and redone, re-sharded, on the workers that remain; every step
 * is applied exactly once, and because the global batches are the same the result still
 * equals the single-process run.
 */
describe('recovery from lost workers', () => {
  const gpu = useGpu();
  const root = tempDir('panther-fail');
  const refConfig = tinyConfig(root, 'single');
  let ref: StepLine[];

  beforeAll(async () => {
    ref = await trainReference(gpu(), refConfig);
  }, 300_000);

  const expectEveryStepOnce = (dir: string) => {
    const lines = stepLines(dir);
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const commits = events(dir).filter((e) => e.kind === 'commit');
    expect(commits.map((e) => e.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    return { lines, commits };
  };

  it('kill -9 of one of 3 workers, a replacement joining, a stalled worker: same model as one process', async () => {
    const config = tinyConfig(root, 'killed', { cluster: { heartbeat: { intervalMs: 200, timeoutMs: 4000 } } });
    let stopped = 0;
    let killed = 0;
    const at: Record<string, number> = {};
    const run = await runCluster(config, 3, {
      hooks: (ctx) => ({
        onStepStart: async ({ step, attempt, members }) => {
          if (step === 6 && attempt === 1) {
            // Mid-run, with the step's messages about to go out: the worker of rank 1 dies.
            killed = members[1].pid;
            process.kill(killed, 'SIGKILL');
            at.killed = Date.now();
          }
          if (step === 10 && attempt === 1) {
            addWorker(ctx, 3);
            // Hold step 10 until the replacement has joined (it is admitted at the next step).
            while (ctx.coordinator.pool.live().length < 3) await new Promise((r) => setTimeout(r, 100));
          }
          if (step === 15 && attempt === 1) {
            // A worker that stops answering (the process is frozen, its sockets stay open).
            stopped = members[0].pid;
            process.kill(stopped, 'SIGSTOP');
            at.stopped = Date.now();
          }
        },
        // Once evicted, the stalled worker may run again: it finds its coordinator gone and exits.
        onWorkerLost: ({ pid }) => { if (pid === stopped) process.kill(stopped, 'SIGCONT'); },
      }),
    });
    try {
      expect(run.summary.steps).toBe(20);
      const { lines, commits } = expectEveryStepOnce(config.train.checkpointDir);
      const ev = events(config.train.checkpointDir);
      const lost = ev.filter((e) => e.kind === 'lost');
      expect(lost.map((e) => e.pid)).toEqual([killed, stopped]);
      // Seen first either by the coordinator (its connection closed) or by a ring neighbour (reported).
      expect(String(lost[0].reason)).toMatch(/connection closed \(1006\)|neighbour w\d disconnected \(1006\)/);
      expect(String(lost[1].reason)).toMatch(/no heartbeat for \d+ ms/);
      // The two steps in flight were discarded and redone; nothing else was.
      expect(ev.filter((e) => e.kind === 'abort').map((e) => [e.step, e.attempt])).toEqual([[6, 1], [15, 1]]);
      expect(commits.find((e) => e.step === 6)).toMatchObject({ attempt: 2, workers: 2 });
      expect(commits.find((e) => e.step === 12)).toMatchObject({ attempt: 1, workers: 3 });
      expect(commits.find((e) => e.step === 15)).toMatchObject({ attempt: 2, workers: 2 });
      expect(ev.filter((e) => e.kind === 'join')).toHaveLength(4);
      expect(ev.filter((e) => e.kind === 'state-sync')).toHaveLength(1);
      expect(lines.map((l) => l.workers)).toEqual([3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2]);
      expect(run.summary.lost).toHaveLength(2);
      expect(run.summary.discardedAttempts).toBe(2);
      // Replicas stayed identical (checksums at 10 and 20) and equal to the single-process run.
      expect(ev.filter((e) => e.kind === 'checksum').map((e) => e.step)).toEqual([10, 20]);
      expectSameLosses(ref, lines);
      expectSameParameters(refConfig.train.checkpointDir, config.train.checkpointDir);
      const stalled = run.workers.find((w) => w.pid === stopped)!;
      expect(await stalled.exited).toBe(1);
      const commitOf = (step: number) => commits.find((e) => e.step === step)!.time as number;
      process.stderr.write([
        `kill -9: detected after ${(lost[0].time as number) - at.killed} ms, step 6 redone and applied ${commitOf(6) - at.killed} ms after the kill`,
        `SIGSTOP: detected after ${(lost[1].time as number) - at.stopped} ms (timeout 4000), step 15 applied ${commitOf(15) - at.stopped} ms after the stop`,
      ].join('\n') + '\n');
    } finally {
      try {
        if (stopped) process.kill(stopped, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }, 300_000);

  it('a worker sending a ring chunk of the wrong size is rejected and disconnected; the others train on', async () => {
    const config = tinyConfig(root, 'rogue');
    const run = await runCluster(config, 3, { faults: { 2: 'bad-chunk@8' } });
    expect(run.summary.steps).toBe(20);
    const { lines } = expectEveryStepOnce(config.train.checkpointDir);
    const ev = events(config.train.checkpointDir);
    const rogue = run.workers[2];
    const lost = ev.filter((e) => e.kind === 'lost');
    expect(lost).toHaveLength(1);
    expect(lost[0].pid).toBe(rogue.pid);
    expect(String(lost[0].reason)).toMatch(/ring neighbour w\d reports: ring data 8\/1\/1\/0 has 12 bytes, expected \d+/);
    expect(ev.filter((e) => e.kind === 'abort').map((e) => [e.step, e.attempt])).toEqual([[8, 1]]);
    expect(lines.slice(7).every((l) => l.workers === 2)).toBe(true);
    // The receiver logged why it rejected the frame.
    const logs = run.workers.filter((w) => w !== rogue).map((w) => readFileSync(w.log!, 'utf8')).join('\n');
    expect(logs).toMatch(/"reason":"ring data 8\/1\/1\/0 has 12 bytes, expected \d+".*"msg":"rejected frame; disconnecting the sender"/);
    expect(await rogue.exited).not.toBe(0);
    expectSameLosses(ref, lines);
    expectSameParameters(refConfig.train.checkpointDir, config.train.checkpointDir);
  }, 300_000);

  it('replicas that stop matching stop the run with a clear error', async () => {
    const config = tinyConfig(root, 'diverged', { cluster: { checksumEvery: 5 } });
    const err = await runCluster(config, 2, { faults: { 1: 'diverge@3' } }).catch((e) => e);
    expect(err.code).toBe('E_DIVERGED');
    expect(err.message).toMatch(/replicas diverged at step 5 \(parameter checksums w\d: [0-9a-f]{12}; w\d: [0-9a-f]{12}\); stopping the run/);
    // Steps 1-4 were identical (the checksum of step 5 is the first after the fault).
    expect(stepLines(config.train.checkpointDir).map((l) => l.step)).toEqual([1, 2, 3, 4]);
  }, 300_000);

  it('a worker whose configured adapter does not exist reports why and is not admitted', async () => {
    const config = tinyConfig(root, 'adapters', { cluster: { workers: [{ adapter: 'llvmpipe' }, { adapter: 'no-such-gpu' }], joinTimeoutMs: 15_000 } });
    const err = await runCluster(config, 2).catch((e) => e);
    expect(err.message).toMatch(/1 of 2 workers joined within 15000 ms: start the missing workers with 'panther worker --coordinator ws:\/\/127\.0\.0\.1:\d+'/);
    const refused = (err.logs as Record<string, unknown>[]).find((l) => l.msg === 'worker did not get ready');
    expect(String(refused?.err)).toMatch(/set-up failed: E_NO_ADAPTER: .*no-such-gpu/);
  }, 300_000);

  it('a dropped ring connection between two live workers: one is evicted, the step redone, same model', async () => {
    const config = tinyConfig(root, 'dropped');
    const run = await runCluster(config, 3, { faults: { 0: 'drop-link@7' } });
    const { lines } = expectEveryStepOnce(config.train.checkpointDir);
    const ev = events(config.train.checkpointDir);
    const lost = ev.filter((e) => e.kind === 'lost');
    expect(lost).toHaveLength(1);
    expect(String(lost[0].reason)).toMatch(/ring neighbour w\d reports: (left|right) neighbour w\d disconnected/);
    expect(ev.filter((e) => e.kind === 'abort').map((e) => [e.step, e.attempt])).toEqual([[7, 1]]);
    expect(run.summary.workers).toBe(2);
    expectSameLosses(ref, lines);
    expectSameParameters(refConfig.train.checkpointDir, config.train.checkpointDir);
  }, 300_000);
});
