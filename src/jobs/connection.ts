import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisUrlFrom } from '../cli/doctor.js';
import type { ClusterConfig } from '../config/schema.js';
import { startLocalRedis, type LocalRedis } from '../redis/local-server.js';

/** The Redis a command talks to: the configured one, or a private local server for this run. */
export interface RedisTarget {
  url: string;
  /** Set when no URL was configured and a private redis-server was started. */
  local: LocalRedis | null;
}

export async function resolveRedis(config: ClusterConfig, log?: Logger): Promise<RedisTarget> {
  const url = redisUrlFrom(config);
  if (url) return { url, local: null };
  const local = await startLocalRedis();
  log?.warn({ url: local.url }, `no Redis configured (redis.url or $${config.redis.urlEnv}): started a private redis-server for this run; what it holds ends with the run`);
  return { url: local.url, local };
}

/** A client for BullMQ (its blocking commands need maxRetriesPerRequest: null). */
export function queueClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}
