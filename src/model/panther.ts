import { distinctTargets } from '../data/batching.js';
import { PantherError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { Linear } from '../nn/linear.js';
import { ParameterStore } from '../nn/module.js';
import { Rng } from '../nn/random.js';
import { attention } from '../tensor/ops/attention.js';
import { infoNCELoss, l2Normalize, l2NormalizeColumns } from '../tensor/ops/contrastive.js';
import { dilatedConv } from '../tensor/ops/conv.js';
import { dropout } from '../tensor/ops/dropout.js';
import { add, axpby, mul, reshape, scale } from '../tensor/ops/elementwise.js';
import { embedding } from '../tensor/ops/embedding.js';
import { gelu } from '../tensor/ops/gelu.js';
import { layerNorm } from '../tensor/ops/layernorm.js';
import { matmul, transpose } from '../tensor/ops/matmul.js';
import { prototypeMatch } from '../tensor/ops/prototype.js';
import { noGrad } from '../tensor/tape.js';
import { tensorFrom, tidy, type Tensor } from '../tensor/tensor.js';
import type { ModelConfig, ModelShape } from './config.js';
import { IGNORE_TARGET, lmHeadLoss, lmHeadScores } from './lm-head.js';

/**
 * One batch as the model reads it: B rows of L positions, right-aligned (padding first).
 * Attributes are the per-event input ids (one array per attribute vocabulary), targets the
 * next token at each position (0 where nothing is predicted).
 */
export interface ModelBatch {
  rows: number;
  length: number;
  mask: Uint8Array;
  attributes: Int32Array[];
  amountLog: Float32Array;
  gapLog: Float32Array;
  targets: Int32Array;
  /** [rows, profile fields]. */
  profile: Int32Array;
  /** Normalizer of the next-token loss (the global batch's target count under data parallelism). */
  globalTargetCount?: number;
  /** Each row's index in the global batch (dropout masks follow it); identity by default. */
  rowIndex?: Int32Array;
}

/** Training mode turns dropout on; its masks are a function of (seed, step, site, global row). */
export interface ForwardOptions {
  train?: boolean;
  step?: number;
}

/** Applies the model's dropout at one site of the network in training mode. */
type Dropper = (x: Tensor, site: number) => Tensor;

export interface ForwardResult {
  /** Hidden states after the final norm, [B * L, dModel]. */
  hidden: Tensor;
  /** Profile embedding [B, dModel] when the profile is enabled. */
  profile: Tensor | null;
  /** Per block, the prototype weights [B * L, K] when SPRM is enabled. */
  prototypeWeights: Tensor[];
}

export interface LossParts {
  total: Tensor;
  next: Tensor;
  contrastive: Tensor | null;
}

class Block {
  readonly ln1g: Tensor;
  readonly ln1b: Tensor;
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly convW: Tensor[] = [];
  readonly convB: Tensor[] = [];
  readonly prototypes: Tensor | null = null;
  /** LayerNorm of the prototypes under scaled-dot matching. */
  readonly protoNorm: { g: Tensor; b: Tensor } | null = null;
  /** Cross-attention matching: the query projection and the value prototypes (the keys are `prototypes`). */
  readonly protoAttention: { query: Linear; values: Tensor } | null = null;
  /** [heads * K, K]: averages cross-attention weights over heads; made on first use, kept until dispose. */
  private headAverage: Tensor | null = null;
  readonly sprmOut: Linear | null = null;
  readonly ln2g: Tensor | null = null;
  readonly ln2b: Tensor | null = null;
  readonly ff1: Linear | null = null;
  readonly ff2: Linear | null = null;

  constructor(store: ParameterStore, readonly name: string, readonly c: ModelConfig) {
    const d = c.dModel;
    this.ln1g = store.create(`${name}.ln1.weight`, [d], { kind: 'constant', value: 1 });
    this.ln1b = store.create(`${name}.ln1.bias`, [d], { kind: 'constant', value: 0 });
    this.q = new Linear(store, `${name}.attn.q`, d, d);
    // A key bias shifts every score of a row by the same amount, which softmax ignores: it
    // would only collect rounding noise for AdamW to amplify.
    this.k = new Linear(store, `${name}.attn.k`, d, d, { bias: false });
    this.v = new Linear(store, `${name}.attn.v`, d, d);
    this.o = new Linear(store, `${name}.attn.o`, d, d, { std: 0.02 / Math.sqrt(2 * c.layers) });
    if (c.sprm.enabled) {
      const K = c.sprm.kernelSize;
      c.sprm.dilations.forEach((dil, i) => {
        const shape = c.sprm.depthwise ? [K, d] : [K, d, d];
        const fanIn = c.sprm.depthwise ? K : K * d;
        this.convW.push(store.create(`${name}.sprm.conv${i}.weight`, shape, { kind: 'normal', std: 1 / Math.sqrt(fanIn * c.sprm.dilations.length) }));
        this.convB.push(store.create(`${name}.sprm.conv${i}.bias`, [d], { kind: 'constant', value: 0 }));
        void dil;
      });
      if (c.sprm.prototypes > 0) {
        this.prototypes = store.create(`${name}.sprm.prototypes`, [c.sprm.prototypes, d], { kind: 'normal', std: 0.5 });
        if (c.sprm.matching === 'scaled-dot') {
          this.protoNorm = {
            g: store.create(`${name}.sprm.prototypes_norm.weight`, [d], { kind: 'constant', value: 1 }),
            b: store.create(`${name}.sprm.prototypes_norm.bias`, [d], { kind: 'constant', value: 0 }),
          };
        }
        if (c.sprm.matching === 'attention') {
          this.protoAttention = {
            query: new Linear(store, `${name}.sprm.prototype_query`, d, d),
            values: store.create(`${name}.sprm.prototype_values`, [c.sprm.prototypes, d], { kind: 'normal', std: 0.5 }),
          };
        }
      }
      this.sprmOut = new Linear(store, `${name}.sprm.out`, d, d, { std: 0.02 / Math.sqrt(2 * c.layers) });
    }
    if (c.ffnMult > 0) {
      this.ln2g = store.create(`${name}.ln2.weight`, [d], { kind: 'constant', value: 1 });
      this.ln2b = store.create(`${name}.ln2.bias`, [d], { kind: 'constant', value: 0 });
      this.ff1 = new Linear(store, `${name}.ffn.in`, d, d * c.ffnMult);
      this.ff2 = new Linear(store, `${name}.ffn.out`, d * c.ffnMult, d, { std: 0.02 / Math.sqrt(2 * c.layers) });
    }
  }

  /** x [B, L, d] -> [B, L, d]. The SPRM reads the same normed input as attention, and the block adds their mean (or sum). */
  forward(x: Tensor, keyMask: Tensor, eventMask: Tensor | null, weights: Tensor[], drop: Dropper, site: number): Tensor {
    const c = this.c;
    const h = layerNorm(x, this.ln1g, this.ln1b);
    const a = drop(this.o.forward(attention(this.q.forward(h), this.k.forward(h), this.v.forward(h), { heads: c.heads, keyMask })), site);
    let mixed: Tensor;
    if (this.sprmOut) {
      // Local pattern aggregation, then prototype matching (either may be switched off).
      let l = h;
      if (this.convW.length > 0) {
        // The convolutions see zeros before a user's first event, as at the start of a row, so
        // a position's output does not depend on how much padding its row carries.
        const events = eventMask ? mul(h, eventMask) : h;
        let local: Tensor | null = null;
        c.sprm.dilations.forEach((dilation, i) => {
          const y = dilatedConv(events, this.convW[i], this.convB[i], { kernelSize: c.sprm.kernelSize, dilation, depthwise: c.sprm.depthwise });
          local = local ? add(local, y) : y;
        });
        const conv = gelu(local!);
        l = c.sprm.residual ? add(events, conv) : conv;
      }
      let fused = l;
      if (this.prototypes) {
        const { out, weights: w } = this.matchPrototypes(l, this.prototypes);
        weights.push(w);
        fused = add(l, out);
      }
      const s = drop(this.sprmOut.forward(fused), site + 1);
      const w = c.sprm.merge === 'sum' ? 1 : 0.5;
      mixed = axpby(a, s, w, w);
    } else {
      mixed = a;
    }
    let y = add(x, mixed);
    if (this.ff1 && this.ff2 && this.ln2g && this.ln2b) {
      y = add(y, drop(this.ff2.forward(gelu(this.ff1.forward(layerNorm(y, this.ln2g, this.ln2b)))), site + 2));
    }
    return y;
  }

  /** The prototype step on the local features l [B, L, d]; weights [B * L, K] (for cross-attention, the heads' mean). */
  private matchPrototypes(l: Tensor, prototypes: Tensor): { out: Tensor; weights: Tensor } {
    const c = this.c;
    if (this.protoNorm) {
      return prototypeMatch(l, layerNorm(prototypes, this.protoNorm.g, this.protoNorm.b), { temperature: Math.sqrt(c.dModel), similarity: 'dot' });
    }
    if (!this.protoAttention) return prototypeMatch(l, prototypes, { temperature: c.sprm.temperature });
    const H = c.heads;
    const { out, weights } = prototypeMatch(this.protoAttention.query.forward(l), prototypes, {
      temperature: Math.sqrt(c.dModel / H), similarity: 'dot', heads: H, values: this.protoAttention.values,
    });
    return { out, weights: H === 1 ? weights : this.headMean(weights) };
  }

  /** The mean over heads of weights [N, H, K], [N, K] (no tape: the weights are read, not trained through). */
  private headMean(weights: Tensor): Tensor {
    const [N, H, K] = weights.shape;
    if (!this.headAverage) {
      const m = new Float32Array(H * K * K);
      for (let h = 0; h < H; h++) for (let k = 0; k < K; k++) m[(h * K + k) * K + k] = 1 / H;
      this.headAverage = tensorFrom(weights.gpu, m, [H * K, K]).keep();
    }
    const average = this.headAverage;
    return noGrad(weights.gpu, () => matmul(reshape(weights, [N, H * K]), average));
  }

  dispose(): void {
    this.headAverage?.dispose();
    this.headAverage = null;
  }
}

/**
 * The PANTHER model (method.md): attribute and time embeddings, SPRM beside attention in
 * every pre-norm block, the user-profile embedding blended into every position and trained
 * contrastively, and a next-token head over the structured vocabulary. With `sprm` and
 * `profile` disabled it is the plain-transformer baseline.
 */
export class PantherModel {
  readonly store: ParameterStore;
  readonly attrEmb: Tensor[];
  readonly cont: Linear;
  readonly pos: Tensor;
  readonly blocks: Block[];
  readonly lnfg: Tensor;
  readonly lnfb: Tensor;
  readonly head: Tensor;
  readonly profEmb: Tensor[] = [];
  readonly profProj: Linear | null = null;
  readonly userFromSeq: Linear | null = null;
  readonly userFromProfile: Linear | null = null;

  constructor(readonly gpu: Gpu, readonly config: ModelConfig, readonly shape: ModelShape) {
    const c = config;
    if (c.dModel % c.heads !== 0) {
      throw new PantherError('E_CONFIG', `dModel ${c.dModel} is not divisible by heads ${c.heads}`, 'model');
    }
    this.store = new ParameterStore(gpu, new Rng(c.seed));
    const s = this.store;
    const d = c.dModel;
    this.attrEmb = shape.attributeVocab.map((n, i) => s.create(`embed.attr${i}`, [n, d], { kind: 'normal', std: 0.02 }));
    this.cont = new Linear(s, 'embed.continuous', 2, d);
    this.pos = s.create('embed.position', [shape.maxLength, d], { kind: 'normal', std: 0.02 });
    this.blocks = Array.from({ length: c.layers }, (_, i) => new Block(s, `block${i}`, c));
    this.lnfg = s.create('final_norm.weight', [d], { kind: 'constant', value: 1 });
    this.lnfb = s.create('final_norm.bias', [d], { kind: 'constant', value: 0 });
    this.head = s.create('head.weight', [d, shape.vocabSize], { kind: 'normal', std: 0.02 });
    if (c.profile.enabled && shape.profileVocab.length > 0) {
      this.profEmb = shape.profileVocab.map((n, i) => s.create(`profile.attr${i}`, [n, d], { kind: 'normal', std: 0.02 }));
      this.profProj = new Linear(s, 'profile.proj', d, d);
      this.userFromSeq = new Linear(s, 'user.from_sequence', d, c.profile.embedDim);
      this.userFromProfile = new Linear(s, 'user.from_profile', d, c.profile.embedDim, { bias: false });
    }
  }

  get profileEnabled(): boolean {
    return this.profProj !== null;
  }

  parameters(): Tensor[] {
    return this.store.list();
  }

  /**
   * Runs the backbone; recording on the tape when parameters require grad and grad is on.
   * Dropout is active only with `train`.
   */
  forward(batch: ModelBatch, opts: ForwardOptions = {}): ForwardResult {
    const { rows: B, length: L } = batch;
    const gpu = this.gpu;
    const d = this.config.dModel;
    if (L > this.shape.maxLength) throw new PantherError('E_SHAPE', `batch length ${L} exceeds the model's ${this.shape.maxLength}`, 'model');
    if (batch.attributes.length !== this.attrEmb.length) {
      throw new PantherError('E_SHAPE', `batch has ${batch.attributes.length} attributes, the model ${this.attrEmb.length}`, 'model');
    }
    const n = B * L;
    let x: Tensor | null = null;
    batch.attributes.forEach((ids, i) => {
      const e = embedding(this.attrEmb[i], ids, [B, L], { padId: 0 });
      x = x ? add(x, e) : e;
    });
    const contIn = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      contIn[2 * i] = batch.amountLog[i];
      contIn[2 * i + 1] = batch.gapLog[i];
    }
    x = add(x!, this.cont.forward(tensorFrom(gpu, contIn, [B, L, 2])));
    const positions = Int32Array.from({ length: n }, (_, i) => (i % L) + (this.shape.maxLength - L));
    x = add(x, embedding(this.pos, positions, [B, L]));
    let profile: Tensor | null = null;
    if (this.profProj) {
      const fields = this.profEmb.length;
      let pe: Tensor | null = null;
      this.profEmb.forEach((table, f) => {
        const ids = Int32Array.from({ length: B }, (_, r) => batch.profile[r * fields + f]);
        const e = embedding(table, ids, [B]);
        pe = pe ? add(pe, e) : e;
      });
      profile = this.profProj.forward(pe!);
      // Profile as positional encoding: every position gets (1 - blend) token + blend profile.
      const rowOf = Int32Array.from({ length: n }, (_, i) => Math.floor(i / L));
      const spread = embedding(profile, rowOf, [B, L]);
      x = axpby(x, spread, 1 - this.config.profile.blend, this.config.profile.blend);
    }
    const p = this.config.dropout;
    const globalRows = Uint32Array.from(batch.rowIndex ?? Array.from({ length: B }, (_, r) => r));
    const drop: Dropper = opts.train && p > 0
      ? (t, site) => dropout(t, { p, seed: dropoutSeed(this.config.seed, opts.step ?? 0, site), globalRows, rowStride: this.shape.maxLength * d })
      : (t) => t;
    x = drop(x, 0);
    const keyMask = tensorFrom(gpu, batch.mask, [B, L], 'u32');
    let eventMask: Tensor | null = null;
    if (this.config.sprm.enabled && this.config.sprm.dilations.length > 0) {
      const m = new Float32Array(n * d);
      for (let i = 0; i < n; i++) if (batch.mask[i]) m.fill(1, i * d, (i + 1) * d);
      eventMask = tensorFrom(gpu, m, [B, L, d]);
    }
    const prototypeWeights: Tensor[] = [];
    this.blocks.forEach((block, i) => {
      x = block.forward(x!, keyMask, eventMask, prototypeWeights, drop, 1 + 3 * i);
    });
    const hidden = reshape(layerNorm(x, this.lnfg, this.lnfb), [n, d]);
    return { hidden, profile, prototypeWeights };
  }

  /** Next-token loss (+ weighted contrastive loss on the user embedding when enabled). */
  loss(batch: ModelBatch, opts: ForwardOptions = {}): LossParts {
    return this.lossOf(batch, this.forward(batch, opts));
  }

  lossOf(batch: ModelBatch, f: ForwardResult): LossParts {
    const next = this.nextTokenLoss(f.hidden, batch.targets, batch.globalTargetCount);
    if (!this.profileEnabled || !f.profile || this.config.profile.contrastiveWeight === 0) {
      return { total: next, next, contrastive: null };
    }
    const positives = profilePositives(batch.profile, batch.rows, this.profEmb.length, this.config.profile.positiveFields);
    if (!positives.some((v) => v)) return { total: next, next, contrastive: null };
    const z = this.userEmbedding(f, batch);
    const contrastive = infoNCELoss(z, null, positives, this.config.profile.temperature);
    return { total: axpby(next, contrastive, 1, this.config.profile.contrastiveWeight), next, contrastive };
  }

  /** The user-profile embedding [B, embedDim]: the last position's state fused with the profile. */
  userEmbedding(f: ForwardResult, batch: ModelBatch): Tensor {
    if (!this.userFromSeq || !this.userFromProfile || !f.profile) {
      throw new PantherError('E_CONFIG', 'the user embedding needs the profile to be enabled', 'model');
    }
    const last = Int32Array.from({ length: batch.rows }, (_, r) => r * batch.length + batch.length - 1);
    const h = embedding(f.hidden, last, [batch.rows]);
    return add(this.userFromSeq.forward(h), this.userFromProfile.forward(f.profile));
  }

  /** Scores over the whole vocabulary for the last position of every row, [B, V]. */
  lastPositionScores(f: ForwardResult, batch: ModelBatch): Tensor {
    const last = Int32Array.from({ length: batch.rows }, (_, r) => r * batch.length + batch.length - 1);
    return this.scores(embedding(f.hidden, last, [batch.rows]));
  }

  /** What multiplies the head, [N, d]: the hidden states, or for a cosine head their unit vectors over the temperature. */
  headInput(h: Tensor): Tensor {
    const c = this.config.head;
    return c.cosine ? scale(l2Normalize(h), 1 / c.temperature) : h;
  }

  /** The head as scored, [d, V] (only the columns of `tokens`, [d, C], when given): unit columns for a cosine head. */
  headWeights(tokens?: Int32Array): Tensor {
    if (!this.config.head.cosine && !tokens) return this.head;
    if (!tokens) return l2NormalizeColumns(this.head);
    const rows = embedding(transpose(this.head), tokens, [tokens.length]);
    return transpose(this.config.head.cosine ? l2Normalize(rows) : rows);
  }

  /**
   * Mean next-token cross-entropy of hidden states [N, d] over the positions with a target
   * (sum / normalizer when given): against the whole vocabulary, or against in-batch
   * negatives, the distinct targets of these rows or the given `candidates` (those of the
   * global batch, so that data-parallel shards add up to the single-process step).
   */
  nextTokenLoss(hidden: Tensor, targets: Int32Array, normalizer?: number, candidates?: Int32Array): Tensor {
    const x = this.headInput(hidden);
    if (this.config.head.loss === 'full') return lmHeadLoss(x, this.headWeights(), targets, { normalizer });
    const c = inBatchCandidates(targets, candidates);
    return lmHeadLoss(x, this.headWeights(c.tokens), c.targets, { normalizer });
  }

  /** Scores over the whole vocabulary of hidden states h [B, d], [B, V] (no tape): log-probabilities up to each row's constant. */
  scores(h: Tensor): Tensor {
    return this.scoresOfInput(noGrad(this.gpu, () => this.headInput(h)));
  }

  /** `scores` from an already computed `headInput` (a caller that needs both computes it once). */
  scoresOfInput(input: Tensor): Tensor {
    return noGrad(this.gpu, () => lmHeadScores(input, this.headWeights()));
  }

  /** The head as scored, [d, V] row-major on the host (what `scores` multiplies `headInput` with). */
  async servingHead(): Promise<Float32Array> {
    const w = noGrad(this.gpu, () => tidy(this.gpu, () => this.headWeights().keep()));
    try {
      return await w.readF32();
    } finally {
      if (w !== this.head) w.dispose();
    }
  }

  dispose(): void {
    for (const block of this.blocks) block.dispose();
    this.store.dispose();
  }
}

/**
 * In-batch negatives: the distinct targets of a batch (or the given superset of them, e.g.
 * the global batch's), ascending after <pad> (which stays column 0, so padding is still
 * ignored), and each position's target as a column index.
 */
export function inBatchCandidates(targets: Int32Array, among: Int32Array = distinctTargets(targets)): { tokens: Int32Array; targets: Int32Array } {
  const tokens = Int32Array.from([IGNORE_TARGET, ...among]);
  const column = new Map<number, number>();
  tokens.forEach((t, i) => column.set(t, i));
  const columns = Int32Array.from(targets, (t) => column.get(t) ?? -1);
  const missing = columns.indexOf(-1);
  if (missing >= 0) throw new PantherError('E_ARGUMENT', `target ${targets[missing]} at position ${missing} is not among the ${among.length} candidates`, 'inBatchCandidates');
  return { tokens, targets: columns };
}

/** A distinct 32-bit seed per (model seed, step, site). */
export function dropoutSeed(seed: number, step: number, site: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [step, site]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return h;
}

/**
 * Contrastive positives from demographics: users whose first `fields` profile values are all
 * known and equal (the method's "similar background"), never a user with itself. [B, B].
 */
export function profilePositives(profile: Int32Array, rows: number, fieldCount: number, fields: number): Uint32Array {
  const k = Math.min(fields, fieldCount);
  const mask = new Uint32Array(rows * rows);
  if (k === 0) return mask;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rows; j++) {
      if (i === j) continue;
      let same = true;
      for (let f = 0; f < k && same; f++) {
        const a = profile[i * fieldCount + f];
        // 0 <pad>, 1 <unk>, 2 <none> are not evidence of similarity.
        same = a > 2 && a === profile[j * fieldCount + f];
      }
      if (same) mask[i * rows + j] = 1;
    }
  }
  return mask;
}
