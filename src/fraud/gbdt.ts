import { z } from 'zod';
import { Random } from '../data/random.js';
import { PantherError } from '../errors.js';

/**
 * A small gradient-boosted tree ensemble for binary labels (logistic loss), written for the
 * CPU: features are cut into quantile bins, each tree grows depth-wise from per-node
 * gradient / hessian histograms (the larger child's histogram is the parent's minus the
 * smaller child's), leaves take the Newton step -G / (H + lambda) shrunk by the learning
 * rate. Thresholds are kept in the raw feature space, so scoring needs no bins: a few hundred
 * comparisons per event, microseconds.
 */
export const GbdtOptionsSchema = z.strictObject({
  rounds: z.int().min(1).default(200),
  learningRate: z.number().positive().max(1).default(0.1),
  maxDepth: z.int().min(1).max(12).default(5),
  minChildWeight: z.number().min(0).default(1).describe('hessian sum a leaf needs'),
  lambda: z.number().min(0).default(1).describe('L2 penalty on leaf values'),
  bins: z.int().min(2).max(256).default(255),
  subsample: z.number().positive().max(1).default(0.8).describe('rows drawn for each tree'),
  seed: z.int().default(1),
});
export type GbdtOptions = z.infer<typeof GbdtOptionsSchema>;

export interface Tree {
  /** -1 marks a leaf. */
  feature: number[];
  /** Go left when x <= threshold. */
  threshold: number[];
  left: number[];
  right: number[];
  value: number[];
}

export const GbdtStateSchema = z.strictObject({
  kind: z.literal('gbdt'),
  features: z.array(z.string()),
  base: z.number(),
  trees: z.array(z.strictObject({ feature: z.array(z.int()), threshold: z.array(z.number()), left: z.array(z.int()), right: z.array(z.int()), value: z.array(z.number()) })),
  /** Total split gain per feature (importance). */
  gain: z.array(z.number()),
});
export type GbdtState = z.infer<typeof GbdtStateSchema>;

export class Gbdt {
  constructor(readonly state: GbdtState) {}

  get features(): string[] {
    return this.state.features;
  }

  /** Log-odds for one row (x in `features` order). */
  margin(x: ArrayLike<number>): number {
    let s = this.state.base;
    for (const t of this.state.trees) {
      let n = 0;
      while (t.feature[n] >= 0) n = x[t.feature[n]] <= t.threshold[n] ? t.left[n] : t.right[n];
      s += t.value[n];
    }
    return s;
  }

  predict(x: ArrayLike<number>): number {
    return 1 / (1 + Math.exp(-this.margin(x)));
  }

  /** Rows of a column-major table. */
  predictColumns(columns: readonly Float64Array[], rows: number): Float64Array {
    const out = new Float64Array(rows);
    const x = new Float64Array(columns.length);
    for (let i = 0; i < rows; i++) {
      for (let f = 0; f < columns.length; f++) x[f] = columns[f][i];
      out[i] = this.predict(x);
    }
    return out;
  }

  importance(): { feature: string; gain: number }[] {
    const total = this.state.gain.reduce((a, b) => a + b, 0) || 1;
    return this.state.features.map((feature, i) => ({ feature, gain: this.state.gain[i] / total })).sort((a, b) => b.gain - a.gain);
  }
}

/**
 * Cut points of one feature (bin(x) = number of cuts below x). Few distinct values: one bin
 * each. Otherwise bins of about equal mass over the sorted values, where a value holding a
 * large share of the rows (a risk of 0, say) gets a bin of its own and the remaining bins
 * spread over the rest, so the tail (amounts above 220, non-zero terminal risks) keeps its
 * resolution.
 */
function cutPoints(values: Float64Array, bins: number): Float64Array {
  const sorted = Float64Array.from(values).sort();
  const distinct: number[] = [];
  const counts: number[] = [];
  for (const v of sorted) {
    if (distinct.length && distinct[distinct.length - 1] === v) counts[counts.length - 1]++;
    else {
      distinct.push(v);
      counts.push(1);
    }
  }
  if (distinct.length <= bins) return Float64Array.from(distinct.slice(0, -1));
  const cuts: number[] = [];
  let left = sorted.length;
  let acc = 0;
  for (let i = 0; i < distinct.length - 1 && cuts.length < bins - 1; i++) {
    acc += counts[i];
    const target = left / (bins - cuts.length);
    // Close the bin when it is full, or when the next value alone would overfill it.
    if (acc >= target || acc + counts[i + 1] > 2 * target) {
      cuts.push(distinct[i]);
      left -= acc;
      acc = 0;
    }
  }
  return Float64Array.from(cuts);
}

function binOf(cuts: Float64Array, x: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x <= cuts[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Trains on a column-major table (`columns[f][row]`) with 0/1 labels. Deterministic for a
 * seed. Non-finite feature values are an error: impute before.
 */
export function trainGbdt(names: readonly string[], columns: readonly Float64Array[], labels: ArrayLike<number>, input: z.input<typeof GbdtOptionsSchema> = {}): Gbdt {
  const o = GbdtOptionsSchema.parse(input);
  const F = columns.length;
  const n = labels.length;
  if (names.length !== F) throw new PantherError('E_SHAPE', `${names.length} names for ${F} columns`, 'trainGbdt');
  if (n === 0) throw new PantherError('E_ARGUMENT', 'no training rows', 'trainGbdt');
  columns.forEach((c, f) => {
    if (c.length < n) throw new PantherError('E_SHAPE', `column ${names[f]} has ${c.length} rows, labels ${n}`, 'trainGbdt');
    for (let i = 0; i < n; i++) if (!Number.isFinite(c[i])) throw new PantherError('E_DATA', `feature ${names[f]} row ${i} is ${c[i]}`, 'trainGbdt');
  });
  const cuts = columns.map((c) => cutPoints(c.subarray(0, n), o.bins));
  const B = o.bins;
  const binned = columns.map((c, f) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = binOf(cuts[f], c[i]);
    return out;
  });
  let pos = 0;
  for (let i = 0; i < n; i++) pos += labels[i] ? 1 : 0;
  const prior = Math.min(Math.max(pos / n, 1e-6), 1 - 1e-6);
  const base = Math.log(prior / (1 - prior));
  const margin = new Float64Array(n).fill(base);
  const g = new Float64Array(n);
  const h = new Float64Array(n);
  const gainTotal = new Array<number>(F).fill(0);
  const trees: Tree[] = [];
  const rng = new Random(o.seed, 'gbdt');

  const histogram = (rows: Int32Array): Float64Array => {
    const hist = new Float64Array(F * B * 2);
    for (let f = 0; f < F; f++) {
      const col = binned[f];
      const off = f * B * 2;
      for (let k = 0; k < rows.length; k++) {
        const i = rows[k];
        const b = off + 2 * col[i];
        hist[b] += g[i];
        hist[b + 1] += h[i];
      }
    }
    return hist;
  };

  for (let round = 0; round < o.rounds; round++) {
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-margin[i]));
      g[i] = p - (labels[i] ? 1 : 0);
      h[i] = Math.max(p * (1 - p), 1e-12);
    }
    const sample: number[] = [];
    for (let i = 0; i < n; i++) if (o.subsample >= 1 || rng.next() < o.subsample) sample.push(i);
    const tree: Tree = { feature: [], threshold: [], left: [], right: [], value: [] };
    const splitBin: number[] = [];
    const newNode = (): number => {
      tree.feature.push(-1);
      tree.threshold.push(0);
      tree.left.push(-1);
      tree.right.push(-1);
      tree.value.push(0);
      splitBin.push(-1);
      return tree.feature.length - 1;
    };
    type Open = { node: number; rows: Int32Array; hist: Float64Array; depth: number };
    let level: Open[] = [{ node: newNode(), rows: Int32Array.from(sample), hist: histogram(Int32Array.from(sample)), depth: 0 }];
    while (level.length) {
      const next: Open[] = [];
      for (const open of level) {
        let G = 0;
        let H = 0;
        for (let b = 0; b < B; b++) {
          G += open.hist[2 * b];
          H += open.hist[2 * b + 1];
        }
        tree.value[open.node] = (-G / (H + o.lambda)) * o.learningRate;
        if (open.depth >= o.maxDepth || open.rows.length < 2) continue;
        const parentScore = (G * G) / (H + o.lambda);
        let best = { gain: 1e-9, f: -1, b: -1 };
        for (let f = 0; f < F; f++) {
          const off = f * B * 2;
          let GL = 0;
          let HL = 0;
          for (let b = 0; b < cuts[f].length; b++) {
            GL += open.hist[off + 2 * b];
            HL += open.hist[off + 2 * b + 1];
            const GR = G - GL;
            const HR = H - HL;
            if (HL < o.minChildWeight || HR < o.minChildWeight) continue;
            const gain = (GL * GL) / (HL + o.lambda) + (GR * GR) / (HR + o.lambda) - parentScore;
            if (gain > best.gain) best = { gain, f, b };
          }
        }
        if (best.f < 0) continue;
        const col = binned[best.f];
        let nLeft = 0;
        for (let k = 0; k < open.rows.length; k++) if (col[open.rows[k]] <= best.b) nLeft++;
        const leftRows = new Int32Array(nLeft);
        const rightRows = new Int32Array(open.rows.length - nLeft);
        for (let k = 0, l = 0, r = 0; k < open.rows.length; k++) {
          const i = open.rows[k];
          if (col[i] <= best.b) leftRows[l++] = i;
          else rightRows[r++] = i;
        }
        const smallIsLeft = leftRows.length <= rightRows.length;
        const small = histogram(smallIsLeft ? leftRows : rightRows);
        const large = open.hist;
        for (let k = 0; k < large.length; k++) large[k] -= small[k];
        const l = newNode();
        const r = newNode();
        tree.feature[open.node] = best.f;
        tree.threshold[open.node] = cuts[best.f][best.b];
        splitBin[open.node] = best.b;
        tree.left[open.node] = l;
        tree.right[open.node] = r;
        gainTotal[best.f] += best.gain;
        next.push({ node: l, rows: leftRows, hist: smallIsLeft ? small : large, depth: open.depth + 1 });
        next.push({ node: r, rows: rightRows, hist: smallIsLeft ? large : small, depth: open.depth + 1 });
      }
      level = next;
    }
    for (let i = 0; i < n; i++) {
      let node = 0;
      while (tree.feature[node] >= 0) node = binned[tree.feature[node]][i] <= splitBin[node] ? tree.left[node] : tree.right[node];
      margin[i] += tree.value[node];
    }
    trees.push(tree);
  }
  return new Gbdt({ kind: 'gbdt', features: [...names], base, trees, gain: gainTotal });
}
