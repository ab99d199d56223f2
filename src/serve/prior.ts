import { PantherError } from '../errors.js';

/**
 * The behaviour prior (method.md part 4): the model's predictive distribution of a user's
 * next event, stored compactly. The full distribution over V tokens is too big to cache
 * per user, so it is summarized by:
 * - the log-normalizer `lse` of the scores, which with the cached last hidden state and the
 *   version's head gives the exact log-probability of ANY token (h . W[:, t] - lse);
 * - the top-k tokens with their log-probabilities (exact ranks inside the top k);
 * - a "rank ladder": the log-probability at ranks 1, 2, 4, 8, ... V, from which the rank of a
 *   token outside the top k is interpolated;
 * - sum of p^2, which gives the standard deviation of the user's predicted probabilities for
 *   Delta(u, m) = (P_u(m) - mean_u) / std_u (mean_u = 1/V since probabilities sum to 1).
 */
export interface PriorSummary {
  vocab: number;
  lse: number;
  topTokens: Int32Array;
  topLogProbs: Float32Array;
  /** ladder[i] = log-probability of the token at rank 2^i (1-based), down to rank V. */
  ladder: Float32Array;
  sumP2: number;
}

export interface Deviation {
  token: number;
  /** -log P_u(token). */
  nll: number;
  /** 1 = the most likely token; ties count against the token. */
  rank: number;
  /** True when the rank is exact (the token is in the top k, or the prior is dense). */
  rankExact: boolean;
  /** (P_u(token) - 1/V) / std_u: negative when the event is less likely than average. */
  delta: number;
  /** Probability of the prior's most likely token (how sure the prior was). */
  topProb: number;
}

/** Anything that gives the log-probability and rank of a token. */
export interface PriorView {
  readonly vocab: number;
  logProb(token: number): number;
  deviation(token: number): Deviation;
}

function ladderLength(vocab: number): number {
  return Math.floor(Math.log2(Math.max(1, vocab))) + 2;
}

/** The largest score, the log-normalizer and the sum of squared probabilities of one row of scores. */
export function scoreRowStats(scores: Float32Array, offset: number, vocab: number): { max: number; lse: number; sumP2: number } {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (scores[offset + i] > max) max = scores[offset + i];
  let z = 0;
  for (let i = 0; i < vocab; i++) z += Math.exp(scores[offset + i] - max);
  const lse = max + Math.log(z);
  let sumP2 = 0;
  for (let i = 0; i < vocab; i++) {
    const p = Math.exp(scores[offset + i] - lse);
    sumP2 += p * p;
  }
  return { max, lse, sumP2 };
}

/** Summarizes one row of raw scores (logits) `scores[offset .. offset + V)`. */
export function summarizeScores(scores: Float32Array, offset: number, vocab: number, topK: number): PriorSummary {
  if (offset + vocab > scores.length) throw new PantherError('E_SHAPE', `scores row [${offset}, ${offset + vocab}) is past ${scores.length}`, 'summarizeScores');
  const { lse, sumP2 } = scoreRowStats(scores, offset, vocab);
  const k = Math.min(topK, vocab);
  const order = Array.from({ length: vocab }, (_, i) => i);
  order.sort((a, b) => scores[offset + b] - scores[offset + a] || a - b);
  const topTokens = Int32Array.from(order.slice(0, k));
  const topLogProbs = Float32Array.from(topTokens, (t) => scores[offset + t] - lse);
  const ladder = new Float32Array(ladderLength(vocab));
  for (let i = 0; i < ladder.length; i++) {
    const rank = Math.min(vocab, 2 ** i);
    ladder[i] = scores[offset + order[rank - 1]] - lse;
  }
  return { vocab, lse, topTokens, topLogProbs, ladder, sumP2 };
}

/** Rank of a log-probability interpolated on the ladder (ranks 1, 2, 4, ... V). */
export function ladderRank(ladder: Float32Array, vocab: number, logProb: number): number {
  if (logProb >= ladder[0]) return 1;
  for (let i = 0; i + 1 < ladder.length; i++) {
    const hi = ladder[i];
    const lo = ladder[i + 1];
    if (logProb >= lo) {
      const r0 = Math.min(vocab, 2 ** i);
      const r1 = Math.min(vocab, 2 ** (i + 1));
      const f = hi > lo ? (hi - logProb) / (hi - lo) : 1;
      return Math.max(1, Math.round(r0 + f * (r1 - r0)));
    }
  }
  return vocab;
}

export function deltaOf(logProb: number, vocab: number, sumP2: number): number {
  const mean = 1 / vocab;
  const variance = Math.max(sumP2 / vocab - mean * mean, 1e-30);
  return (Math.exp(logProb) - mean) / Math.sqrt(variance);
}

/**
 * A user's prior: exact log-probabilities through the cached state and the head, exact ranks
 * in the top k, interpolated beyond.
 */
export class CachedPrior implements PriorView {
  readonly vocab: number;

  constructor(
    readonly summary: PriorSummary,
    /** Last hidden state (the head's input), [d]. */
    readonly state: Float32Array,
    /** Head weights [d, V] row-major (W[j * V + t]). */
    readonly head: Float32Array,
  ) {
    this.vocab = summary.vocab;
    if (head.length !== state.length * this.vocab) {
      throw new PantherError('E_SHAPE', `head has ${head.length} weights, state ${state.length} x vocab ${this.vocab} needs ${state.length * this.vocab}`, 'CachedPrior');
    }
  }

  logProb(token: number): number {
    const V = this.vocab;
    let s = 0;
    for (let j = 0; j < this.state.length; j++) s += this.state[j] * this.head[j * V + token];
    return s - this.summary.lse;
  }

  deviation(token: number): Deviation {
    const { summary } = this;
    if (!(token >= 0 && token < this.vocab)) throw new PantherError('E_ARGUMENT', `token ${token} is outside the vocabulary of ${this.vocab}`, 'prior');
    const lp = this.logProb(token);
    const at = summary.topTokens.indexOf(token);
    const rank = at >= 0 ? at + 1 : Math.max(summary.topTokens.length + 1, ladderRank(summary.ladder, this.vocab, lp));
    return { token, nll: -lp, rank, rankExact: at >= 0, delta: deltaOf(lp, this.vocab, summary.sumP2), topProb: Math.exp(summary.topLogProbs[0]) };
  }
}

/** A prior given as a dense log-probability vector (the population default). */
export class DensePrior implements PriorView {
  readonly vocab: number;
  private readonly ranks: Int32Array;
  private readonly sumP2: number;
  private readonly top: number;

  constructor(readonly logProbs: Float32Array) {
    this.vocab = logProbs.length;
    const order = Array.from({ length: this.vocab }, (_, i) => i).sort((a, b) => logProbs[b] - logProbs[a] || a - b);
    this.ranks = new Int32Array(this.vocab);
    // Ties count against the token: its rank is the last position of its tie group.
    for (let i = this.vocab - 1, groupEnd = this.vocab; i >= 0; i--) {
      if (i + 1 < this.vocab && logProbs[order[i]] !== logProbs[order[i + 1]]) groupEnd = i + 1;
      this.ranks[order[i]] = groupEnd;
    }
    let s = 0;
    for (const lp of logProbs) s += Math.exp(2 * lp);
    this.sumP2 = s;
    this.top = Math.exp(logProbs[order[0]]);
  }

  /** Unigram log-probabilities from token counts, add-one smoothed (specials other than <unk> get none). */
  static fromCounts(counts: readonly number[], specials: number): DensePrior {
    const smoothed = counts.map((c, t) => (t < specials && t !== 1 ? 0 : c + 1));
    const total = smoothed.reduce((a, b) => a + b, 0);
    return new DensePrior(Float32Array.from(smoothed, (c) => (c > 0 ? Math.log(c / total) : Math.log(1e-12))));
  }

  logProb(token: number): number {
    return this.logProbs[token];
  }

  deviation(token: number): Deviation {
    if (!(token >= 0 && token < this.vocab)) throw new PantherError('E_ARGUMENT', `token ${token} is outside the vocabulary of ${this.vocab}`, 'prior');
    const lp = this.logProbs[token];
    return { token, nll: -lp, rank: this.ranks[token], rankExact: true, delta: deltaOf(lp, this.vocab, this.sumP2), topProb: this.top };
  }
}
