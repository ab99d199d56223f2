import { describe, expect, it } from 'vitest';
import { parseClusterConfig, loadClusterConfig } from '../../src/config/load.js';
import { gpuOptionsFrom } from '../../src/config/gpu.js';

describe('cluster.yaml', () => {
  it('fills defaults from the schema', () => {
    const c = parseClusterConfig('');
    expect(c.gpu.backend).toBe('auto');
    expect(c.gpu.matmul).toBe('auto');
    expect(c.redis.urlEnv).toBe('REDIS_URL');
  });

  it('loads the repository cluster.yaml', () => {
    expect(loadClusterConfig('cluster.yaml').gpu.backend).toBe('auto');
  });

  it('names the file, line and field path of a bad value', () => {
    const text = 'gpu:\n  backend: vulkan\n  matmul: fastest\n';
    expect(() => parseClusterConfig(text, 'my.yaml')).toThrowError(/my\.yaml:3: gpu\.matmul: /);
  });

  it('rejects unknown keys (typos) with their path', () => {
    expect(() => parseClusterConfig('gpu:\n  backnd: vulkan\n', 'c.yaml')).toThrowError(/c\.yaml:\d+: gpu: .*backnd/);
  });

  it('rejects an SPRM with neither convolutions nor prototypes, naming the section', () => {
    const text = 'model:\n  sprm:\n    dilations: []\n    prototypes: 0\n';
    expect(() => parseClusterConfig(text, 'c.yaml')).toThrowError(/c\.yaml:\d+: model\.sprm: .*convolutions .* or prototypes/);
    expect(() => parseClusterConfig('model:\n  sprm: { enabled: false, dilations: [], prototypes: 0 }\n', 'c.yaml')).not.toThrow();
    expect(() => parseClusterConfig('model:\n  sprm: { dilations: [] }\n', 'c.yaml')).not.toThrow();
  });

  it('reports YAML syntax errors with a line', () => {
    expect(() => parseClusterConfig('gpu:\n  backend: [vulkan\n', 'c.yaml')).toThrowError(/c\.yaml:\d+: invalid YAML/);
  });

  it('lets the environment override the adapter choice', () => {
    const c = parseClusterConfig('gpu:\n  backend: vulkan\n  matmul: tiled\n');
    const o = gpuOptionsFrom(c.gpu, { PANTHER_GPU_ADAPTER: 'llvmpipe' });
    expect(o).toMatchObject({ backend: 'vulkan', adapter: 'llvmpipe', tunables: { matmul: 'tiled' } });
  });
});

describe('experiment configurations', () => {
  it('all validate against the schema', async () => {
    const { readdirSync } = await import('node:fs');
    const files = readdirSync('scripts/experiments').filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const f of files) expect(() => loadClusterConfig(`scripts/experiments/${f}`), f).not.toThrow();
  });
});
