import { PantherError } from '../errors.js';
import type { PreparedData } from './prepare.js';
import { Random } from './random.js';
import { ROLE } from './split.js';

/**
 * Fixed-length windows over the prepared sequences, deterministic shuffling, batches, and
 * a balanced split of a global batch across data-parallel workers.
 *
 * A window holds up to L consecutive events of one user as inputs. Training windows cover
 * the fitted prefix and every position's target is the next event's token; evaluation
 * windows hold the L events before a validation / test event and only the last position
 * has a target (that event's token), so the full-vocabulary ranking of method.md is read
 * at one place.
 */
export interface Window {
  user: number;
  /** Global event indices [start, end) of the inputs. */
  start: number;
  end: number;
  /** Global index of the one scored event (evaluation), or -1: every position predicts the next event (training). */
  target: number;
  /** Training windows: leading inputs that are context only (they predict nothing; an earlier window predicted them). */
  context?: number;
}

/** Global event indices [from, from + count) whose tokens a window's positions predict. */
export function windowTargets(w: Window): { from: number; count: number } {
  if (w.target >= 0) return { from: w.target, count: 1 };
  const context = w.context ?? 0;
  // Input i predicts event i + 1.
  return { from: w.start + context + 1, count: w.end - w.start - context };
}

export type Align = 'left' | 'right';

/**
 * Next-event windows over each user's fitted prefix, cut from the most recent event backwards.
 * With `context` > 0 a window also carries up to that many earlier events as context only
 * (maxLength - context predicting positions each), so a prediction has at least `context`
 * events of history unless the user has fewer; every fitted event is still predicted once.
 */
export function trainingWindows(data: PreparedData, maxLength: number, context = 0): Window[] {
  checkLength(maxLength);
  if (!(Number.isInteger(context) && context >= 0 && context < maxLength)) {
    throw new PantherError('E_CONFIG', `train.windowContext (${context}) must be an integer in [0, data.maxLength = ${maxLength})`, 'trainingWindows');
  }
  const windows: Window[] = [];
  for (let u = 0; u < data.users.length; u++) {
    const first = data.offsets[u];
    // Inputs [first, last) each predict the event after them, which must be in the prefix.
    const last = first + data.fitLength[u] - 1;
    for (let end = last; end > first;) {
      const predictFrom = Math.max(first, end - (maxLength - context));
      const start = Math.max(first, predictFrom - context);
      windows.push(context > 0 ? { user: u, start, end, target: -1, context: predictFrom - start } : { user: u, start, end, target: -1 });
      end = predictFrom;
    }
  }
  return windows;
}

/**
 * One window per event with this role, holding the events before it. Events with no history
 * (a user's first event) cannot be predicted and are counted, not windowed.
 */
export function evaluationWindows(data: PreparedData, role: 'valid' | 'test', maxLength: number): { windows: Window[]; withoutHistory: number } {
  checkLength(maxLength);
  const code = ROLE[role];
  const windows: Window[] = [];
  let withoutHistory = 0;
  for (let u = 0; u < data.users.length; u++) {
    const first = data.offsets[u];
    for (let k = first; k < data.offsets[u + 1]; k++) {
      if (data.role[k] !== code) continue;
      if (k === first) withoutHistory++;
      else windows.push({ user: u, start: Math.max(first, k - maxLength), end: k, target: k });
    }
  }
  return { windows, withoutHistory };
}

/** A new array in a deterministic order for (seed, epoch). */
export function shuffleWindows(windows: readonly Window[], seed: number, epoch: number): Window[] {
  return new Random(seed, 'epoch', epoch).shuffle([...windows]);
}

/**
 * The training order of one epoch for (seed, epoch). With `bucketBatches` > 1 the shuffled
 * windows are taken in groups of that many batches, each group sorted by window length
 * (longest first, stable) and cut into batches, and the full batches are shuffled again: a
 * batch then holds windows of similar length, so it can be cut to its longest window (see
 * batchLength) instead of carrying mostly padding. A last, partial batch stays last, so
 * batch k is always order[k * batchSize, (k + 1) * batchSize).
 */
export function epochOrder(windows: readonly Window[], seed: number, epoch: number, batchSize: number, bucketBatches: number): Window[] {
  const order = shuffleWindows(windows, seed, epoch);
  if (bucketBatches <= 1 || order.length <= batchSize) return order;
  const group = bucketBatches * batchSize;
  const sorted: Window[] = [];
  for (let g = 0; g < order.length; g += group) {
    const part = order.slice(g, g + group);
    // Array.prototype.sort is stable: equal lengths keep their shuffled order.
    sorted.push(...part.sort((a, b) => b.end - b.start - (a.end - a.start)));
  }
  const full = Math.floor(sorted.length / batchSize);
  const batches = Array.from({ length: full }, (_, k) => k);
  new Random(seed, 'batches', epoch).shuffle(batches);
  const out: Window[] = [];
  for (const k of batches) out.push(...sorted.slice(k * batchSize, (k + 1) * batchSize));
  out.push(...sorted.slice(full * batchSize));
  return out;
}

/**
 * The batches of a training run over fixed windows: batch `position` of `epoch` in the
 * epochOrder of (seed, epoch). The order is computed once per epoch, not once per step.
 */
export class EpochSchedule {
  private current: { epoch: number; order: Window[] } | null = null;
  private index: Map<Window, number> | null = null;

  constructor(readonly windows: readonly Window[], private readonly o: { seed: number; batchSize: number; bucketBatches: number }) {}

  /** The windows of one batch. */
  batch(epoch: number, position: number): Window[] {
    if (this.current?.epoch !== epoch) this.current = { epoch, order: epochOrder(this.windows, this.o.seed, epoch, this.o.batchSize, this.o.bucketBatches) };
    return this.current.order.slice(position * this.o.batchSize, (position + 1) * this.o.batchSize);
  }

  /** The same batch as indices into `windows` (what travels to data-parallel workers). */
  indices(epoch: number, position: number): Int32Array {
    if (!this.index) {
      const index = new Map<Window, number>();
      this.windows.forEach((w, i) => index.set(w, i));
      this.index = index;
    }
    const index = this.index;
    return Int32Array.from(this.batch(epoch, position), (w) => index.get(w)!);
  }
}

/** Positions a batch of these windows needs: the longest window rounded up to a multiple of 8, at most maxLength. */
export function batchLength(windows: readonly Window[], maxLength: number): number {
  checkLength(maxLength);
  let longest = 1;
  for (const w of windows) longest = Math.max(longest, w.end - w.start);
  return Math.min(maxLength, Math.ceil(longest / 8) * 8);
}

/** Row-major [rows, length] arrays; position p of row b is index b * length + p. */
export interface Batch {
  rows: number;
  length: number;
  align: Align;
  windows: Window[];
  /** Each row's index in the global batch (itself unless this is a shard). */
  rowIndex: Int32Array;
  user: Int32Array;
  /** 1 where a real event is, 0 on padding (the attention key mask). */
  mask: Uint8Array;
  /** Aligned with `tokenizer.attributes`. */
  attributes: Int32Array[];
  amountLog: Float32Array;
  gapLog: Float32Array;
  /** Token to predict at each position; 0 (<pad>) where nothing is predicted. */
  targets: Int32Array;
  /** Label of the target event (-1 unknown or no target). */
  targetLabels: Int8Array;
  /** [rows, profile fields]. */
  profile: Int32Array;
  /** Real events in this batch and in the global batch it was cut from. */
  tokens: number;
  /** Positions with a target here, and in the global batch (normalize the loss by this one so N shards add up to one batch). */
  targetCount: number;
  globalTargetCount: number;
}

/** The distinct targets among `targets`, ascending, without 0 (<pad>, no target): the in-batch negatives. */
export function distinctTargets(targets: Iterable<number>): Int32Array {
  return Int32Array.from(new Set(targets)).filter((t) => t !== 0).sort();
}

/** The distinct targets of these windows, as `distinctTargets` of their batch's targets, without building the batch. */
export function windowsDistinctTargets(data: PreparedData, windows: readonly Window[]): Int32Array {
  const seen = new Set<number>();
  for (const w of windows) {
    const t = windowTargets(w);
    for (let k = t.from; k < t.from + t.count; k++) seen.add(data.tokens[k]);
  }
  return distinctTargets(seen);
}

export function makeBatch(data: PreparedData, windows: readonly Window[], length: number, align: Align = 'right'): Batch {
  checkLength(length);
  const rows = windows.length;
  const size = rows * length;
  const nProfile = data.profile.fields.length;
  const b: Batch = {
    rows,
    length,
    align,
    windows: [...windows],
    rowIndex: Int32Array.from({ length: rows }, (_, i) => i),
    user: new Int32Array(rows),
    mask: new Uint8Array(size),
    attributes: data.attributes.map(() => new Int32Array(size)),
    amountLog: new Float32Array(size),
    gapLog: new Float32Array(size),
    targets: new Int32Array(size),
    targetLabels: new Int8Array(size).fill(-1),
    profile: new Int32Array(rows * nProfile),
    tokens: 0,
    targetCount: 0,
    globalTargetCount: 0,
  };
  windows.forEach((w, r) => {
    const n = w.end - w.start;
    if (n < 1 || n > length) throw new PantherError('E_ARGUMENT', `window of ${n} events does not fit length ${length}`, 'makeBatch');
    b.user[r] = w.user;
    b.profile.set(data.profile.ids.subarray(w.user * nProfile, (w.user + 1) * nProfile), r * nProfile);
    const p0 = r * length + (align === 'right' ? length - n : 0);
    for (let a = 0; a < data.attributes.length; a++) b.attributes[a].set(data.attributes[a].subarray(w.start, w.end), p0);
    b.amountLog.set(data.amountLog.subarray(w.start, w.end), p0);
    b.gapLog.set(data.gapLog.subarray(w.start, w.end), p0);
    b.mask.fill(1, p0, p0 + n);
    b.tokens += n;
    if (w.target < 0) {
      // Position i predicts event start + i + 1 (trainingWindows keeps it in the prefix); context positions predict nothing.
      const t = windowTargets(w);
      const at = p0 + n - t.count;
      b.targets.set(data.tokens.subarray(t.from, t.from + t.count), at);
      b.targetLabels.set(data.label.subarray(t.from, t.from + t.count), at);
      b.targetCount += t.count;
    } else {
      b.targets[p0 + n - 1] = data.tokens[w.target];
      b.targetLabels[p0 + n - 1] = data.label[w.target];
      b.targetCount += 1;
    }
  });
  b.globalTargetCount = b.targetCount;
  return b;
}

export interface BatchOptions {
  batchSize: number;
  length: number;
  align?: Align;
  seed: number;
  epoch: number;
  /** Drop a last, smaller batch (default false). */
  dropLast?: boolean;
  /** Length buckets of this many batches (epochOrder); 0 or 1: plain shuffle. */
  bucketBatches?: number;
}

/** One epoch of batches in the (seed, epoch) order. */
export function* epochBatches(data: PreparedData, windows: readonly Window[], options: BatchOptions): Generator<Batch> {
  if (!(Number.isInteger(options.batchSize) && options.batchSize > 0)) throw new PantherError('E_ARGUMENT', `batchSize must be a positive integer, got ${options.batchSize}`, 'epochBatches');
  const order = epochOrder(windows, options.seed, options.epoch, options.batchSize, options.bucketBatches ?? 0);
  for (let i = 0; i < order.length; i += options.batchSize) {
    const slice = order.slice(i, i + options.batchSize);
    if (options.dropLast && slice.length < options.batchSize) break;
    yield makeBatch(data, slice, options.length, options.align ?? 'right');
  }
}

/**
 * Splits a global batch into n shards with balanced real-event counts (greedy: longest rows
 * first, each to the lightest shard; ties by row, then shard index), so it is deterministic.
 * Rows keep their order inside a shard. With fewer rows than shards some shards are empty.
 */
export function shardBatch(batch: Batch, n: number): Batch[] {
  if (!(Number.isInteger(n) && n > 0)) throw new PantherError('E_ARGUMENT', `shard count must be a positive integer, got ${n}`, 'shardBatch');
  const L = batch.length;
  const weight = (r: number) => {
    let s = 0;
    for (let p = r * L; p < (r + 1) * L; p++) s += batch.mask[p];
    return s;
  };
  const rows = Array.from({ length: batch.rows }, (_, r) => ({ r, w: weight(r) })).sort((a, b) => b.w - a.w || a.r - b.r);
  const load = new Array<number>(n).fill(0);
  const assigned: number[][] = Array.from({ length: n }, () => []);
  for (const { r, w } of rows) {
    let best = 0;
    for (let s = 1; s < n; s++) if (load[s] < load[best]) best = s;
    assigned[best].push(r);
    load[best] += w;
  }
  return assigned.map((list) => takeRows(batch, list.sort((a, b) => a - b)));
}

function takeRows(batch: Batch, rows: number[]): Batch {
  const L = batch.length;
  const nProfile = batch.rows ? batch.profile.length / batch.rows : 0;
  const size = rows.length * L;
  const pick = <T extends Int32Array | Uint8Array | Int8Array | Float32Array>(src: T, width: number, make: (n: number) => T): T => {
    const out = make(rows.length * width);
    rows.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width), i * width));
    return out;
  };
  const targets = pick(batch.targets, L, (k) => new Int32Array(k));
  const mask = pick(batch.mask, L, (k) => new Uint8Array(k));
  let tokens = 0;
  for (let p = 0; p < size; p++) tokens += mask[p];
  const targetCount = rows.reduce((s, r) => s + windowTargets(batch.windows[r]).count, 0);
  return {
    rows: rows.length,
    length: L,
    align: batch.align,
    windows: rows.map((r) => batch.windows[r]),
    rowIndex: Int32Array.from(rows, (r) => batch.rowIndex[r]),
    user: Int32Array.from(rows, (r) => batch.user[r]),
    mask,
    attributes: batch.attributes.map((a) => pick(a, L, (k) => new Int32Array(k))),
    amountLog: pick(batch.amountLog, L, (k) => new Float32Array(k)),
    gapLog: pick(batch.gapLog, L, (k) => new Float32Array(k)),
    targets,
    targetLabels: pick(batch.targetLabels, L, (k) => new Int8Array(k)),
    profile: pick(batch.profile, nProfile, (k) => new Int32Array(k)),
    tokens,
    targetCount,
    globalTargetCount: batch.globalTargetCount,
  };
}

function checkLength(length: number): void {
  if (!(Number.isInteger(length) && length >= 1)) throw new PantherError('E_ARGUMENT', `window length must be a positive integer, got ${length}`, 'batching');
}
