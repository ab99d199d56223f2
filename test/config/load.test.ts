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

  it('applies command-line overrides (YAML values at dotted paths) over the file and the defaults', () => {
    const text = 'model:\n  dModel: 32\n  sprm: { dilations: [1, 2, 4], prototypes: 32 }\n';
    const c = parseClusterConfig(text, 'c.yaml', ['model.sprm.prototypes=0', 'model.head={ cosine: true }', 'train.lr=2e-3', 'data.maxLength=20']);
    expect(c.model.sprm).toMatchObject({ dilations: [1, 2, 4], prototypes: 0 });
    expect(c.model.head).toMatchObject({ cosine: true, loss: 'full' });
    expect(c.model.dModel).toBe(32);
    expect(c.train.lr).toBe(0.002);
    expect(c.data.maxLength).toBe(20);
    // The later of two overrides of one field wins; an empty file takes overrides too.
    expect(parseClusterConfig('', 'c.yaml', ['model.layers=3', 'model.layers=4']).model.layers).toBe(4);
  });

  it('names the override behind a bad value, and rejects malformed overrides', () => {
    const text = 'model:\n  dModel: 64\n';
    expect(() => parseClusterConfig(text, 'c.yaml', ['model.sprm.prototypes=-1'])).toThrowError(/--set model\.sprm\.prototypes=-1: model\.sprm\.prototypes: /);
    expect(() => parseClusterConfig(text, 'c.yaml', ['model.sprm.protoypes=3'])).toThrowError(/--set model\.sprm\.protoypes=3: model\.sprm: .*protoypes/);
    expect(() => parseClusterConfig(text, 'c.yaml', ['model.dModel.width=1'])).toThrowError(/model\.dModel is a value, not a section/);
    expect(() => parseClusterConfig(text, 'c.yaml', ['model.sprm.dilations=[1,'])).toThrowError(/invalid YAML value/);
    for (const bad of ['model.layers', '=3', 'model..layers=2']) {
      expect(() => parseClusterConfig(text, 'c.yaml', [bad]), bad).toThrowError(/expected KEY=VALUE/);
    }
    // Fields the overrides did not touch still point at their line in the file.
    expect(() => parseClusterConfig('model:\n  dModel: 7\n', 'c.yaml', ['model.layers=2'])).toThrowError(/c\.yaml:2: model\.dModel/);
  });

  it('refuses a training window context that leaves no position to predict', () => {
    expect(() => parseClusterConfig('data:\n  maxLength: 16\ntrain:\n  windowContext: 16\n', 'c.yaml')).toThrowError(/c\.yaml:4: train\.windowContext: must be smaller than data\.maxLength/);
    expect(parseClusterConfig('data:\n  maxLength: 16\ntrain:\n  windowContext: 15\n', 'c.yaml').train.windowContext).toBe(15);
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
