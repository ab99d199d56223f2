/**
 * Float64 CPU references for the optimizer kernels: the global gradient norm and clipping
 * factor (kernels/reduce.wgsl) and the AdamW update (kernels/adamw.wgsl).
 */
export function gradNormRef(tensors: readonly ArrayLike<number>[]): number {
  let ss = 0;
  for (const t of tensors) for (let i = 0; i < t.length; i++) ss += t[i] * t[i];
  return Math.sqrt(ss);
}

export function clipScaleRef(norm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (norm + 1e-6));
}

export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number for the bias corrections. */
  step: number;
}

/** One AdamW update of p, m, v in place, with the gradient multiplied by `scale`. */
export function adamwStepRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, o: AdamWRefOptions, scale = 1): void {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * scale;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    p[i] -= o.lr * (m[i] / bc1 / (Math.sqrt(v[i] / bc2) + o.eps) + o.weightDecay * p[i]);
  }
}
