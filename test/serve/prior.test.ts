import { describe, expect, it } from 'vitest';
import { Random } from '../../src/data/random.js';
import { decodeEntry, encodeEntry, ENTRY_FORMAT, type UserEntry } from '../../src/serve/entry.js';
import { CachedPrior, DensePrior, ladderRank, summarizeScores } from '../../src/serve/prior.js';
import { bucketOf } from '../../src/serve/store.js';

function randomPrior(seed: number, d: number, V: number) {
  const r = new Random(seed, 'prior-test');
  const head = Float32Array.from({ length: d * V }, () => r.normal());
  const state = Float32Array.from({ length: d }, () => r.normal());
  const scores = new Float32Array(V);
  for (let t = 0; t < V; t++) for (let j = 0; j < d; j++) scores[t] += state[j] * head[j * V + t];
  return { head, state, scores };
}

describe('the behaviour prior summary', () => {
  const d = 8;
  const V = 500;
  const { head, state, scores } = randomPrior(1, d, V);
  const summary = summarizeScores(scores, 0, V, 16);
  const prior = new CachedPrior(summary, state, head);
  const max = Math.max(...scores);
  const lse = max + Math.log(scores.reduce((a, s) => a + Math.exp(s - max), 0));
  const exactRank = (t: number) => scores.filter((s) => s >= scores[t]).length;

  it('keeps the exact log-normalizer, top tokens and sum of squared probabilities', () => {
    expect(summary.lse).toBeCloseTo(lse, 4);
    const order = [...scores.keys()].sort((a, b) => scores[b] - scores[a]);
    expect([...summary.topTokens]).toEqual(order.slice(0, 16));
    const p2 = scores.reduce((a, s) => a + Math.exp(2 * (s - lse)), 0);
    expect(summary.sumP2).toBeCloseTo(p2, 6);
  });

  it('gives exact log-probabilities for every token through the state and the head', () => {
    for (const t of [0, 17, 250, V - 1]) expect(prior.logProb(t)).toBeCloseTo(scores[t] - lse, 4);
  });

  it('ranks exactly in the top k and within a factor of two beyond, from the ladder', () => {
    for (let t = 0; t < V; t++) {
      const dev = prior.deviation(t);
      const exact = exactRank(t);
      if (dev.rankExact) expect(dev.rank).toBe(exact);
      else {
        expect(dev.rank).toBeGreaterThan(16);
        expect(dev.rank).toBeGreaterThanOrEqual(Math.floor(exact / 2));
        expect(dev.rank).toBeLessThanOrEqual(2 * exact);
      }
    }
    expect(ladderRank(summary.ladder, V, summary.ladder[0] + 1)).toBe(1);
    expect(ladderRank(summary.ladder, V, -1e9)).toBe(V);
  });

  it('computes Delta = (P_u(m) - mean_u) / std_u over the predicted probabilities', () => {
    const p = scores.map((s) => Math.exp(s - lse));
    const std = Math.sqrt(p.reduce((a, v) => a + (v - 1 / V) ** 2, 0) / V);
    const top = summary.topTokens[0];
    expect(prior.deviation(top).delta).toBeCloseTo((p[top] - 1 / V) / std, 3);
    expect(prior.deviation(summary.topTokens[15]).delta).toBeGreaterThan(prior.deviation(order(V - 1)).delta);
    function order(i: number) {
      return [...scores.keys()].sort((a, b) => scores[b] - scores[a])[i];
    }
  });

  it('the population prior ranks ties against the token and smooths unseen tokens', () => {
    const pop = DensePrior.fromCounts([0, 5, 0, 0, 10, 10, 1, 0], 4);
    // counts + 1 (specials other than <unk> get nothing): <unk> 6, 11, 11, 2, 1 of 31
    expect(pop.logProb(4)).toBeCloseTo(Math.log(11 / 31), 6);
    expect(pop.deviation(4).rank).toBe(2);
    expect(pop.deviation(5).rank).toBe(2);
    expect(pop.deviation(1).rank).toBe(3);
    expect(pop.deviation(7).rank).toBe(5);
    expect(pop.deviation(0).nll).toBeGreaterThan(20);
  });

  it('entries survive msgpack and are validated when read', () => {
    const entry: UserEntry = { format: ENTRY_FORMAT, user: 'u1', events: 12, lastTime: 1.7e9, embedding: Float32Array.of(1, 2), state, prior: summary, prototype: { index: 3, weight: 0.5 } };
    const back = decodeEntry(encodeEntry(entry), 'test');
    expect(back.state).toEqual(state);
    expect(back.prior.topTokens).toEqual(summary.topTokens);
    expect(back.prototype).toEqual({ index: 3, weight: 0.5 });
    const broken = encodeEntry({ ...entry, events: -1 });
    expect(() => decodeEntry(broken, 'key u1')).toThrow(/key u1: user entry: events/);
    expect(() => decodeEntry(Buffer.from([0x92, 0x01]), 'key u2')).toThrow(/key u2: user entry is not valid msgpack/);
  });

  it('spreads users over buckets the same way in every process', () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 1600; i++) counts[bucketOf(`user-${i}`, 16)]++;
    expect(Math.min(...counts)).toBeGreaterThan(60);
    expect(bucketOf('u42', 16)).toBe(bucketOf('u42', 16));
  });
});
