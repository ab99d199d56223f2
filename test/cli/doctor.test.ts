import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRedis, type LocalRedis } from '../../src/redis/local-server.js';

const run = promisify(execFile);

describe('panther doctor', () => {
  let redis: LocalRedis;
  beforeAll(async () => {
    redis = await startLocalRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('reports the adapter, its limits and a reachable Redis as JSON', async () => {
    const { stdout } = await run('node', ['bin/panther.js', 'doctor', '--json'], { env: { ...process.env, REDIS_URL: redis.url } });
    const report = JSON.parse(stdout);
    expect(report.adapter.device.length).toBeGreaterThan(0);
    expect(typeof report.adapter.isFallbackAdapter).toBe('boolean');
    expect(report.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.features.length).toBeGreaterThan(0);
    expect(report.redis).toMatchObject({ url: redis.url, reachable: true });
  });

  it('says Redis is not reachable when nothing listens there', async () => {
    await redis.stop();
    const { stdout } = await run('node', ['bin/panther.js', 'doctor'], { env: { ...process.env, REDIS_URL: redis.url } });
    expect(stdout).toMatch(/fallback\s+(yes|no)/);
    expect(stdout).toMatch(/redis\s+not reachable/);
  });

  it('exits with a clear error for a bad cluster.yaml', async () => {
    const err = await run('node', ['bin/panther.js', '--config', 'test/cli/fixtures/bad-cluster.yaml', 'doctor']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/E_CONFIG.*bad-cluster\.yaml:2: gpu\.backend/s);
  });

  it('takes --set overrides of the configuration and names a bad one', async () => {
    const { stdout } = await run('node', ['bin/panther.js', '--set', 'redis.urlEnv=PANTHER_TEST_REDIS', 'doctor', '--json'], {
      env: { ...process.env, PANTHER_TEST_REDIS: 'redis://127.0.0.1:1' },
    });
    expect(JSON.parse(stdout).redis).toMatchObject({ url: 'redis://127.0.0.1:1', reachable: false });
    const err = await run('node', ['bin/panther.js', '--set', 'gpu.backend=metal3', 'doctor']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/E_CONFIG.*--set gpu\.backend=metal3: gpu\.backend/s);
  });
});
