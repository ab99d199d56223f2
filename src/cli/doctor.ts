import { Redis } from 'ioredis';
import type { ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { Gpu } from '../gpu/runtime.js';

export interface RedisProbe {
  url: string | null;
  reachable: boolean;
  detail: string;
}

export function redisUrlFrom(config: ClusterConfig, env: NodeJS.ProcessEnv = process.env): string | null {
  return config.redis.url ?? env[config.redis.urlEnv] ?? null;
}

export async function probeRedis(url: string | null): Promise<RedisProbe> {
  if (!url) return { url, reachable: false, detail: 'no URL configured (commands that need Redis start a private redis-server)' };
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    const pong = await client.ping();
    const info = await client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    return { url, reachable: pong === 'PONG', detail: `redis ${version}` };
  } catch (err) {
    return { url, reachable: false, detail: (err as Error).message };
  } finally {
    client.disconnect();
  }
}

export async function doctor(config: ClusterConfig, json: boolean): Promise<number> {
  const gpu = await Gpu.create(gpuOptionsFrom(config.gpu));
  try {
    const redis = await probeRedis(redisUrlFrom(config));
    const report = {
      adapter: gpu.description,
      features: [...gpu.adapter.features].sort(),
      deviceFeatures: [...gpu.features].sort(),
      tunables: gpu.tunables,
      limits: gpu.limits,
      redis,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const d = gpu.description;
    const lines = [
      'adapter',
      `  vendor        ${d.vendor || '(none)'}`,
      `  architecture  ${d.architecture || '(none)'}`,
      `  device        ${d.device || '(none)'}`,
      `  description   ${d.description || '(none)'}`,
      `  fallback      ${d.isFallbackAdapter ? 'yes' : 'no'}${d.isSoftware ? ' (software: CPU kernel variants)' : ''}`,
      `  kernels       matmul=${gpu.tunables.matmul}`,
      `features        ${report.features.join(', ')}`,
      'limits',
      ...Object.entries(gpu.limits).map(([k, v]) => `  ${k.padEnd(44)} ${v}`),
      `redis           ${redis.reachable ? 'reachable' : 'not reachable'} at ${redis.url ?? '(none)'}: ${redis.detail}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    gpu.destroy();
  }
}
