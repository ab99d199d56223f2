import { z } from 'zod';
import { PantherError } from '../errors.js';

/**
 * The job payloads of an embedding regeneration, typed and versioned, validated by the
 * worker on receipt (another process, maybe another release, enqueued them).
 */
export const JOB_FORMAT = 1;
export const JOB_NAMES = { shard: 'shard', finalize: 'finalize', prune: 'prune' } as const;

const Common = {
  format: z.literal(JOB_FORMAT),
  version: z.int().positive(),
  keyPrefix: z.string().min(1),
  buckets: z.int().positive(),
};

export const ShardJobSchema = z.strictObject({
  ...Common,
  shard: z.int().min(0),
  shards: z.int().positive(),
  checkpoint: z.string().min(1),
  /** The `data:` section the checkpoint was trained with (the worker prepares the same data). */
  data: z.record(z.string(), z.unknown()),
  users: z.array(z.string()).min(1),
  topK: z.int().positive(),
  batchUsers: z.int().positive(),
  before: z.number().optional(),
});

export const FinalizeJobSchema = z.strictObject({
  ...Common,
  users: z.int().min(0),
  shards: z.int().positive(),
  graceSeconds: z.number().min(0),
});

export const PruneJobSchema = z.strictObject({ format: z.literal(JOB_FORMAT), keyPrefix: z.string().min(1) });

/** What a shard job returns (the parent reads it with getChildrenValues). */
export const ShardResultSchema = z.strictObject({
  shard: z.int().min(0),
  encoded: z.int().min(0),
  withoutHistory: z.array(z.string()),
  /** Sum of the encoded users' embeddings, for the population default. */
  embeddingSum: z.array(z.number()),
  seconds: z.number(),
});

export type ShardJob = z.infer<typeof ShardJobSchema>;
export type FinalizeJob = z.infer<typeof FinalizeJobSchema>;
export type PruneJob = z.infer<typeof PruneJobSchema>;
export type ShardResult = z.infer<typeof ShardResultSchema>;

/** Progress a shard reports after each batch. */
export interface ShardProgress {
  done: number;
  total: number;
}

export function parseJob<T>(schema: z.ZodType<T>, data: unknown, where: string): T {
  const r = schema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new PantherError('E_JOB', `malformed job data: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, where);
  }
  return r.data;
}

export function shardJobId(version: number, shard: number): string {
  return `shard-${version}-${shard}`;
}

export function finalizeJobId(version: number): string {
  return `finalize-${version}`;
}
