import { z } from 'zod';

/** The `train:` section of cluster.yaml: the optimization schedule, evaluation and checkpoints. */
export const TrainSchema = z.strictObject({
  batchSize: z.int().min(1).max(4096).default(32).describe('windows per global batch'),
  epochs: z.number().positive().default(4).describe('passes over the training windows (fractions allowed)'),
  maxSteps: z.int().min(1).optional().describe('stop after this many steps even if epochs remain'),
  lr: z.number().positive().default(1e-3),
  warmupSteps: z.int().min(0).default(50),
  minLrRatio: z.number().min(0).max(1).default(0.1).describe('cosine decay floor as a fraction of lr'),
  weightDecay: z.number().min(0).default(0.01),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.98),
  maxGradNorm: z.number().positive().default(1),
  lengthBuckets: z.int().min(0).max(4096).default(0)
    .describe('batches per length bucket: windows of similar length train together, so short histories do not pay for padding; faster steps, but on Beauty worse metrics after the same steps (0: plain shuffle)'),
  windowContext: z.int().min(0).default(0)
    .describe("events a training window carries before the ones it predicts, as context only (windows overlap by this many), so that on histories longer than data.maxLength no prediction starts without history; less than data.maxLength"),
  evalEvery: z.int().min(1).default(200).describe('steps between validations'),
  evalUsers: z.int().min(1).optional().describe('validate on at most this many users (all by default)'),
  patience: z.int().min(1).default(4).describe('validations without a better NDCG@10 before stopping early'),
  checkpointDir: z.string().min(1).default('runs/latest'),
  checkpointEvery: z.int().min(1).default(500).describe('steps between checkpoints (the best model is kept as well)'),
  seed: z.int().default(1),
});

export type TrainConfig = z.infer<typeof TrainSchema>;
