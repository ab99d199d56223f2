import { PantherError } from '../errors.js';

/**
 * Principal components of embeddings (fitted on training rows only), so a tree model gets a
 * few dense, decorrelated embedding features instead of d raw components.
 */
export interface Projection {
  mean: number[];
  /** k rows of d. */
  components: number[][];
  /** Variance explained by each component. */
  variance: number[];
}

/** Symmetric eigen-decomposition by cyclic Jacobi rotations (d is small: the model width). */
export function symmetricEigen(a: Float64Array, d: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += m[p * d + q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * d + q] - m[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p];
          const mkq = m[k * d + q];
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k];
          const mqk = m[q * d + k];
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: d }, (_, i) => m[i * d + i]), vectors: v };
}

/** PCA of rows `rows` of a [n, d] matrix; k components by decreasing variance. */
export function fitProjection(x: Float32Array, d: number, rows: ArrayLike<number>, k: number): Projection {
  if (rows.length < 2) throw new PantherError('E_ARGUMENT', `PCA needs at least 2 rows, got ${rows.length}`, 'fitProjection');
  const mean = new Float64Array(d);
  for (let i = 0; i < rows.length; i++) for (let j = 0; j < d; j++) mean[j] += x[rows[i] * d + j] / rows.length;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < d; j++) c[j] = x[rows[i] * d + j] - mean[j];
    for (let p = 0; p < d; p++) for (let q = p; q < d; q++) cov[p * d + q] += (c[p] * c[q]) / (rows.length - 1);
  }
  for (let p = 0; p < d; p++) for (let q = 0; q < p; q++) cov[p * d + q] = cov[q * d + p];
  const { values, vectors } = symmetricEigen(cov, d);
  const order = [...values.keys()].sort((a, b) => values[b] - values[a]).slice(0, Math.min(k, d));
  return {
    mean: [...mean],
    components: order.map((i) => Array.from({ length: d }, (_, j) => vectors[j * d + i])),
    variance: order.map((i) => values[i]),
  };
}

export function project(p: Projection, v: ArrayLike<number>, offset = 0, out: number[] = []): number[] {
  const d = p.mean.length;
  p.components.forEach((comp, i) => {
    let s = 0;
    for (let j = 0; j < d; j++) s += comp[j] * (v[offset + j] - p.mean[j]);
    out[i] = s;
  });
  return out;
}
