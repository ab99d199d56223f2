import { trainingWindows, type Window } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';
import { PantherError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import type { ModelConfig } from '../model/config.js';
import { PantherModel, profilePositives } from '../model/panther.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { infoNCELoss } from '../tensor/ops/contrastive.js';
import { axpby } from '../tensor/ops/elementwise.js';
import { AdamW } from '../tensor/ops/optim.js';
import { clearTape } from '../tensor/tape.js';
import { contextOf, tensorFrom, type Tensor } from '../tensor/tensor.js';
import type { HostTrainingState } from '../train/checkpoint.js';
import type { TrainConfig } from '../train/config.js';
import { evaluateRanking, type Evaluation } from '../train/evaluate.js';
import { modelShapeOf, trainingOptimizer } from '../train/trainer.js';
import type { Shard } from './plan.js';
import { spliceRows } from './splice.js';
import { parameterChecksum } from './state.js';

export interface ManifestEntry {
  name: string;
  shape: number[];
}

/** Gathers every rank's user-embedding rows (flattened, rank order) for the contrastive loss. */
export type GatherRows = (mine: Float32Array, lengths: number[]) => Promise<Float32Array[]>;

/** Where each parameter's gradient sits in the flat all-reduce buffer, and the buckets over it. */
export interface GradientLayout {
  offsets: number[];
  /** Gradient elements; the P "has a gradient" flags follow them. */
  total: number;
  buckets: { start: number; end: number }[];
}

/**
 * Parameters in store order cut into buckets of about `bucketBytes` (a parameter is never
 * split); the per-parameter flags form the last bucket. Summing the flags tells every
 * replica which parameters received a gradient anywhere, as in a single-process step.
 */
export function gradientLayout(sizes: readonly number[], bucketBytes: number): GradientLayout {
  const offsets: number[] = [];
  const buckets: { start: number; end: number }[] = [];
  let total = 0;
  let start = 0;
  for (const n of sizes) {
    if (total > start && (total - start + n) * 4 > bucketBytes) {
      buckets.push({ start, end: total });
      start = total;
    }
    offsets.push(total);
    total += n;
  }
  if (total > start) buckets.push({ start, end: total });
  buckets.push({ start: total, end: total + sizes.length });
  return { offsets, total, buckets };
}

/** Sends one bucket of the flat gradient buffer through the all-reduce, in place. */
export type ReduceBucket = (bucket: number, values: Float32Array) => Promise<void>;

/**
 * The flat gradient buffer of one step, filled and reduced bucket by bucket while the
 * backward pass runs: as soon as backward has finished every parameter of a bucket, their
 * gradients are read back (the readback flushes what is recorded so far, so the GPU starts
 * on it) and the bucket goes into the all-reduce while the GPU computes the rest. The
 * flags bucket goes last, once every parameter is known to have a gradient or not. The
 * values reduced are the same as when every bucket starts after backward; only the timing
 * differs.
 */
export class GradientStream {
  readonly flat: Float32Array;
  private readonly index = new Map<Tensor, number>();
  private readonly bucketOf: number[];
  /** Parameter indices of each gradient bucket. */
  private readonly members: number[][];
  private readonly remaining: number[];
  private readonly reads: (Promise<void> | null)[];
  private readonly started: Promise<void>[] = [];

  constructor(private readonly params: readonly Tensor[], private readonly layout: GradientLayout, private readonly reduce: ReduceBucket) {
    this.flat = new Float32Array(layout.total + params.length);
    params.forEach((p, i) => this.index.set(p, i));
    const gradientBuckets = layout.buckets.length - 1;
    this.bucketOf = layout.offsets.map((o) => layout.buckets.findIndex((b, j) => j < gradientBuckets && o >= b.start && o < b.end));
    this.members = Array.from({ length: gradientBuckets }, () => []);
    params.forEach((p, i) => {
      // An empty parameter sits at the next one's offset; it belongs to no bucket.
      if (p.size > 0 && this.bucketOf[i] >= 0) this.members[this.bucketOf[i]].push(i);
    });
    this.remaining = this.members.map((m) => m.length);
    this.reads = params.map(() => null);
  }

  /** Backward's leaf hook: parameter `t`'s gradient is final. */
  readonly leafDone = (t: Tensor): void => {
    const i = this.index.get(t);
    if (i !== undefined) this.finishParameter(i);
  };

  private finishParameter(i: number): void {
    if (this.reads[i]) return;
    const p = this.params[i];
    const { offsets, total } = this.layout;
    const g = p.grad;
    this.reads[i] = g
      ? g.readF32().then((values) => {
        this.flat.set(values, offsets[i]);
        this.flat[total + i] = 1;
      })
      : Promise.resolve();
    const b = this.bucketOf[i];
    if (p.size > 0 && b >= 0 && --this.remaining[b] === 0) this.startBucket(b);
  }

  private startBucket(b: number): void {
    const { start, end } = this.layout.buckets[b];
    this.track(Promise.all(this.members[b].map((i) => this.reads[i])).then(() => this.reduce(b, this.flat.subarray(start, end))));
  }

  private track(p: Promise<void>): void {
    // Rejections surface from finish(); until then they must not count as unhandled.
    p.catch(() => undefined);
    this.started.push(p);
  }

  /**
   * After backward: parameters it never reached have no gradient; their buckets and the
   * flags bucket start now. Resolves with the reduced buffer when every bucket is back.
   */
  async finish(): Promise<Float32Array> {
    for (let i = 0; i < this.params.length; i++) this.finishParameter(i);
    const flags = this.layout.buckets.length - 1;
    const { start, end } = this.layout.buckets[flags];
    this.track(Promise.all(this.reads).then(() => this.reduce(flags, this.flat.subarray(start, end))));
    await Promise.all(this.started);
    return this.flat;
  }
}

/** Runs `fn` with a tensor scope that stays open across awaits; disposes what it made. */
async function scoped<T>(gpu: Gpu, fn: () => Promise<T>): Promise<T> {
  const ctx = contextOf(gpu);
  const scope = new Set<Tensor>();
  ctx.scopes.push(scope);
  try {
    return await fn();
  } finally {
    const i = ctx.scopes.lastIndexOf(scope);
    if (i >= 0) ctx.scopes.splice(i, 1);
    for (const t of scope) t.dispose();
    clearTape(gpu);
  }
}

/**
 * One worker's full model replica with its optimizer, built exactly like the single-process
 * Trainer's (same seed, same initialization, same AdamW), and the pieces of a data-parallel
 * step: forward and backward on a shard with the global loss, the flat gradient buffer for
 * the all-reduce, and the identical update.
 */
export class Replica {
  readonly model: PantherModel;
  readonly optimizer: AdamW;
  readonly windows: Window[];
  readonly params: Tensor[];
  readonly names: string[];
  readonly layout: GradientLayout;

  constructor(readonly gpu: Gpu, readonly data: PreparedData, readonly config: ModelConfig, readonly train: TrainConfig, readonly maxLength: number, bucketBytes: number) {
    this.model = new PantherModel(gpu, config, modelShapeOf(data, maxLength));
    this.optimizer = trainingOptimizer(gpu, train);
    this.windows = trainingWindows(data, maxLength, train.windowContext);
    this.names = [...this.model.store.params.keys()];
    this.params = this.names.map((n) => this.model.store.get(n));
    this.layout = gradientLayout(this.params.map((p) => p.size), bucketBytes);
  }

  manifest(): ManifestEntry[] {
    return this.names.map((name, i) => ({ name, shape: [...this.params[i].shape] }));
  }

  /** sha256 over every parameter's bytes in store order. */
  async checksum(): Promise<string> {
    const values = await Promise.all(this.params.map((p) => p.readF32()));
    return parameterChecksum(values.map((v, i) => [this.names[i], v]));
  }

  /**
   * Forward and backward of this rank's rows. The next-token loss is normalized by the
   * global batch's target count, so the shards' losses and gradients add up to the global
   * ones. The contrastive InfoNCE term is the global one: every rank gathers all user
   * embeddings, computes the same loss, and backpropagates into its own rows only.
   * `stepIndex` is the Trainer's 0-based step (it seeds dropout).
   */
  async computeShard(shard: Shard, gather: GatherRows, stepIndex: number, stream?: GradientStream): Promise<{ next: number; contrastive: number | null }> {
    const { model } = this;
    const pc = this.config.profile;
    const B = shard.globalRows;
    const positives = model.profileEnabled && pc.contrastiveWeight !== 0
      ? profilePositives(shard.globalProfile, B, model.profEmb.length, pc.positiveFields)
      : null;
    const contrastiveOn = positives !== null && positives.some((v) => v);
    const E = pc.embedDim;
    const lengths = shard.counts.map((c) => c * E);
    const batch = shard.batch;
    if (!batch) {
      // No rows here this step: still take part in the collective, contribute no gradient.
      if (contrastiveOn) await gather(new Float32Array(0), lengths);
      return { next: 0, contrastive: null };
    }
    return scoped(this.gpu, async () => {
      // Training mode as in the Trainer: dropout masks follow (seed, step, global row), not the shard.
      const f = model.forward(batch, { train: true, step: stepIndex });
      const next = model.nextTokenLoss(f.hidden, batch.targets, shard.globalTargetCount, model.config.head.loss === 'in-batch' ? shard.globalCandidates : undefined);
      let total = next;
      let contrastive: Tensor | null = null;
      if (contrastiveOn) {
        const z = model.userEmbedding(f, batch);
        const parts = await gather(await z.readF32(), lengths);
        const all = new Float32Array(B * E);
        const seen = new Array<number>(parts.length).fill(0);
        // Rows of the global batch in order, each from the rank that computed it.
        for (let g = 0; g < B; g++) {
          const r = shard.assignment[g];
          all.set(parts[r].subarray(seen[r] * E, (seen[r] + 1) * E), g * E);
          seen[r]++;
        }
        const Z = spliceRows(tensorFrom(this.gpu, all, [B, E]), z, shard.rows);
        contrastive = infoNCELoss(Z, null, positives!, pc.temperature);
        total = axpby(next, contrastive, 1, pc.contrastiveWeight);
      }
      backward(total, undefined, stream?.leafDone);
      const [n, c] = await Promise.all([next.read(), contrastive ? contrastive.read() : Promise.resolve(null)]);
      return { next: n[0], contrastive: c ? c[0] : null };
    });
  }

  /** A step's gradient buffer in the flat layout, each bucket handed to `reduce` as soon as backward has finished it. */
  gradientStream(reduce: ReduceBucket): GradientStream {
    return new GradientStream(this.params, this.layout, reduce);
  }

  /** Installs the summed gradients; a parameter no replica gave a gradient to gets none. */
  setGradients(flat: Float32Array): void {
    const { offsets, total } = this.layout;
    if (flat.length !== total + this.params.length) throw new PantherError('E_SHAPE', `${flat.length} gradient values, the layout has ${total + this.params.length}`, 'Replica.setGradients');
    this.params.forEach((p, i) => {
      const sum = flat.subarray(offsets[i], offsets[i] + p.size);
      if (flat[total + i] > 0) {
        if (p.grad) p.grad.write(sum);
        else p.grad = tensorFrom(this.gpu, sum, p.shape, 'f32', `${p.name}.grad`).keep();
      } else if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    });
  }

  /** The AdamW step of the Trainer (clipping on the global norm of the summed gradients); returns the norm. */
  async apply(lr: number, maxGradNorm: number): Promise<number | null> {
    const norm = this.optimizer.step(this.params, { maxGradNorm, lr });
    zeroGrad(this.params);
    return norm ? (await norm.read())[0] : null;
  }

  discard(): void {
    zeroGrad(this.params);
  }

  async exportState(withOptimizer: boolean): Promise<HostTrainingState> {
    const host: HostTrainingState = { params: new Map(), optimizer: withOptimizer ? { stepCount: this.optimizer.stepCount, states: new Map() } : null };
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i];
      host.params.set(this.names[i], { data: await p.readF32(), shape: [...p.shape] });
      if (withOptimizer) {
        const s = this.optimizer.stateOf(p);
        host.optimizer!.states.set(this.names[i], { m: await s.m.readF32(), v: await s.v.readF32(), step: s.step });
      }
    }
    return host;
  }

  importState(host: HostTrainingState): void {
    this.params.forEach((p, i) => {
      const name = this.names[i];
      const t = host.params.get(name);
      if (!t || t.data.length !== p.size) throw new PantherError('E_SHAPE', `state for '${name}' is missing or has the wrong size`, 'Replica.importState');
      p.write(t.data);
      if (host.optimizer) {
        const s = host.optimizer.states.get(name);
        if (!s) throw new PantherError('E_ARGUMENT', `no optimizer state for '${name}'`, 'Replica.importState');
        const st = this.optimizer.stateOf(p);
        st.m.write(s.m);
        st.v.write(s.v);
        st.step = s.step;
      }
    });
    if (host.optimizer) this.optimizer.stepCount = host.optimizer.stepCount;
  }

  evaluate(role: 'valid' | 'test', limit: number | null, batchSize: number): Promise<Evaluation> {
    return evaluateRanking(this.model, this.data, { role, length: this.maxLength, batchSize, limit: limit ?? undefined });
  }

  /**
   * Compiles the step's kernels before the worker reports ready (pipeline creation blocks
   * the event loop, and heartbeats with it): one forward and backward on a few windows,
   * discarded, and an optimizer step on scratch tensors.
   */
  async warmUp(shard: Shard): Promise<void> {
    await this.computeShard(shard, async (mine) => [mine], 0);
    this.discard();
    const scratch = [4, 3].map((n) => {
      const t = tensorFrom(this.gpu, new Float32Array(n), [n]).keep().requireGrad();
      t.grad = tensorFrom(this.gpu, Float32Array.from({ length: n }, (_, i) => i + 1), [n]).keep();
      return t;
    });
    const opt = new AdamW(this.gpu, { lr: 1e-3 });
    opt.step(scratch, { maxGradNorm: 1 });
    await this.gpu.sync();
    opt.dispose();
    for (const t of scratch) t.dispose();
  }

  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}
