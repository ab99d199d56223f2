import type { GpuOptions } from '../gpu/runtime.js';
import type { GpuConfig } from './schema.js';
import type { Backend } from '../gpu/device.js';

/**
 * Adapter choice from `cluster.yaml`, overridden by PANTHER_GPU_BACKEND and
 * PANTHER_GPU_ADAPTER (handy to pin a worker to one GPU on a multi-GPU machine).
 */
export function gpuOptionsFrom(config: GpuConfig, env: NodeJS.ProcessEnv = process.env): GpuOptions {
  const options: GpuOptions = {
    backend: (env.PANTHER_GPU_BACKEND as Backend | undefined) ?? config.backend,
    adapter: env.PANTHER_GPU_ADAPTER ?? config.adapter,
    powerPreference: config.powerPreference,
  };
  if (config.matmul !== 'auto') options.tunables = { matmul: config.matmul };
  return options;
}
