/**
 * Full-ranking metrics from 0-based ranks of the true next token among the whole
 * vocabulary (ranks of 0xffffffff mark rows without a target and are left out).
 */
export interface RankingMetrics {
  count: number;
  hr1: number;
  hr10: number;
  hr50: number;
  ndcg10: number;
  mrr: number;
}

export const NO_TARGET = 0xffffffff;

export function rankingMetrics(ranks: ArrayLike<number>): RankingMetrics {
  let count = 0;
  let hr1 = 0;
  let hr10 = 0;
  let hr50 = 0;
  let ndcg10 = 0;
  let mrr = 0;
  for (let i = 0; i < ranks.length; i++) {
    const r = ranks[i];
    if (r === NO_TARGET) continue;
    count++;
    if (r < 1) hr1++;
    if (r < 10) {
      hr10++;
      ndcg10 += 1 / Math.log2(r + 2);
    }
    if (r < 50) hr50++;
    mrr += 1 / (r + 1);
  }
  const d = Math.max(count, 1);
  return { count, hr1: hr1 / d, hr10: hr10 / d, hr50: hr50 / d, ndcg10: ndcg10 / d, mrr: mrr / d };
}
