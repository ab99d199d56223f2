/**
 * Float64 CPU reference for layer normalization over the last dimension (kernels/layernorm.wgsl
 * and kernels/layernorm_bwd.wgsl).
 */
export interface LayerNormRef {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function layerNormRef(
  x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, rows: number, D: number, eps = 1e-5,
): LayerNormRef {
  const y = new Float64Array(rows * D);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    let sum = 0;
    for (let d = 0; d < D; d++) sum += x[base + d];
    const mu = sum / D;
    let sq = 0;
    for (let d = 0; d < D; d++) sq += (x[base + d] - mu) ** 2;
    const rs = 1 / Math.sqrt(sq / D + eps);
    for (let d = 0; d < D; d++) y[base + d] = (x[base + d] - mu) * rs * gamma[d] + beta[d];
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

export interface LayerNormGradsRef {
  dx: Float64Array;
  dgamma: Float64Array;
  dbeta: Float64Array;
}

/** Gradients of sum(g * layerNorm(x)) with respect to x, gamma and beta. */
export function layerNormBackwardRef(
  x: ArrayLike<number>, gamma: ArrayLike<number>, g: ArrayLike<number>, rows: number, D: number, eps = 1e-5,
): LayerNormGradsRef {
  const { mean, rstd } = layerNormRef(x, gamma, new Float64Array(D), rows, D, eps);
  const dx = new Float64Array(rows * D);
  const dgamma = new Float64Array(D);
  const dbeta = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    const base = r * D;
    let sumG = 0;
    let sumGX = 0;
    for (let d = 0; d < D; d++) {
      const xhat = (x[base + d] - mean[r]) * rstd[r];
      const dxhat = g[base + d] * gamma[d];
      sumG += dxhat;
      sumGX += dxhat * xhat;
      dgamma[d] += g[base + d] * xhat;
      dbeta[d] += g[base + d];
    }
    for (let d = 0; d < D; d++) {
      const xhat = (x[base + d] - mean[r]) * rstd[r];
      dx[base + d] = rstd[r] * (g[base + d] * gamma[d] - sumG / D - xhat * (sumGX / D));
    }
  }
  return { dx, dgamma, dbeta };
}
