/**
 * Float64 CPU references for the contrastive pieces: row L2 normalization (kernels/l2norm.wgsl),
 * InfoNCE over a similarity matrix (kernels/infonce.wgsl), and their composition.
 */
import { matmulRef } from './linalg.js';

export function l2NormalizeRef(x: ArrayLike<number>, rows: number, E: number, eps = 1e-12): { y: Float64Array; norm: Float64Array } {
  const y = new Float64Array(rows * E);
  const norm = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let d = 0; d < E; d++) ss += x[r * E + d] ** 2;
    const n = Math.sqrt(ss + eps);
    for (let d = 0; d < E; d++) y[r * E + d] = x[r * E + d] / n;
    norm[r] = n;
  }
  return { y, norm };
}

/** Gradient of sum(g * l2Normalize(x)) with respect to x. */
export function l2NormalizeBackwardRef(x: ArrayLike<number>, g: ArrayLike<number>, rows: number, E: number, eps = 1e-12): Float64Array {
  const { y, norm } = l2NormalizeRef(x, rows, E, eps);
  const dx = new Float64Array(rows * E);
  for (let r = 0; r < rows; r++) {
    let yg = 0;
    for (let d = 0; d < E; d++) yg += y[r * E + d] * g[r * E + d];
    for (let d = 0; d < E; d++) dx[r * E + d] = (g[r * E + d] - y[r * E + d] * yg) / norm[r];
  }
  return dx;
}

function logSumExp(values: number[]): number {
  const m = Math.max(...values);
  return m + Math.log(values.reduce((s, v) => s + Math.exp(v - m), 0));
}

export interface InfoNCERef {
  loss: number;
  rowLoss: Float64Array;
  /** Rows with at least one positive. */
  count: number;
}

/** InfoNCE over sim [N, N] with positives [N, N] (diagonal never counts). */
export function infoNCERef(sim: ArrayLike<number>, pos: ArrayLike<number>, N: number): InfoNCERef {
  const rowLoss = new Float64Array(N);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < N; i++) {
    const all: number[] = [];
    const positives: number[] = [];
    for (let j = 0; j < N; j++) {
      if (j === i) continue;
      all.push(sim[i * N + j]);
      if (pos[i * N + j]) positives.push(sim[i * N + j]);
    }
    if (!positives.length) continue;
    rowLoss[i] = logSumExp(all) - logSumExp(positives);
    sum += rowLoss[i];
    count++;
  }
  return { loss: count ? sum / count : 0, rowLoss, count };
}

/** Gradient of g * infoNCE(sim) with respect to sim. */
export function infoNCEBackwardRef(sim: ArrayLike<number>, pos: ArrayLike<number>, N: number, g = 1): Float64Array {
  const { count } = infoNCERef(sim, pos, N);
  const d = new Float64Array(N * N);
  for (let i = 0; i < N; i++) {
    const cols = [...Array(N).keys()].filter((j) => j !== i);
    const posCols = cols.filter((j) => pos[i * N + j]);
    if (!posCols.length) continue;
    const lseAll = logSumExp(cols.map((j) => sim[i * N + j]));
    const lsePos = logSumExp(posCols.map((j) => sim[i * N + j]));
    for (const j of cols) d[i * N + j] += (g / count) * Math.exp(sim[i * N + j] - lseAll);
    for (const j of posCols) d[i * N + j] -= (g / count) * Math.exp(sim[i * N + j] - lsePos);
  }
  return d;
}

/** Rows of z1 [N, E] then z2 [N, E] (when given), each L2-normalized: Z [M, E]. */
function stackNormalized(z1: ArrayLike<number>, z2: ArrayLike<number> | null, N: number, E: number, eps: number): Float64Array {
  const parts = z2 ? [z1, z2] : [z1];
  const Z = new Float64Array(parts.length * N * E);
  parts.forEach((z, k) => Z.set(l2NormalizeRef(z, N, E, eps).y, k * N * E));
  return Z;
}

/** InfoNCE of sim = Z Zᵀ / temperature, Z the normalized rows of z1 (and z2 after them). */
export function infoNCELossRef(
  z1: ArrayLike<number>, z2: ArrayLike<number> | null, pos: ArrayLike<number>, temperature: number, N: number, E: number, eps = 1e-12,
): number {
  const Z = stackNormalized(z1, z2, N, E, eps);
  const M = z2 ? 2 * N : N;
  return infoNCERef(matmulRef(Z, Z, M, M, E, { transB: true, alpha: 1 / temperature }), pos, M).loss;
}

/** Gradients of infoNCELossRef with respect to z1 and z2. */
export function infoNCELossBackwardRef(
  z1: ArrayLike<number>, z2: ArrayLike<number> | null, pos: ArrayLike<number>, temperature: number, N: number, E: number, eps = 1e-12,
): { dz1: Float64Array; dz2: Float64Array | null } {
  const Z = stackNormalized(z1, z2, N, E, eps);
  const M = z2 ? 2 * N : N;
  const sim = matmulRef(Z, Z, M, M, E, { transB: true, alpha: 1 / temperature });
  const dsim = infoNCEBackwardRef(sim, pos, M);
  // sim = Z Zᵀ / T, so dZ = (dsim + dsimᵀ) Z / T.
  const sym = new Float64Array(M * M);
  for (let i = 0; i < M; i++) for (let j = 0; j < M; j++) sym[i * M + j] = dsim[i * M + j] + dsim[j * M + i];
  const dZ = matmulRef(sym, Z, M, E, M, { alpha: 1 / temperature });
  const dz1 = l2NormalizeBackwardRef(z1, dZ.subarray(0, N * E), N, E, eps);
  const dz2 = z2 ? l2NormalizeBackwardRef(z2, dZ.subarray(N * E), N, E, eps) : null;
  return { dz1, dz2 };
}
