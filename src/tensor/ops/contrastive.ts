import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, Tensor, tensorFrom } from '../tensor.js';
import { matmul } from './matmul.js';
import { maskedMean } from './reduce.js';

const L2_PARAMS = { rows: 'u32', E: 'u32', rowOffset: 'u32', eps: 'f32' } as const;
export const L2NORM_FORWARD: KernelSpec = { file: 'l2norm', entry: 'l2norm_forward', params: L2_PARAMS, storage: ['read', 'rw', 'rw'] };
export const L2NORM_BACKWARD: KernelSpec = { file: 'l2norm', entry: 'l2norm_backward', params: L2_PARAMS, storage: ['read', 'read', 'read', 'rw'] };
export const L2NORM_COLUMNS_FORWARD: KernelSpec = { ...L2NORM_FORWARD, entry: 'l2norm_columns_forward' };
export const L2NORM_COLUMNS_BACKWARD: KernelSpec = { ...L2NORM_BACKWARD, entry: 'l2norm_columns_backward' };
export const INFONCE_ROWS: KernelSpec = { file: 'infonce', entry: 'infonce_rows', params: { N: 'u32' }, storage: ['read', 'read', 'rw', 'rw', 'rw'] };
export const INFONCE_BACKWARD: KernelSpec = {
  file: 'infonce', entry: 'infonce_backward', params: { N: 'u32' },
  storage: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
};

const WG = 64;

export interface L2NormalizeOptions {
  /** Added to the sum of squares under the square root (keeps zero rows finite). */
  eps?: number;
}

function requireMatrix(t: Tensor, name: string, op: string): [number, number] {
  if (t.dtype !== 'f32') throw new PantherError('E_DTYPE', `${name} must be f32, is ${t.dtype} (${t.describe()})`, op);
  if (t.shape.length !== 2) throw new PantherError('E_SHAPE', `${name} must be 2-D, has shape [${t.shape}]`, op);
  return [t.shape[0], t.shape[1]];
}

/**
 * Each row divided by its L2 norm, sqrt(sum x^2 + eps); the inputs' rows are stacked in
 * order into one [sum of rows, E] output (one input: plain row normalization).
 */
export function l2NormalizeRows(parts: readonly Tensor[], opts: L2NormalizeOptions = {}): Tensor {
  const op = 'l2Normalize';
  if (parts.length === 0) throw new PantherError('E_ARGUMENT', 'no input', op);
  const eps = opts.eps ?? 1e-12;
  if (!(eps >= 0)) throw new PantherError('E_ARGUMENT', `eps must be >= 0, is ${eps}`, op);
  const E = requireMatrix(parts[0], 'input 0', op)[1];
  let rows = 0;
  const offsets = parts.map((t, k) => {
    const [r, e] = requireMatrix(t, `input ${k}`, op);
    if (e !== E) throw new PantherError('E_SHAPE', `input ${k} [${t.shape}] has rows of ${e}, input 0 of ${E}`, op);
    rows += r;
    return rows - r;
  });
  const gpu = parts[0].gpu;
  const out = empty(gpu, [rows, E]);
  const norm = empty(gpu, [Math.max(rows, 1)]);
  parts.forEach((t, k) => {
    gpu.dispatch(L2NORM_FORWARD, {
      buffers: [t.buffer, out.buffer, norm.buffer],
      params: { rows: t.shape[0], E, rowOffset: offsets[k], eps },
      workgroups: grid1d(t.shape[0], WG),
    });
  });
  if (!isRecording(gpu, parts)) {
    norm.dispose();
    return out;
  }
  record(op, parts, [out], ([g]) =>
    parts.map((t, k) => {
      if (!t.requiresGrad) return null;
      const dx = empty(gpu, t.shape);
      gpu.dispatch(L2NORM_BACKWARD, {
        buffers: [t.buffer, norm.buffer, g!.buffer, dx.buffer],
        params: { rows: t.shape[0], E, rowOffset: offsets[k], eps },
        workgroups: grid1d(t.shape[0], WG),
      });
      return dx;
    }),
  );
  return out;
}

/**
 * x [R, C] with each column divided by its L2 norm, sqrt(sum x^2 + eps): the same values as
 * normalizing the rows of the transpose, without laying it out (a [d, V] head's token vectors).
 */
export function l2NormalizeColumns(x: Tensor, opts: L2NormalizeOptions = {}): Tensor {
  const op = 'l2NormalizeColumns';
  const eps = opts.eps ?? 1e-12;
  if (!(eps >= 0)) throw new PantherError('E_ARGUMENT', `eps must be >= 0, is ${eps}`, op);
  const [rows, C] = requireMatrix(x, 'input', op);
  const gpu = x.gpu;
  const out = empty(gpu, [rows, C]);
  const norm = empty(gpu, [Math.max(C, 1)]);
  const params = { rows, E: C, rowOffset: 0, eps };
  gpu.dispatch(L2NORM_COLUMNS_FORWARD, { buffers: [x.buffer, out.buffer, norm.buffer], params, workgroups: grid1d(C, WG) });
  if (!isRecording(gpu, [x])) {
    norm.dispose();
    return out;
  }
  record(op, [x], [out], ([g]) => {
    const dx = empty(gpu, x.shape);
    gpu.dispatch(L2NORM_COLUMNS_BACKWARD, { buffers: [x.buffer, norm.buffer, g!.buffer, dx.buffer], params, workgroups: grid1d(C, WG) });
    return [dx];
  });
  return out;
}

/** x [N, E] with each row scaled to unit L2 norm. */
export function l2Normalize(x: Tensor, opts: L2NormalizeOptions = {}): Tensor {
  return l2NormalizeRows([x], opts);
}

export type PositivesMask = Tensor | ArrayLike<number>;

function positivesTensor(positives: PositivesMask, N: number, gpu: Tensor['gpu'], op: string): { mask: Tensor; uploaded: boolean } {
  if (positives instanceof Tensor) {
    if (positives.dtype === 'f32') throw new PantherError('E_DTYPE', `positives must be u32 (or i32), is f32 (${positives.describe()})`, op);
    if (positives.size !== N * N) throw new PantherError('E_SHAPE', `positives [${positives.shape}] do not match sim [${N}, ${N}]`, op);
    return { mask: positives, uploaded: false };
  }
  if (positives.length !== N * N) throw new PantherError('E_SHAPE', `${positives.length} positives for sim [${N}, ${N}] (${N * N} entries)`, op);
  return { mask: tensorFrom(gpu, Uint32Array.from(positives, (v) => (v ? 1 : 0)), [N, N], 'u32'), uploaded: true };
}

/**
 * InfoNCE over a similarity matrix sim [N, N] (already divided by the temperature) with a
 * positives mask [N, N] (nonzero where j is a positive of i; the diagonal never counts):
 *   loss_i = logsumexp_{j != i} sim_ij - logsumexp_{j in P(i)} sim_ij,
 * averaged over the rows with at least one positive (0 when no row has one). A [1] tensor.
 */
export function infoNCE(sim: Tensor, positives: PositivesMask): Tensor {
  const op = 'infoNCE';
  const [N, N2] = requireMatrix(sim, 'sim', op);
  if (N !== N2 || N < 1) throw new PantherError('E_SHAPE', `sim must be square and non-empty, has shape [${sim.shape}]`, op);
  const gpu = sim.gpu;
  const { mask, uploaded } = positivesTensor(positives, N, gpu, op);
  const rowLoss = empty(gpu, [N]);
  const weight = empty(gpu, [N]);
  const lse = empty(gpu, [N, 2]);
  gpu.dispatch(INFONCE_ROWS, { buffers: [sim.buffer, mask.buffer, rowLoss.buffer, weight.buffer, lse.buffer], params: { N }, workgroups: grid1d(N, WG) });
  const { mean, weightSum } = maskedMean(rowLoss, weight);
  rowLoss.dispose();
  if (!isRecording(gpu, [sim])) {
    for (const t of [weight, lse, weightSum]) t.dispose();
    if (uploaded) mask.dispose();
    return mean;
  }
  record(op, [sim], [mean], ([g]) => {
    const dsim = empty(gpu, [N, N]);
    const x = Math.min(N, 65535);
    gpu.dispatch(INFONCE_BACKWARD, {
      buffers: [sim.buffer, mask.buffer, lse.buffer, weight.buffer, weightSum.buffer, g!.buffer, dsim.buffer],
      params: { N },
      workgroups: [x, Math.ceil(N / x)],
    });
    return [dsim];
  });
  return mean;
}

/**
 * Positives for two views of N users stacked as rows [view 1; view 2]: row i and row i + N
 * are positives of each other, and `related` [N, N] (optional) marks further positive pairs
 * across and within both views. A host mask [2N, 2N].
 */
export function twoViewPositives(N: number, related?: ArrayLike<number>): Uint32Array {
  if (related && related.length !== N * N) throw new PantherError('E_SHAPE', `${related.length} entries for related [${N}, ${N}]`, 'twoViewPositives');
  const M = 2 * N;
  const mask = new Uint32Array(M * M);
  for (let a = 0; a < M; a++) {
    for (let b = 0; b < M; b++) {
      const i = a % N;
      const j = b % N;
      if (a !== b && (i === j || (related && related[i * N + j]))) mask[a * M + b] = 1;
    }
  }
  return mask;
}

/**
 * Contrastive loss of embeddings: rows of z1 [N, E] (and of z2 [N, E] stacked after them,
 * when given) are L2-normalized, sim = Z Zᵀ / temperature, then infoNCE(sim, positives) with
 * positives [M, M], M = N or 2N (see twoViewPositives).
 */
export function infoNCELoss(z1: Tensor, z2: Tensor | null, positives: PositivesMask, temperature: number): Tensor {
  const op = 'infoNCELoss';
  const [N, E] = requireMatrix(z1, 'z1', op);
  if (z2) {
    const [N2, E2] = requireMatrix(z2, 'z2', op);
    if (N2 !== N || E2 !== E) throw new PantherError('E_SHAPE', `z1 [${z1.shape}] and z2 [${z2.shape}] differ`, op);
  }
  if (!(temperature > 0)) throw new PantherError('E_ARGUMENT', `temperature must be > 0, is ${temperature}`, op);
  const M = z2 ? 2 * N : N;
  const size = positives instanceof Tensor ? positives.size : positives.length;
  if (size !== M * M) throw new PantherError('E_SHAPE', `positives have ${size} entries, expected [${M}, ${M}]`, op);
  const Z = l2NormalizeRows(z2 ? [z1, z2] : [z1]);
  const sim = matmul(Z, Z, { transB: true, alpha: 1 / temperature });
  const loss = infoNCE(sim, positives);
  if (!isRecording(z1.gpu, z2 ? [z1, z2] : [z1])) {
    Z.dispose();
    sim.dispose();
  }
  return loss;
}
