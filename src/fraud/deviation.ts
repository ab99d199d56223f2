import { makeBatch, type Window } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';
import { TOKEN_SPECIALS } from '../data/tokenizer.js';
import { PantherError } from '../errors.js';
import type { PantherModel } from '../model/panther.js';
import { deltaOf, DensePrior, scoreRowStats } from '../serve/prior.js';
import { embedding } from '../tensor/ops/embedding.js';
import { noGrad } from '../tensor/tape.js';
import { tidy } from '../tensor/tensor.js';
import { DAY } from './table.js';

/**
 * Deviation from the behaviour prior for many events at once: for each event, the model's
 * next-event distribution given the user's history before it (the prior), and the event's
 * negative log-likelihood, rank and Delta under it, plus the hidden state the prior came
 * from (the embedding features).
 *
 * - `fresh`: the prior right before the event (a store regenerated after every event);
 * - `daily`: the prior as of the end of the previous day (a nightly regeneration): every
 *   event of a day is scored against the same, older prior; with `lagDays` = n, as of the
 *   end of the day n days earlier still (a version kept from before a recent compromise, so
 *   that the fraudster's own events have not yet become the prior they are measured against).
 * Events with no history before them get the population prior and `missing = 1`.
 *
 * The history before an event ("anchor" = its last event) is read as one window position:
 * right-aligned windows of up to L events ending at an anchor cover many anchors at once
 * (each with at least `minContext` events of context, or all the user has), so the encoder
 * reads each event about L / (L - minContext) times, not L times. With minContext = L every
 * anchor is the last position of its own window: exactly the prior a regeneration caches.
 */
export type PriorMode = 'fresh' | 'daily';

export interface DeviationOptions {
  mode: PriorMode;
  /** `daily` only: the prior is this many days older still (default 0). */
  lagDays?: number;
  /** Windows per encoder batch. */
  batchRows?: number;
  /** Events of context every anchor gets (when the user has them); default half the window. */
  minContext?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface EventDeviations {
  events: Int32Array;
  nll: Float32Array;
  rank: Float32Array;
  delta: Float32Array;
  topProb: Float32Array;
  missing: Uint8Array;
  /** [events, dModel]: the hidden state of the anchor (zeros when missing). */
  state: Float32Array;
  dModel: number;
}

/** A prior's lag is a whole number of days, and only a daily prior has one. */
export function checkPriorLag(mode: PriorMode, lagDays: number, where: string): void {
  if (!(Number.isInteger(lagDays) && lagDays >= 0)) throw new PantherError('E_ARGUMENT', `the prior's lag (--lag-days) must be a whole number of days >= 0, not ${lagDays}`, where);
  if (lagDays > 0 && mode !== 'daily') throw new PantherError('E_ARGUMENT', 'a lagged prior is an older daily one: use the daily mode (--prior daily) with a lag', where);
}

/** The anchor (last history event) of each event, or -1. */
export function anchorsOf(data: PreparedData, events: Int32Array, mode: PriorMode, lagDays = 0): Int32Array {
  checkPriorLag(mode, lagDays, 'anchorsOf');
  const userOf = new Int32Array(data.tokens.length);
  for (let u = 0; u < data.users.length; u++) userOf.fill(u, data.offsets[u], data.offsets[u + 1]);
  return Int32Array.from(events, (k) => {
    const first = data.offsets[userOf[k]];
    if (mode === 'fresh') return k > first ? k - 1 : -1;
    const dayStart = (Math.floor(data.time[k] / DAY) - lagDays) * DAY;
    let a = k - 1;
    while (a >= first && data.time[a] >= dayStart) a--;
    return a >= first ? a : -1;
  });
}

/** Windows covering sorted anchors; each anchor's position in the batch it lands in. */
export function coverAnchors(data: PreparedData, anchors: readonly number[], L: number, minContext: number): { windows: Window[]; rowOf: Map<number, { window: number; position: number }> } {
  const userOf = (k: number) => {
    let lo = 0;
    let hi = data.users.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (data.offsets[mid] <= k) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const windows: Window[] = [];
  const rowOf = new Map<number, { window: number; position: number }>();
  let i = 0;
  while (i < anchors.length) {
    const a0 = anchors[i];
    const u = userOf(a0);
    const first = data.offsets[u];
    const last = data.offsets[u + 1];
    // Right-aligned windows ending at an anchor, as the encoder reads a history when it
    // regenerates: the first anchor keeps at least minContext events before it (or all
    // the user has), and minContext = L gives every anchor a window of its own.
    let j = i;
    while (j + 1 < anchors.length && anchors[j + 1] < last && anchors[j + 1] <= a0 + (L - minContext)) j++;
    const end = anchors[j] + 1;
    const start = Math.max(first, end - L);
    const w = windows.length;
    windows.push({ user: u, start, end, target: -1 });
    for (; i <= j; i++) rowOf.set(anchors[i], { window: w, position: L - (end - start) + (anchors[i] - start) });
  }
  return { windows, rowOf };
}

export async function eventDeviations(model: PantherModel, data: PreparedData, events: Int32Array, o: DeviationOptions): Promise<EventDeviations> {
  const gpu = model.gpu;
  const L = model.shape.maxLength;
  const V = model.shape.vocabSize;
  const d = model.config.dModel;
  if (V !== data.tokenizer.vocabSize) throw new PantherError('E_CONFIG', `model vocabulary ${V} != data vocabulary ${data.tokenizer.vocabSize}`, 'eventDeviations');
  const minContext = Math.max(1, Math.min(L, o.minContext ?? Math.floor(L / 2)));
  const anchor = anchorsOf(data, events, o.mode, o.lagDays);
  const byAnchor = new Map<number, number[]>();
  anchor.forEach((a, i) => {
    if (a < 0) return;
    let list = byAnchor.get(a);
    if (!list) byAnchor.set(a, (list = []));
    list.push(i);
  });
  const sorted = [...byAnchor.keys()].sort((x, y) => x - y);
  const { windows, rowOf } = coverAnchors(data, sorted, L, minContext);
  const n = events.length;
  const out: EventDeviations = {
    events,
    nll: new Float32Array(n),
    rank: new Float32Array(n),
    delta: new Float32Array(n),
    topProb: new Float32Array(n),
    missing: new Uint8Array(n),
    state: new Float32Array(n * d),
    dModel: d,
  };
  const population = DensePrior.fromCounts(data.tokenizer.tokenCounts, TOKEN_SPECIALS.length);
  anchor.forEach((a, i) => {
    if (a >= 0) return;
    const dev = population.deviation(data.tokens[events[i]]);
    out.nll[i] = dev.nll;
    out.rank[i] = dev.rank;
    out.delta[i] = dev.delta;
    out.topProb[i] = dev.topProb;
    out.missing[i] = 1;
  });
  // Anchors grouped by window, in window order.
  const anchorsOfWindow: number[][] = windows.map(() => []);
  for (const a of sorted) anchorsOfWindow[rowOf.get(a)!.window].push(a);
  const batchRows = o.batchRows ?? 32;
  const chunk = Math.max(1, Math.floor((32 * 1024 * 1024) / (4 * V)));
  let done = 0;
  for (let w0 = 0; w0 < windows.length; w0 += batchRows) {
    const slice = windows.slice(w0, w0 + batchRows);
    const batch = makeBatch(data, slice, L, 'right');
    const list: number[] = [];
    const rows: number[] = [];
    slice.forEach((_, r) => {
      for (const a of anchorsOfWindow[w0 + r]) {
        list.push(a);
        rows.push(r * L + rowOf.get(a)!.position);
      }
    });
    const hidden = noGrad(gpu, () => tidy(gpu, () => model.forward(batch).hidden.keep()));
    try {
      for (let c = 0; c < list.length; c += chunk) {
        const idx = Int32Array.from(rows.slice(c, c + chunk));
        const R = idx.length;
        const [hT, sT] = noGrad(gpu, () => tidy(gpu, () => {
          const h = embedding(hidden, idx, [R]);
          return [h.keep(), model.scores(h).keep()] as const;
        }));
        const [h, scores] = await Promise.all([hT.readF32(), sT.readF32()]);
        hT.dispose();
        sT.dispose();
        for (let r = 0; r < R; r++) {
          const off = r * V;
          const { max, lse, sumP2 } = scoreRowStats(scores, off, V);
          for (const i of byAnchor.get(list[c + r])!) {
            const token = data.tokens[events[i]];
            const s = scores[off + token];
            let above = 0;
            for (let t = 0; t < V; t++) if (scores[off + t] >= s) above++;
            const lp = s - lse;
            out.nll[i] = -lp;
            out.rank[i] = above; // ties count against the event (itself included: rank >= 1)
            out.delta[i] = deltaOf(lp, V, sumP2);
            out.topProb[i] = Math.exp(max - lse);
            out.state.set(h.subarray(r * d, (r + 1) * d), i * d);
          }
        }
      }
    } finally {
      hidden.dispose();
    }
    done += slice.length;
    o.onProgress?.(done, windows.length);
  }
  return out;
}
