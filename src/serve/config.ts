import { z } from 'zod';

/**
 * The `jobs:` and `serve:` sections of cluster.yaml: embedding regeneration on BullMQ and
 * the online scorer. Wired into ClusterConfigSchema; the single source of their defaults.
 */
export const JobsSchema = z
  .strictObject({
    queue: z.string().min(1).regex(/^[^:]+$/, 'no colons (BullMQ uses them in keys)').default('panther-embeddings').describe('BullMQ queue of the regeneration jobs'),
    keyPrefix: z.string().min(1).default('panther:emb').describe('Redis key prefix of the embedding store (versions live under <prefix>:v:<n>:)'),
    shardUsers: z.int().min(1).default(256).describe('users per shard job'),
    batchUsers: z.int().min(1).max(1024).default(32).describe('users per encoder batch on the adapter'),
    topK: z.int().min(1).max(1024).default(32).describe('tokens of the behaviour prior kept with their probabilities'),
    buckets: z.int().min(1).max(4096).default(16).describe('Redis hashes a version is spread over'),
    attempts: z.int().min(1).default(3).describe('tries of a failing shard before the regeneration fails'),
    backoffMs: z.int().min(0).default(1000),
    graceSeconds: z.number().min(0).default(600).describe('how long a replaced version stays readable before it is removed'),
    lockDurationMs: z.int().min(500).default(30_000).describe('a worker that stops renewing its lock this long is considered dead'),
    stalledIntervalMs: z.int().min(100).default(30_000).describe('how often workers look for jobs of dead workers'),
    maxStalledCount: z.int().min(0).default(2).describe('times a shard may be taken back from a dead worker'),
    concurrency: z.int().min(1).default(1).describe('jobs a worker runs at once (they share its adapter)'),
  })
  .prefault({});

export const ServeSchema = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.int().min(0).max(65535).default(8080),
    model: z.string().min(1).optional().describe('discriminative model file written by `panther fraud-eval --save-model`'),
    pointerRefreshMs: z.int().min(10).default(1000).describe('how often the server looks for a new embedding version'),
    redisTimeoutMs: z.int().min(5).default(250).describe('a Redis command slower than this fails the request with 503'),
    cacheEntries: z.int().min(0).default(100_000)
      .describe('user entries of the served version kept in memory (a finished version never changes); 0: every request reads Redis'),
    maxBatch: z.int().min(1).max(10_000).default(1000).describe('events per batch request'),
  })
  .prefault({});

export type JobsConfig = z.infer<typeof JobsSchema>;
export type ServeConfig = z.infer<typeof ServeSchema>;
