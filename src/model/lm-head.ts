import { PantherError } from '../errors.js';
import { crossEntropyBackward, crossEntropyRows } from '../tensor/ops/cross_entropy.js';
import { axpyInPlace, fillInPlace } from '../tensor/ops/elementwise.js';
import { embedding } from '../tensor/ops/embedding.js';
import { matmul, relayoutRaw, roundUp4 } from '../tensor/ops/matmul.js';
import { maskedMean } from '../tensor/ops/reduce.js';
import { copyRowsInto } from '../tensor/ops/rows.js';
import { isRecording, noGrad, record } from '../tensor/tape.js';
import { empty, tensorFrom, tidy, type Tensor } from '../tensor/tensor.js';

/** Logits of one chunk stay under this many bytes (well inside any adapter's binding limit). */
const CHUNK_BYTES = 32 * 1024 * 1024;

/** The backward pass reuses the forward's logits while all of them fit in this many bytes. */
const KEEP_LOGITS_BYTES = 256 * 1024 * 1024;

/** Targets equal to 0 (<pad>) are positions with nothing to predict. */
export const IGNORE_TARGET = 0;

/** Rows per chunk of logits [rows, V] under the size limit: a multiple of 4 (at least 4). */
function chunkRows(N: number, V: number, maxBinding: number): number {
  const fit = Math.floor(Math.min(CHUNK_BYTES, maxBinding) / (4 * V));
  return Math.max(4, Math.min(roundUp4(N), Math.floor(fit / 4) * 4));
}

/**
 * Mean next-token cross-entropy of hidden states h [N, d] through the vocabulary head
 * W [d, V], over the rows whose target is not <pad>, divided by `normalizer` when given
 * (the global batch's target count, so that data-parallel shards add up exactly).
 *
 * Rows go through in chunks (each chunk's logits stay inside one binding). The backward pass
 * reuses the forward's logits when all of them fit in `keepLogitsBytes` (256 MiB by default),
 * and otherwise recomputes each chunk's logits, so the [N, V] logits are never held whole.
 */
export function lmHeadLoss(
  h: Tensor, W: Tensor, targets: Int32Array, opts: { normalizer?: number; chunkRows?: number; keepLogitsBytes?: number } = {},
): Tensor {
  const op = 'lmHeadLoss';
  if (h.shape.length !== 2 || W.shape.length !== 2 || h.shape[1] !== W.shape[0]) {
    throw new PantherError('E_SHAPE', `hidden [${h.shape}] and head [${W.shape}] do not chain`, op);
  }
  const [N] = h.shape;
  const V = W.shape[1];
  if (targets.length !== N) throw new PantherError('E_SHAPE', `${targets.length} targets for ${N} rows`, op);
  // Padding predicts nothing: only rows with a target go through the head (short sequences
  // in long windows are mostly padding, and the head is the step's biggest matmul).
  let valid = 0;
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new PantherError('E_ARGUMENT', `target at row ${r} is ${t}, outside [0, ${V})`, op);
    if (t !== IGNORE_TARGET) valid++;
  }
  if (valid > 0 && valid < N) {
    const rows = new Int32Array(valid);
    for (let i = 0, k = 0; i < N; i++) if (targets[i] !== IGNORE_TARGET) rows[k++] = i;
    return lmHeadLoss(embedding(h, rows, [valid]), W, Int32Array.from(rows, (i) => targets[i]), opts);
  }
  const gpu = h.gpu;
  const d = h.shape[1];
  // The matmuls and the cross-entropy run on vec4-aligned shapes: chunks of a multiple of 4
  // rows (zero rows that predict nothing) against the head padded to Vp columns (zeros, not
  // read as classes). Unaligned [rows, V] logits would be copied into aligned ones and back
  // on every matmul, the step's biggest copies.
  const Vp = roundUp4(V);
  const rowsPer = roundUp4(opts.chunkRows ?? chunkRows(N, Vp, gpu.maxStorageBinding));
  // Every upload comes before the first dispatch (a write between dispatches splits the pass),
  // and the backward pass reads the same target tensors.
  const chunks: { start: number; count: number; rows: number; targets: Tensor }[] = [];
  for (let start = 0; start < N; start += rowsPer) {
    const count = Math.min(rowsPer, N - start);
    const padded = new Int32Array(roundUp4(count)).fill(IGNORE_TARGET);
    padded.set(targets.subarray(start, start + count));
    chunks.push({ start, count, rows: padded.length, targets: tensorFrom(gpu, padded, [padded.length], 'i32') });
  }
  const normalizer = opts.normalizer === undefined ? null : tensorFrom(gpu, [opts.normalizer], [1]);
  const chunkInput = (c: (typeof chunks)[number]) => {
    const hc = empty(gpu, [c.rows, d]);
    if (c.rows !== c.count) fillInPlace(hc, 0);
    copyRowsInto(h, hc, { rows: c.count, srcOffset: c.start });
    return hc;
  };
  const lossRows = empty(gpu, [N, 1]);
  const weightRows = empty(gpu, [N, 1]);
  // What the backward pass reads: each chunk's log-sum-exps, the padded head, and, while they
  // fit the budget, the chunks' inputs and logits (else it computes them again). They belong to
  // the caller's scope (as every op's saved activations), and the backward pass frees each as
  // soon as it is done with it.
  const recording = isRecording(gpu, [h, W]);
  const keepLogits = recording && chunks.reduce((n, c) => n + c.rows, 0) * Vp * 4 <= (opts.keepLogitsBytes ?? KEEP_LOGITS_BYTES);
  const saved = noGrad(gpu, () =>
    tidy(gpu, () => {
      const Wp = Vp === V ? W : relayoutRaw(W, 1, d, V, { dstCols: Vp }).view([d, Vp]);
      const perChunk = chunks.map((c) =>
        tidy(gpu, () => {
          const hc = chunkInput(c);
          const logits = matmul(hc, Wp);
          const r = crossEntropyRows(logits, c.targets, { ignoreIndex: IGNORE_TARGET, classes: V });
          copyRowsInto(r.loss.view([c.rows, 1]), lossRows, { rows: c.count, dstOffset: c.start });
          copyRowsInto(r.weight.view([c.rows, 1]), weightRows, { rows: c.count, dstOffset: c.start });
          return recording ? { lse: r.lse, hc: keepLogits ? hc : null, logits: keepLogits ? logits : null } : null;
        }),
      );
      return { Wp, perChunk };
    }),
  );
  const { mean, weightSum } = maskedMean(lossRows, weightRows);
  lossRows.dispose();
  weightRows.dispose();
  let loss = mean;
  let count = weightSum;
  if (opts.normalizer !== undefined) {
    // sum / normalizer = mean * count / normalizer: the count (valid) is known on the host here.
    loss = empty(gpu, [1]);
    axpyInPlace(fillInPlace(loss, 0), mean, valid / Math.max(opts.normalizer, 1), 0);
    mean.dispose();
    count.dispose();
    count = normalizer!;
  }
  if (!recording) {
    if (saved.Wp !== W) saved.Wp.dispose();
    count.dispose();
    chunks.forEach((c) => c.targets.dispose());
    return loss;
  }
  record(op, [h, W], [loss], ([g]) => {
    const gh = fillInPlace(empty(gpu, h.shape), 0);
    const gW = fillInPlace(empty(gpu, [d, Vp]), 0);
    tidy(gpu, () => {
      const Wp = saved.Wp;
      chunks.forEach((c, i) => {
        const kept = saved.perChunk[i]!;
        tidy(gpu, () => {
          const hc = kept.hc ?? chunkInput(c);
          const logits = kept.logits ?? matmul(hc, Wp);
          // Padding rows are ignored: their log-sum-exp is never read.
          const dlogits = crossEntropyBackward(logits, c.targets, kept.lse, count, g!, { ignoreIndex: IGNORE_TARGET, classes: V });
          logits.dispose();
          kept.lse.dispose();
          copyRowsInto(matmul(dlogits, Wp, { transB: true }), gh, { rows: c.count, dstOffset: c.start });
          axpyInPlace(gW, matmul(hc, dlogits, { transA: true }), 1, 1);
          hc.dispose();
        });
      });
      if (Wp !== W) Wp.dispose();
    });
    count.dispose();
    chunks.forEach((c) => c.targets.dispose());
    if (Vp === V) return [gh, gW];
    const cropped = relayoutRaw(gW, 1, d, Vp, { dstCols: V }).view([d, V]);
    gW.dispose();
    return [gh, cropped];
  });
  return loss;
}

/** Scores of rows h [B, d] over the whole vocabulary, h W: [B, V] (evaluation, no tape). */
export function lmHeadScores(h: Tensor, W: Tensor): Tensor {
  return noGrad(h.gpu, () => matmul(h, W));
}
