import { afterAll, beforeAll } from 'vitest';
import { Gpu, type GpuOptions } from '../../src/gpu/runtime.js';

/**
 * One device per test file, destroyed at the end so the worker can exit. Uncaptured GPU
 * errors (validation, shader compilation) fail the file.
 */
export function useGpu(options: GpuOptions = {}): () => Gpu {
  let gpu: Gpu | undefined;
  const errors: string[] = [];
  beforeAll(async () => {
    gpu = await Gpu.create({ ...options, onError: (m) => errors.push(m) });
  });
  afterAll(async () => {
    if (gpu && !gpu.isDestroyed) await gpu.sync();
    gpu?.destroy();
    if (errors.length) throw new Error(`GPU errors:\n${errors.join('\n')}`);
  });
  return () => {
    if (!gpu) throw new Error('GPU not ready');
    if (errors.length) throw new Error(`GPU errors:\n${errors.join('\n')}`);
    return gpu;
  };
}
