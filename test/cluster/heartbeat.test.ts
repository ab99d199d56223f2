import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startLocalWorkers, stopLocalWorkers, type LocalWorker } from '../../src/cluster/local.js';
import { tempDir } from '../support/tmp.js';
import { SECRET, SECRET_ENV, setupPool } from './support.js';

describe('coordinator heartbeats', () => {
  const root = tempDir('panther-beat');

  it('a worker stays while the coordinator beats, and leaves with the reason when it goes silent', async () => {
    const live = setupPool({ beatMs: 200, workerTimeoutMs: 1500 });
    const silent = setupPool({ beatMs: 600_000, workerTimeoutMs: 1500 });
    const workers: LocalWorker[] = [];
    try {
      const [kept] = startLocalWorkers({ url: await live.start(), count: 1, secretEnv: SECRET_ENV, secret: SECRET, logDir: join(root, 'live') });
      const [left] = startLocalWorkers({ url: await silent.start(), count: 1, first: 1, secretEnv: SECRET_ENV, secret: SECRET, logDir: join(root, 'silent') });
      workers.push(kept, left);
      const code = await Promise.race([left.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 60_000))]);
      expect(code).toBe(1);
      expect(readFileSync(left.log!, 'utf8')).toMatch(/E_CLUSTER: ws:\/\/127\.0\.0\.1:\d+: the coordinator has been silent for \d+ ms \(heartbeat timeout 1500 ms\)/);
      // The other worker has had as long and is still a member.
      expect(await Promise.race([kept.exited, new Promise<string>((r) => setTimeout(() => r('running'), 2000))])).toBe('running');
      expect(live.live()).toHaveLength(1);
    } finally {
      await live.shutdown('test over');
      await silent.shutdown('test over');
      await stopLocalWorkers(workers);
    }
  }, 120_000);
});
