import { makeBatch, type Window } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';
import { TOKEN_SPECIALS } from '../data/tokenizer.js';
import type { PantherModel } from '../model/panther.js';
import { ENTRY_FORMAT, META_FORMAT, type UserEntry, type VersionMeta } from '../serve/entry.js';
import { DensePrior, summarizeScores } from '../serve/prior.js';
import { embedding } from '../tensor/ops/embedding.js';
import { noGrad } from '../tensor/tape.js';
import { tidy } from '../tensor/tensor.js';

/**
 * The encoder pass of a regeneration: each user's last `maxLength` events (before `before`
 * when given) through the model without the tape, then per user the embedding, the last
 * hidden state and the summarized next-event distribution (the behaviour prior).
 */
export interface EncodeOptions {
  topK: number;
  batchUsers: number;
  /** Only events strictly before this time (seconds) are read; default: the whole history. */
  before?: number;
}

/** The window of a user's history the encoder reads, or null when there is none. */
export function historyWindow(data: PreparedData, user: number, maxLength: number, before?: number): Window | null {
  const first = data.offsets[user];
  let end = data.offsets[user + 1];
  if (before !== undefined) while (end > first && data.time[end - 1] >= before) end--;
  if (end <= first) return null;
  return { user, start: Math.max(first, end - maxLength), end, target: -1 };
}

/**
 * Encodes users in batches, handing each batch's entries to `sink` (which writes them) before
 * the next batch runs. Returns the users that have no history to read.
 */
export async function encodeUsers(
  model: PantherModel,
  data: PreparedData,
  users: readonly number[],
  o: EncodeOptions,
  sink: (entries: UserEntry[]) => Promise<void>,
): Promise<{ encoded: number; withoutHistory: number[] }> {
  const gpu = model.gpu;
  const L = model.shape.maxLength;
  const V = model.shape.vocabSize;
  const d = model.config.dModel;
  const withoutHistory: number[] = [];
  const windows: Window[] = [];
  for (const u of users) {
    const w = historyWindow(data, u, L, o.before);
    if (w) windows.push(w);
    else withoutHistory.push(u);
  }
  let encoded = 0;
  for (let i = 0; i < windows.length; i += o.batchUsers) {
    const slice = windows.slice(i, i + o.batchUsers);
    const batch = makeBatch(data, slice, L, 'right');
    const B = batch.rows;
    const last = Int32Array.from({ length: B }, (_, r) => r * L + L - 1);
    const out = noGrad(gpu, () => tidy(gpu, () => {
      const f = model.forward(batch);
      const h = embedding(f.hidden, last, [B]);
      // What the serving head multiplies (the state itself unless the head is cosine).
      const input = model.headInput(h);
      const scores = model.scoresOfInput(input);
      const emb = model.profileEnabled ? model.userEmbedding(f, batch) : null;
      const weights = f.prototypeWeights.at(-1);
      const proto = weights ? embedding(weights, last, [B]) : null;
      return { h: h.keep(), input: input === h ? null : input.keep(), scores: scores.keep(), emb: emb?.keep() ?? null, proto: proto?.keep() ?? null };
    }));
    const [h, input, scores, emb, proto] = await Promise.all([
      out.h.readF32(), out.input?.readF32() ?? null, out.scores.readF32(), out.emb?.readF32() ?? null, out.proto?.readF32() ?? null,
    ]);
    for (const t of [out.h, out.input, out.scores, out.emb, out.proto]) t?.dispose();
    const E = emb ? emb.length / B : d;
    const K = proto ? proto.length / B : 0;
    const entries = slice.map((w, r): UserEntry => {
      let prototype: UserEntry['prototype'] = null;
      if (proto) {
        let best = 0;
        for (let k = 1; k < K; k++) if (proto[r * K + k] > proto[r * K + best]) best = k;
        prototype = { index: best, weight: proto[r * K + best] };
      }
      const state = (input ?? h).slice(r * d, (r + 1) * d);
      return {
        format: ENTRY_FORMAT,
        user: data.users[w.user],
        events: w.end - w.start,
        lastTime: data.time[w.end - 1],
        embedding: emb ? emb.slice(r * E, (r + 1) * E) : h.slice(r * d, (r + 1) * d),
        state,
        prior: summarizeScores(scores, r * V, V, o.topK),
        prototype,
      };
    });
    await sink(entries);
    encoded += entries.length;
  }
  return { encoded, withoutHistory };
}

/** What every reader of a version needs besides the entries: tokenizer, head, population prior. */
export async function versionMetaOf(model: PantherModel, data: PreparedData, version: number, checkpoint: string, buckets: number): Promise<VersionMeta> {
  const t = data.tokenizer;
  return {
    format: META_FORMAT,
    version,
    checkpoint,
    createdAt: Date.now(),
    dModel: model.config.dModel,
    embeddingKind: model.profileEnabled ? 'profile' : 'hidden',
    embeddingDim: model.profileEnabled ? model.config.profile.embedDim : model.config.dModel,
    vocab: t.vocabSize,
    buckets,
    tokenizer: JSON.stringify(t.toJSON()),
    head: await model.servingHead(),
    populationLogProbs: DensePrior.fromCounts(t.tokenCounts, TOKEN_SPECIALS.length).logProbs,
  };
}
