/**
 * A tiny next-token model built from the kernel library's ops, its synthetic task and its
 * float64 CPU training step: the forward composed from the reference forwards and the
 * backward composed by hand from the reference backwards (chain rule, in reverse order).
 *
 *   x      = embedding(table, ids)                      [B, L, D]
 *   c      = dilatedConv(x, convW, convB)               [B, L, D]   depthwise, causal
 *   a      = attention(c Wq, c Wk, c Wv, keyMask)       [B, L, D]
 *   p      = prototypeMatch(a, prototypes).out          [B, L, D]
 *   logits = (a + p) Wout                               [B L, V]
 *   loss   = crossEntropy(logits, targets)              mean over the counted rows
 */
import { attentionBackwardRef, attentionRef, type AttentionRefShape } from '../../src/reference/attention.js';
import { dilatedConvBackwardRef, dilatedConvRef, type ConvRefDims } from '../../src/reference/conv.js';
import { crossEntropyBackwardRef, crossEntropyRef } from '../../src/reference/cross_entropy.js';
import { embeddingBackwardRef, embeddingRef } from '../../src/reference/embedding.js';
import { matmulRef } from '../../src/reference/linalg.js';
import { prototypeMatchBackwardRef, prototypeMatchRef, type PrototypeRefDims } from '../../src/reference/prototype.js';
import { randn } from '../support/numeric.js';

export interface TinyModelConfig {
  B: number;
  L: number;
  /** Vocabulary, padding token included. */
  V: number;
  D: number;
  heads: number;
  kernelSize: number;
  dilation: number;
  prototypes: number;
  temperature: number;
  /** Token of padded positions: embeds to zeros, masked as a key. */
  padId: number;
  /** Target of rows left out of the loss. */
  ignoreIndex: number;
  /** Length of the one sequence shorter than L (right-padded). */
  shortLength: number;
  /** Plain SGD step size. */
  lr: number;
  steps: number;
}

export const TINY_MODEL: TinyModelConfig = {
  B: 4, L: 12, V: 11, D: 8, heads: 2, kernelSize: 3, dilation: 2, prototypes: 4, temperature: 0.5,
  padId: 0, ignoreIndex: -1, shortLength: 9, lr: 0.3, steps: 18,
};

export const PARAM_NAMES = ['table', 'convW', 'convB', 'wq', 'wk', 'wv', 'prototypes', 'wout'] as const;
export type ParamName = (typeof PARAM_NAMES)[number];
export type TinyParams<T> = Record<ParamName, T>;

export function paramShapes(c: TinyModelConfig): TinyParams<number[]> {
  return {
    table: [c.V, c.D], convW: [c.kernelSize, c.D], convB: [c.D],
    wq: [c.D, c.D], wk: [c.D, c.D], wv: [c.D, c.D],
    prototypes: [c.prototypes, c.D], wout: [c.D, c.V],
  };
}

/** Seeded float32 initial values, the same for both paths. */
export function initialParams(c: TinyModelConfig, seed: number): TinyParams<Float32Array> {
  const shapes = paramShapes(c);
  const scales: TinyParams<number> = {
    table: 1, convW: 1 / Math.sqrt(c.kernelSize), convB: 0.1,
    wq: 1 / Math.sqrt(c.D), wk: 1 / Math.sqrt(c.D), wv: 1 / Math.sqrt(c.D),
    prototypes: 1, wout: 1 / Math.sqrt(c.D),
  };
  const out = {} as TinyParams<Float32Array>;
  PARAM_NAMES.forEach((name, i) => {
    out[name] = randn(shapes[name].reduce((a, b) => a * b, 1), seed + 101 * i, scales[name]);
  });
  return out;
}

export interface TinyBatch {
  /** [B, L] input tokens, padId past a sequence's end. */
  ids: Int32Array;
  /** [B L] next tokens, ignoreIndex where there is none. */
  targets: Int32Array;
  /** [B, L] 1 for real tokens, 0 for padding. */
  keyMask: Uint32Array;
}

/**
 * Each sequence cycles through one of two disjoint 5-token patterns from its own offset, so
 * the next token is a function of the current one; the last sequence stops early.
 */
export function tinyBatch(c: TinyModelConfig): TinyBatch {
  const patterns = [[1, 3, 5, 7, 9], [2, 4, 6, 8, 10]];
  const ids = new Int32Array(c.B * c.L);
  const targets = new Int32Array(c.B * c.L);
  const keyMask = new Uint32Array(c.B * c.L);
  for (let b = 0; b < c.B; b++) {
    const pattern = patterns[b % patterns.length];
    const length = b === c.B - 1 ? c.shortLength : c.L;
    const token = (t: number) => pattern[(b + t) % pattern.length];
    for (let t = 0; t < c.L; t++) {
      const n = b * c.L + t;
      ids[n] = t < length ? token(t) : c.padId;
      keyMask[n] = t < length ? 1 : 0;
      targets[n] = t + 1 < length ? token(t + 1) : c.ignoreIndex;
    }
  }
  return { ids, targets, keyMask };
}

function addInto(into: Float64Array, add: ArrayLike<number>): Float64Array {
  for (let i = 0; i < into.length; i++) into[i] += add[i];
  return into;
}

/** Loss and gradients of every parameter, in float64. */
export function referenceLossAndGrads(
  c: TinyModelConfig, P: TinyParams<Float64Array>, batch: TinyBatch,
): { loss: number; grads: TinyParams<Float64Array> } {
  const N = c.B * c.L;
  const { D, V } = c;
  const conv: ConvRefDims = { B: c.B, L: c.L, Cin: D, Cout: D, K: c.kernelSize, dilation: c.dilation, depthwise: true };
  const attn: AttentionRefShape = { B: c.B, L: c.L, H: c.heads, D: D / c.heads, keyMask: batch.keyMask };
  const proto: PrototypeRefDims = { N, D, K: c.prototypes, temperature: c.temperature };

  const x = embeddingRef(P.table, V, D, batch.ids, c.padId);
  const conved = dilatedConvRef(x, P.convW, P.convB, conv);
  const q = matmulRef(conved, P.wq, N, D, D);
  const k = matmulRef(conved, P.wk, N, D, D);
  const v = matmulRef(conved, P.wv, N, D, D);
  const a = attentionRef(q, k, v, attn).out;
  const p = prototypeMatchRef(a, P.prototypes, proto).out;
  const h = addInto(Float64Array.from(a), p);
  const logits = matmulRef(h, P.wout, N, V, D);
  const loss = crossEntropyRef(logits, batch.targets, N, V, c.ignoreIndex).loss;

  const dLogits = crossEntropyBackwardRef(logits, batch.targets, N, V, 1, c.ignoreIndex);
  const wout = matmulRef(h, dLogits, D, V, N, { transA: true });
  const dh = matmulRef(dLogits, P.wout, N, D, V, { transB: true });
  const protoGrads = prototypeMatchBackwardRef(a, P.prototypes, dh, null, proto);
  // a feeds the residual sum directly and the prototype match.
  const da = addInto(Float64Array.from(dh), protoGrads.dx);
  const attnGrads = attentionBackwardRef(q, k, v, da, attn);
  const dConved = matmulRef(attnGrads.dq, P.wq, N, D, D, { transB: true });
  addInto(dConved, matmulRef(attnGrads.dk, P.wk, N, D, D, { transB: true }));
  addInto(dConved, matmulRef(attnGrads.dv, P.wv, N, D, D, { transB: true }));
  const convGrads = dilatedConvBackwardRef(x, P.convW, dConved, conv);
  return {
    loss,
    grads: {
      table: embeddingBackwardRef(convGrads.dx, V, D, batch.ids, c.padId),
      convW: convGrads.dw,
      convB: convGrads.dbias,
      wq: matmulRef(conved, attnGrads.dq, D, D, N, { transA: true }),
      wk: matmulRef(conved, attnGrads.dk, D, D, N, { transA: true }),
      wv: matmulRef(conved, attnGrads.dv, D, D, N, { transA: true }),
      prototypes: protoGrads.dP,
      wout,
    },
  };
}

/** p <- p - lr g for every parameter, in place. */
export function sgdStepRef(P: TinyParams<Float64Array>, grads: TinyParams<Float64Array>, lr: number): void {
  for (const name of PARAM_NAMES) {
    const p = P[name];
    const g = grads[name];
    for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
  }
}
