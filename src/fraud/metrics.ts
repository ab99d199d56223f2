/**
 * Fraud detection metrics as the Fraud Detection Handbook computes them (Ch. 3-4):
 * AUC ROC (ties share their average rank), Average Precision (sklearn's step-wise sum over
 * distinct thresholds), Card Precision@k (per day, the share of truly compromised cards
 * among the k cards with the highest max score, cards already detected on earlier days
 * removed; averaged over days), and recall at fixed alert rates.
 */
export function aucRoc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[order[k]]) {
        pos++;
        rankSum += avg;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  let total = 0;
  for (let i = 0; i < n; i++) total += labels[i] ? 1 : 0;
  if (total === 0) return NaN;
  let tp = 0;
  let seen = 0;
  let prevRecall = 0;
  let ap = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    for (let k = i; k <= j; k++) tp += labels[order[k]] ? 1 : 0;
    seen = j + 1;
    const recall = tp / total;
    ap += (recall - prevRecall) * (tp / seen);
    prevRecall = recall;
    i = j + 1;
  }
  return ap;
}

/** Share of positives among the top `fraction` of scores (at least one row). */
export function recallAtTop(scores: ArrayLike<number>, labels: ArrayLike<number>, fraction: number): number {
  const n = scores.length;
  const k = Math.max(1, Math.ceil(fraction * n));
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  let total = 0;
  for (let i = 0; i < n; i++) total += labels[i] ? 1 : 0;
  if (total === 0) return NaN;
  let hit = 0;
  for (let i = 0; i < k; i++) hit += labels[order[i]] ? 1 : 0;
  return hit / total;
}

export interface ScoredTransaction {
  score: number;
  label: number;
  card: number;
  day: number;
}

/**
 * Card Precision@k, the handbook's `card_precision_top_k`: per day, each card's max score and
 * max label; the k cards with the highest scores; the share that are compromised. Cards found
 * compromised among the top k of an earlier day are removed from later days.
 */
export function cardPrecisionAtK(rows: readonly ScoredTransaction[], k: number): { mean: number; perDay: { day: number; precision: number; compromisedCards: number }[] } {
  const days = [...new Set(rows.map((r) => r.day))].sort((a, b) => a - b);
  const detected = new Set<number>();
  const perDay: { day: number; precision: number; compromisedCards: number }[] = [];
  for (const day of days) {
    const cards = new Map<number, { score: number; label: number }>();
    for (const r of rows) {
      if (r.day !== day || detected.has(r.card)) continue;
      const c = cards.get(r.card);
      if (!c) cards.set(r.card, { score: r.score, label: r.label });
      else {
        c.score = Math.max(c.score, r.score);
        c.label = Math.max(c.label, r.label);
      }
    }
    const ranked = [...cards].sort((a, b) => b[1].score - a[1].score || a[0] - b[0]);
    const top = ranked.slice(0, k);
    const hits = top.filter(([, c]) => c.label > 0).map(([card]) => card);
    perDay.push({ day, precision: hits.length / k, compromisedCards: ranked.filter(([, c]) => c.label > 0).length });
    for (const card of hits) detected.add(card);
  }
  return { mean: perDay.length ? perDay.reduce((s, d) => s + d.precision, 0) / perDay.length : NaN, perDay };
}

export interface FraudMetrics {
  transactions: number;
  frauds: number;
  aucRoc: number;
  averagePrecision: number;
  cardPrecision100: number;
  recallTop01: number;
  recallTop1: number;
  /** Per fraud scenario (> 0): its frauds against all legitimate transactions. */
  scenarios: { scenario: number; frauds: number; aucRoc: number; recallTop01: number; recallTop1: number }[];
}

/**
 * Every metric of the comparison on one scored test set. Per scenario, recall counts the
 * scenario's frauds in the top 0.1% / 1% of ALL scored transactions, and AUC ranks them
 * against the legitimate ones only.
 */
export function fraudMetrics(rows: readonly (ScoredTransaction & { scenario: number })[]): FraudMetrics {
  const scores = rows.map((r) => r.score);
  const labels = rows.map((r) => (r.label > 0 ? 1 : 0));
  const n = rows.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const topMask = (fraction: number) => {
    const m = new Uint8Array(n);
    const k = Math.max(1, Math.ceil(fraction * n));
    for (let i = 0; i < k && i < n; i++) m[order[i]] = 1;
    return m;
  };
  const top01 = topMask(0.001);
  const top1 = topMask(0.01);
  const scenarioIds = [...new Set(rows.filter((r) => r.label > 0).map((r) => r.scenario))].sort((a, b) => a - b);
  const scenarios = scenarioIds.map((s) => {
    const idx = rows.map((r, i) => (r.label === 0 || r.scenario === s ? i : -1)).filter((i) => i >= 0);
    let frauds = 0;
    let hit01 = 0;
    let hit1 = 0;
    rows.forEach((r, i) => {
      if (r.label > 0 && r.scenario === s) {
        frauds++;
        hit01 += top01[i];
        hit1 += top1[i];
      }
    });
    return {
      scenario: s,
      frauds,
      aucRoc: aucRoc(idx.map((i) => scores[i]), idx.map((i) => labels[i])),
      recallTop01: hit01 / frauds,
      recallTop1: hit1 / frauds,
    };
  });
  return {
    transactions: n,
    frauds: labels.reduce<number>((a, b) => a + b, 0),
    aucRoc: aucRoc(scores, labels),
    averagePrecision: averagePrecision(scores, labels),
    cardPrecision100: cardPrecisionAtK(rows, 100).mean,
    recallTop01: recallAtTop(scores, labels, 0.001),
    recallTop1: recallAtTop(scores, labels, 0.01),
    scenarios,
  };
}
