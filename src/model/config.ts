import { z } from 'zod';

/** The `model:` section of cluster.yaml: the PANTHER backbone and its ablation switches. */
export const ModelSchema = z
  .strictObject({
    dModel: z.number().int().min(8).max(1024).default(64).describe('width of every position representation'),
    heads: z.number().int().min(1).max(16).default(2),
    layers: z.number().int().min(1).max(24).default(2),
    ffnMult: z.number().int().min(0).max(8).default(2).describe('feed-forward width as a multiple of dModel; 0 = no feed-forward layer'),
    sprm: z
      .strictObject({
        enabled: z.boolean().default(true),
        kernelSize: z.number().int().min(2).max(7).default(3),
        dilations: z.array(z.number().int().min(1).max(16)).max(6).default([1, 2, 4, 8])
          .describe('one causal convolution per dilation, summed; [] = no convolutions (the prototypes match the block input)'),
        depthwise: z.boolean().default(true).describe('per-channel convolutions (paper) or full ones'),
        residual: z.boolean().default(false)
          .describe("the convolutions add to their input, x + gelu(conv x), as in the authors' released code; without it the SPRM sees gelu(conv x) alone"),
        prototypes: z.number().int().min(0).max(1024).default(32).describe('0 = no prototype matching (the convolutions alone)'),
        matching: z.enum(['cosine', 'scaled-dot', 'attention']).default('cosine')
          .describe("prototype matching: cosine similarity over the temperature (the paper), a dot product over sqrt(dModel) with layer-normed prototypes (the authors' simplified code), or multi-head cross-attention from a query projection of the local features to key prototypes, mixing separate value prototypes (the paper's cross-attention)"),
        temperature: z.number().positive().default(0.1).describe('of cosine matching'),
        merge: z.enum(['mean', 'sum']).default('mean')
          .describe('how a block adds attention and SPRM to its residual stream: their mean (the paper), or both at full weight, attention as in the plain transformer'),
      })
      .refine((s) => !s.enabled || s.dilations.length > 0 || s.prototypes > 0, {
        message: 'an enabled SPRM needs convolutions (dilations) or prototypes; to turn it off, set enabled: false',
      })
      .prefault({}),
    profile: z
      .strictObject({
        enabled: z.boolean().default(true),
        blend: z.number().min(0).max(1).default(0.1).describe('weight of the profile embedding blended into every position'),
        contrastiveWeight: z.number().min(0).default(0.1),
        temperature: z.number().positive().default(0.5).describe('InfoNCE temperature; sharper ones (0.1) pull the last state of demographically similar users together hard enough to cost next-event accuracy'),
        embedDim: z.number().int().min(4).max(512).default(32).describe('width of the user-profile embedding'),
        positiveFields: z.number().int().min(1).default(2).describe('users whose first N profile fields all match are positives'),
      })
      .prefault({}),
    head: z
      .strictObject({
        loss: z.enum(['full', 'in-batch']).default('full')
          .describe("next-token softmax over the whole vocabulary (the paper), or over the distinct targets of the batch (in-batch negatives, the authors' released training; under data parallelism the global batch's, so any worker count takes the same step); evaluation always ranks the whole vocabulary"),
        cosine: z.boolean().default(false).describe('logits are cosine similarities of the L2-normalized state and token vectors over the temperature'),
        temperature: z.number().positive().default(0.05).describe('of a cosine head'),
      })
      .prefault({}),
    dropout: z.number().min(0).max(0.9).default(0.1).describe('dropout on embeddings and block outputs while training'),
    seed: z.number().int().default(1),
  })
  .prefault({});

export type ModelConfig = z.infer<typeof ModelSchema>;

/** What the model learns about the data it is built for (from the tokenizer). */
export interface ModelShape {
  vocabSize: number;
  attributeVocab: number[];
  profileVocab: number[];
  maxLength: number;
}

/** What a config trains: the options of a switched-off SPRM or profile do not matter, so they are dropped. */
export function effectiveModelConfig(config: ModelConfig): ModelConfig {
  return {
    ...config,
    sprm: config.sprm.enabled ? config.sprm : ({ enabled: false } as ModelConfig['sprm']),
    profile: config.profile.enabled ? config.profile : ({ enabled: false } as ModelConfig['profile']),
  };
}

/** The plain-transformer baseline: the same model with SPRM and profile fusion switched off. */
export function baselineOf(config: ModelConfig): ModelConfig {
  return { ...config, sprm: { ...config.sprm, enabled: false }, profile: { ...config.profile, enabled: false } };
}
