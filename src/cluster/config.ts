import { z } from 'zod';

/**
 * The `cluster:` section of cluster.yaml: where the coordinator listens, which workers it
 * expects, where the shared secret comes from, and the limits of the wire protocol.
 * Absent `workers` (or 1) keeps `panther pretrain` on today's single-process path.
 */
export const WorkerSlotSchema = z.strictObject({
  name: z.string().min(1).max(64).optional().describe('label in logs'),
  backend: z.enum(['auto', 'vulkan', 'metal', 'd3d12', 'd3d11', 'opengl', 'opengles', 'null']).optional()
    .describe('Dawn backend of this worker (default: gpu.backend)'),
  adapter: z.string().min(1).optional().describe('substring of the adapter name this worker must use (default: gpu.adapter)'),
});

const MiB = 1024 * 1024;

export const ClusterSchema = z
  .strictObject({
    coordinator: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1').describe('address the coordinator listens on; loopback unless set'),
        port: z.int().min(0).max(65535).default(7420).describe('0 = any free port'),
      })
      .prefault({}),
    workers: z
      .union([z.int().min(1).max(256), z.array(WorkerSlotSchema).min(1).max(256)])
      .optional()
      .describe('expected workers: a count, or one entry per worker with its adapter choice'),
    secretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').default('PANTHER_CLUSTER_SECRET')
      .describe('environment variable holding the shared secret (never the secret itself)'),
    heartbeat: z
      .strictObject({
        intervalMs: z.int().min(20).default(1000),
        timeoutMs: z.int().min(100).default(5000).describe('a worker silent this long is declared lost'),
      })
      .prefault({})
      .refine((h) => h.timeoutMs > 2 * h.intervalMs, { message: 'timeoutMs must exceed two heartbeat intervals' }),
    tls: z
      .strictObject({
        cert: z.string().min(1).describe('PEM certificate file of the coordinator (wss)'),
        key: z.string().min(1).describe('PEM private key file'),
        ca: z.string().min(1).optional().describe('PEM file workers trust (default: the certificate itself, for self-signed ones)'),
      })
      .optional(),
    maxPayload: z.int().min(64 * 1024).max(1024 * MiB).default(64 * MiB).describe('largest accepted WebSocket frame in bytes'),
    bucketBytes: z.int().min(1024).max(256 * MiB).default(4 * MiB).describe('gradient bytes per all-reduce bucket'),
    checksumEvery: z.int().min(1).default(10).describe('compare parameter checksums of all replicas every K steps'),
    joinTimeoutMs: z.int().min(1000).default(300_000).describe('how long to wait for the expected workers'),
    localRestarts: z.int().min(0).max(1000).default(3)
      .describe('replacement processes `panther pretrain` may start for its local workers that die'),
    workerHost: z.string().min(1).default('127.0.0.1').describe('address local workers listen on for their ring neighbours'),
  })
  .prefault({})
  .refine((c) => c.bucketBytes * 2 <= c.maxPayload, { message: 'bucketBytes must be at most half of maxPayload', path: ['bucketBytes'] });

export type ClusterSection = z.infer<typeof ClusterSchema>;
export type WorkerSlot = z.infer<typeof WorkerSlotSchema>;

/** The expected workers as one slot each (a count becomes that many default slots). */
export function workerSlots(c: ClusterSection): WorkerSlot[] {
  if (c.workers === undefined) return [];
  return typeof c.workers === 'number' ? Array.from({ length: c.workers }, () => ({})) : c.workers;
}
