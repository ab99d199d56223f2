import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from '../data/files.js';
import { PantherError } from '../errors.js';
import { Gbdt, GbdtStateSchema } from './gbdt.js';
import type { Projection } from './projection.js';

/**
 * The discriminative model the scorer runs: a tree ensemble over named features, with what
 * it needs to build them online: the embedding projection (PCA of the prior's hidden state)
 * and per-feature medians that stand in for features a request does not carry.
 */
export const PRIOR_FEATURES = ['prior_nll', 'prior_log2_rank', 'prior_delta', 'prior_top_prob', 'prior_missing'] as const;
export const embeddingFeatureNames = (k: number): string[] => Array.from({ length: k }, (_, i) => `embedding_${i}`);

const ProjectionSchema = z.strictObject({ mean: z.array(z.number()), components: z.array(z.array(z.number())), variance: z.array(z.number()) });

export const FraudModelSchema = z.strictObject({
  format: z.literal('panther-fraud-model'),
  version: z.literal(1),
  model: GbdtStateSchema,
  projection: ProjectionSchema.nullable(),
  medians: z.record(z.string(), z.number()),
  trainedOn: z.strictObject({
    data: z.string(),
    checkpoint: z.string().nullable(),
    window: z.strictObject({ trainStart: z.number(), trainEnd: z.number(), testStart: z.number(), testEnd: z.number() }),
    prior: z.enum(['fresh', 'daily']).nullable(),
    priorLagDays: z.int().min(0).optional().describe('days by which the daily prior predates the event (absent: 0)'),
    rows: z.int(),
    frauds: z.int(),
  }),
});
export type FraudModelFile = z.infer<typeof FraudModelSchema>;

export class FraudModel {
  readonly gbdt: Gbdt;
  readonly features: string[];
  private readonly index: Map<string, number>;

  constructor(readonly file: FraudModelFile) {
    this.gbdt = new Gbdt(file.model);
    this.features = file.model.features;
    this.index = new Map(this.features.map((f, i) => [f, i]));
  }

  get projection(): Projection | null {
    return this.file.projection;
  }

  uses(feature: string): boolean {
    return this.index.has(feature);
  }

  /** Fraud probability from named values; absent ones take the training median (listed in `imputed`). */
  score(value: (feature: string) => number | undefined): { probability: number; imputed: string[] } {
    const x = new Float64Array(this.features.length);
    const imputed: string[] = [];
    this.features.forEach((f, i) => {
      const v = value(f);
      if (v === undefined || !Number.isFinite(v)) {
        x[i] = this.file.medians[f] ?? 0;
        imputed.push(f);
      } else {
        x[i] = v;
      }
    });
    return { probability: this.gbdt.predict(x), imputed };
  }

  save(path: string): void {
    writeFileAtomic(path, `${JSON.stringify(this.file)}\n`);
  }

  static load(path: string): FraudModel {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new PantherError('E_ARGUMENT', `cannot read the fraud model (${(err as Error).message}); write one with panther fraud-eval --save-model`, path);
    }
    const r = FraudModelSchema.safeParse(raw);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new PantherError('E_DATA', `not a panther fraud model: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, path);
    }
    return new FraudModel(r.data);
  }
}

export function medianOf(values: ArrayLike<number>): number {
  const s = Float64Array.from(values).sort();
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}
