import { z } from 'zod';
import { ClusterSchema } from '../cluster/config.js';
import { DataSchema } from '../data/config.js';
import { ModelSchema } from '../model/config.js';
import { JobsSchema, ServeSchema } from '../serve/config.js';
import { TrainSchema } from '../train/config.js';

/**
 * The one schema of `cluster.yaml`: it validates the file and is the single source of its
 * defaults. Sections grow with the product; unknown keys are rejected so typos surface.
 */
export const GpuSchema = z
  .strictObject({
    backend: z.enum(['auto', 'vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'null']).default('auto')
      .describe('Dawn backend; auto picks the platform default'),
    adapter: z.string().min(1).optional().describe('substring of the adapter name that must match'),
    powerPreference: z.enum(['high-performance', 'low-power']).optional(),
    matmul: z.enum(['auto', 'subgroup', 'reg', 'tiled']).default('auto')
      .describe('matmul kernel variant: subgroup or reg (for CPU adapters), tiled (workgroup memory, for GPUs)'),
  })
  .default({ backend: 'auto', matmul: 'auto' });

export const RedisSchema = z
  .strictObject({
    url: z.string().url().optional().describe('redis:// URL of an existing server'),
    urlEnv: z.string().default('REDIS_URL').describe('environment variable that may hold the URL instead'),
  })
  .default({ urlEnv: 'REDIS_URL' });

export const ClusterConfigSchema = z.strictObject({
  gpu: GpuSchema,
  redis: RedisSchema,
  data: DataSchema.prefault({}),
  model: ModelSchema,
  train: TrainSchema.prefault({}),
  jobs: JobsSchema, serve: ServeSchema,
  cluster: ClusterSchema,
}).refine((c) => c.train.windowContext < c.data.maxLength, {
  message: 'must be smaller than data.maxLength: a training window needs positions that predict',
  path: ['train', 'windowContext'],
});

export type ClusterConfig = z.infer<typeof ClusterConfigSchema>;
export type GpuConfig = z.infer<typeof GpuSchema>;
