import { Packr } from 'msgpackr';
import { z } from 'zod';
import { PantherError } from '../errors.js';
import type { PriorSummary } from './prior.js';

/**
 * What a regeneration writes per user, and per version. Both are msgpack (typed arrays stay
 * typed arrays), versioned by `format` and validated when read: another process wrote them.
 */
export const ENTRY_FORMAT = 1;
export const META_FORMAT = 1;

export interface UserEntry {
  format: typeof ENTRY_FORMAT;
  user: string;
  /** Events of the history the encoder read, and the time of the last one. */
  events: number;
  lastTime: number;
  /** The user-profile embedding, or the last hidden state when the profile is off. */
  embedding: Float32Array;
  /** The head's input at the last position (the hidden state; its unit vector over the temperature for a cosine head), for exact log-probabilities. */
  state: Float32Array;
  prior: PriorSummary;
  /** The strongest behaviour prototype at the last event (last block), when SPRM is on. */
  prototype: { index: number; weight: number } | null;
}

export interface VersionMeta {
  format: typeof META_FORMAT;
  version: number;
  checkpoint: string;
  createdAt: number;
  dModel: number;
  embeddingKind: 'profile' | 'hidden';
  embeddingDim: number;
  vocab: number;
  /** Hash buckets the user entries are spread over. */
  buckets: number;
  /** The saved tokenizer (JSON text), so the scorer maps live events to tokens exactly as training did. */
  tokenizer: string;
  /** The next-token head [dModel, vocab], row-major. */
  head: Float32Array;
  /** Population prior: unigram log-probabilities of the training tokens. */
  populationLogProbs: Float32Array;
}

export interface Population {
  users: number;
  embedding: Float32Array;
}

const packr = new Packr({ useRecords: false, moreTypes: true });

const f32 = z.instanceof(Float32Array);
const PriorSchema = z.object({
  vocab: z.int().positive(),
  lse: z.number(),
  topTokens: z.instanceof(Int32Array),
  topLogProbs: f32,
  ladder: f32,
  sumP2: z.number(),
});
const EntrySchema = z.object({
  format: z.literal(ENTRY_FORMAT),
  user: z.string(),
  events: z.int().min(0),
  lastTime: z.number(),
  embedding: f32,
  state: f32,
  prior: PriorSchema,
  prototype: z.object({ index: z.int().min(0), weight: z.number() }).nullable(),
});
const MetaSchema = z.object({
  format: z.literal(META_FORMAT),
  version: z.int().positive(),
  checkpoint: z.string(),
  createdAt: z.number(),
  dModel: z.int().positive(),
  embeddingKind: z.enum(['profile', 'hidden']),
  embeddingDim: z.int().positive(),
  vocab: z.int().positive(),
  buckets: z.int().positive(),
  tokenizer: z.string(),
  head: f32,
  populationLogProbs: f32,
});
const PopulationSchema = z.object({ users: z.int().min(0), embedding: f32 });

function decode<T>(bytes: Buffer, schema: z.ZodType<T>, what: string, where: string): T {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (err) {
    throw new PantherError('E_DATA', `${what} is not valid msgpack (${(err as Error).message})`, where);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PantherError('E_DATA', `${what}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, where);
  }
  return parsed.data;
}

export function encodeEntry(e: UserEntry): Buffer {
  return packr.pack(e);
}

export function decodeEntry(bytes: Buffer, where: string): UserEntry {
  return decode(bytes, EntrySchema, 'user entry', where) as UserEntry;
}

export function encodeMeta(m: VersionMeta): Buffer {
  return packr.pack(m);
}

export function decodeMeta(bytes: Buffer, where: string): VersionMeta {
  const m = decode(bytes, MetaSchema, 'version metadata', where) as VersionMeta;
  if (m.head.length !== m.dModel * m.vocab) throw new PantherError('E_DATA', `head has ${m.head.length} weights, expected ${m.dModel} x ${m.vocab}`, where);
  if (m.populationLogProbs.length !== m.vocab) throw new PantherError('E_DATA', `population prior has ${m.populationLogProbs.length} tokens, expected ${m.vocab}`, where);
  return m;
}

export function encodePopulation(p: Population): Buffer {
  return packr.pack(p);
}

export function decodePopulation(bytes: Buffer, where: string): Population {
  return decode(bytes, PopulationSchema, 'population entry', where) as Population;
}
