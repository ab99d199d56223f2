/**
 * Float64 CPU reference for prototype matching (kernels/prototype.wgsl and
 * kernels/prototype_bwd.wgsl). Rows x_n [N, D], prototypes p_k [K, D]:
 *   c_nk = x_n . p_k / (max(|x_n|, eps) max(|p_k|, eps)),  w_n = softmax_k(c_nk / temperature),
 *   out_n = sum_k w_nk p_k.
 * With similarity 'dot' the scores are plain dot products, c_nk = x_n . p_k.
 */
export const PROTOTYPE_NORM_EPS_REF = 1e-6;

export interface PrototypeRefDims {
  N: number;
  D: number;
  K: number;
  temperature: number;
  /** 'cosine' when absent. */
  similarity?: 'cosine' | 'dot';
}

export interface PrototypeRefOutputs {
  out: Float64Array;
  weights: Float64Array;
}

export interface PrototypeRefGrads {
  dx: Float64Array;
  dP: Float64Array;
}

function invNorm(v: ArrayLike<number>, at: number, D: number, cosine: boolean): { inv: number; guarded: boolean } {
  // Dot products: a unit scale that passes no gradient.
  if (!cosine) return { inv: 1, guarded: true };
  let ss = 0;
  for (let d = 0; d < D; d++) ss += v[at + d] * v[at + d];
  const norm = Math.sqrt(ss);
  // Below eps the norm is clamped: a constant, so it passes no gradient.
  return { inv: 1 / Math.max(norm, PROTOTYPE_NORM_EPS_REF), guarded: norm <= PROTOTYPE_NORM_EPS_REF };
}

/** Cosines c[n*K + k] and softmax weights of one row. */
function rowScores(x: ArrayLike<number>, P: ArrayLike<number>, n: number, dims: PrototypeRefDims, pInv: number[]) {
  const { D, K, temperature } = dims;
  const xn = invNorm(x, n * D, D, dims.similarity !== 'dot');
  const c = new Float64Array(K);
  let max = -Infinity;
  for (let k = 0; k < K; k++) {
    let dot = 0;
    for (let d = 0; d < D; d++) dot += x[n * D + d] * P[k * D + d];
    c[k] = dot * xn.inv * pInv[k];
    max = Math.max(max, c[k] / temperature);
  }
  const w = new Float64Array(K);
  let z = 0;
  for (let k = 0; k < K; k++) z += w[k] = Math.exp(c[k] / temperature - max);
  for (let k = 0; k < K; k++) w[k] /= z;
  return { c, w, xInv: xn.inv, xGuarded: xn.guarded };
}

function prototypeNorms(P: ArrayLike<number>, dims: PrototypeRefDims) {
  const inv: number[] = [];
  const guarded: boolean[] = [];
  for (let k = 0; k < dims.K; k++) {
    const r = invNorm(P, k * dims.D, dims.D, dims.similarity !== 'dot');
    inv.push(r.inv);
    guarded.push(r.guarded);
  }
  return { inv, guarded };
}

export function prototypeMatchRef(x: ArrayLike<number>, P: ArrayLike<number>, dims: PrototypeRefDims): PrototypeRefOutputs {
  const { N, D, K } = dims;
  const pn = prototypeNorms(P, dims);
  const out = new Float64Array(N * D);
  const weights = new Float64Array(N * K);
  for (let n = 0; n < N; n++) {
    const { w } = rowScores(x, P, n, dims, pn.inv);
    for (let k = 0; k < K; k++) {
      weights[n * K + k] = w[k];
      for (let d = 0; d < D; d++) out[n * D + d] += w[k] * P[k * D + d];
    }
  }
  return { out, weights };
}

/**
 * Gradients of sum(gOut * out) + sum(gWeights * weights) with respect to x and the
 * prototypes; a null cotangent counts as zero.
 */
export function prototypeMatchBackwardRef(
  x: ArrayLike<number>, P: ArrayLike<number>, gOut: ArrayLike<number> | null, gWeights: ArrayLike<number> | null,
  dims: PrototypeRefDims,
): PrototypeRefGrads {
  const { N, D, K, temperature } = dims;
  const pn = prototypeNorms(P, dims);
  const dx = new Float64Array(N * D);
  const dP = new Float64Array(K * D);
  for (let n = 0; n < N; n++) {
    const { c, w, xInv, xGuarded } = rowScores(x, P, n, dims, pn.inv);
    const dw = new Float64Array(K);
    let wdw = 0;
    for (let k = 0; k < K; k++) {
      if (gOut) for (let d = 0; d < D; d++) dw[k] += gOut[n * D + d] * P[k * D + d];
      if (gWeights) dw[k] += gWeights[n * K + k];
      wdw += w[k] * dw[k];
    }
    let dcc = 0;
    for (let k = 0; k < K; k++) {
      const dc = (w[k] * (dw[k] - wdw)) / temperature;
      dcc += dc * c[k];
      for (let d = 0; d < D; d++) {
        const xd = x[n * D + d];
        const pd = P[k * D + d];
        dx[n * D + d] += dc * pd * pn.inv[k] * xInv;
        // out_n = sum_k w_nk p_k, plus the cosine's dependence on p_k
        let gp = dc * xd * xInv * pn.inv[k];
        if (!pn.guarded[k]) gp -= dc * c[k] * pd * pn.inv[k] * pn.inv[k];
        if (gOut) gp += w[k] * gOut[n * D + d];
        dP[k * D + d] += gp;
      }
    }
    if (!xGuarded) for (let d = 0; d < D; d++) dx[n * D + d] -= dcc * x[n * D + d] * xInv * xInv;
  }
  return { dx, dP };
}
