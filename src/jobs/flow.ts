import path from 'node:path';
import { FlowProducer } from 'bullmq';
import type { Redis } from 'ioredis';
import type { DataConfig } from '../data/config.js';
import { PantherError } from '../errors.js';
import type { JobsConfig } from '../serve/config.js';
import { EmbeddingStore } from '../serve/store.js';
import { finalizeJobId, JOB_FORMAT, JOB_NAMES, shardJobId, type FinalizeJob, type ShardJob } from './messages.js';

export interface RegenerationRequest {
  checkpoint: string;
  /** The `data:` section the checkpoint was trained with. */
  data: DataConfig;
  /** User ids, in the data's spelling. */
  users: readonly string[];
  /** Read only events before this time (seconds since the epoch). */
  before?: number;
}

export interface EnqueuedRegeneration {
  version: number;
  shards: number;
  users: number;
  finalizeJobId: string;
}

/**
 * Enqueues one regeneration as a BullMQ flow: a child job per shard of users and a parent
 * `finalize` job that BullMQ runs only once every child has completed; the parent checks the
 * counts and flips the version pointer. Job ids are derived from the version, so a
 * re-submitted flow does not duplicate jobs.
 */
export async function enqueueRegeneration(connection: Redis, jobs: JobsConfig, req: RegenerationRequest): Promise<EnqueuedRegeneration> {
  if (req.users.length === 0) throw new PantherError('E_ARGUMENT', 'no users to embed', 'embed');
  const unique = new Set(req.users);
  if (unique.size !== req.users.length) throw new PantherError('E_ARGUMENT', `the user list repeats ${req.users.length - unique.size} ids`, 'embed');
  const store = new EmbeddingStore(connection, jobs.keyPrefix);
  const version = await store.nextVersion();
  const checkpoint = path.resolve(req.checkpoint);
  // Workers may run elsewhere: hand them absolute paths.
  const data = { ...req.data, cacheDir: path.resolve(req.data.cacheDir), ...(req.data.dataRoot ? { dataRoot: path.resolve(req.data.dataRoot) } : {}) };
  const shards: string[][] = [];
  for (let i = 0; i < req.users.length; i += jobs.shardUsers) shards.push(req.users.slice(i, i + jobs.shardUsers));
  await store.registerVersion({ version, users: req.users.length, shards: shards.length, checkpoint });
  const retry = { attempts: jobs.attempts, backoff: { type: 'exponential' as const, delay: jobs.backoffMs } };
  const common = { format: JOB_FORMAT, version, keyPrefix: jobs.keyPrefix, buckets: jobs.buckets } as const;
  const finalize: FinalizeJob = { ...common, users: req.users.length, shards: shards.length, graceSeconds: jobs.graceSeconds };
  const producer = new FlowProducer({ connection });
  try {
    await producer.add({
      name: JOB_NAMES.finalize,
      queueName: jobs.queue,
      data: finalize,
      opts: { jobId: finalizeJobId(version), ...retry },
      children: shards.map((users, shard) => {
        const job: ShardJob = {
          ...common, shard, shards: shards.length, checkpoint, data: data as Record<string, unknown>, users,
          topK: jobs.topK, batchUsers: jobs.batchUsers, ...(req.before !== undefined ? { before: req.before } : {}),
        };
        return { name: JOB_NAMES.shard, queueName: jobs.queue, data: job, opts: { jobId: shardJobId(version, shard), failParentOnFailure: true, ...retry } };
      }),
    });
  } finally {
    await producer.close();
  }
  return { version, shards: shards.length, users: req.users.length, finalizeJobId: finalizeJobId(version) };
}
