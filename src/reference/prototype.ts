/**
 * Float64 CPU reference for prototype matching (kernels/prototype.wgsl and
 * kernels/prototype_bwd.wgsl). Rows x_n [N, D] in H heads of width D / H, key prototypes p_k
 * and value prototypes v_k [K, D] (the keys themselves unless given). Per head h, on the
 * head's slices:
 *   c_nhk = x_nh . p_kh / (max(|x_nh|, eps) max(|p_kh|, eps)),  w_nh = softmax_k(c_nhk / temperature),
 *   out_nh = sum_k w_nhk v_kh.
 * With similarity 'dot' the scores are plain dot products, c_nhk = x_nh . p_kh.
 */
export const PROTOTYPE_NORM_EPS_REF = 1e-6;

export interface PrototypeRefDims {
  N: number;
  /** Full row width (heads x head width). */
  D: number;
  K: number;
  temperature: number;
  /** 'cosine' when absent. */
  similarity?: 'cosine' | 'dot';
  /** 1 when absent. */
  heads?: number;
}

export interface PrototypeRefOutputs {
  out: Float64Array;
  /** [N, H, K]. */
  weights: Float64Array;
}

export interface PrototypeRefGrads {
  dx: Float64Array;
  /** Of the keys; with the values included when no separate values were given. */
  dP: Float64Array;
  /** Of separate values, null without them. */
  dV: Float64Array | null;
}

function invNorm(v: ArrayLike<number>, at: number, width: number, cosine: boolean): { inv: number; guarded: boolean } {
  // Dot products: a unit scale that passes no gradient.
  if (!cosine) return { inv: 1, guarded: true };
  let ss = 0;
  for (let d = 0; d < width; d++) ss += v[at + d] * v[at + d];
  const norm = Math.sqrt(ss);
  // Below eps the norm is clamped: a constant, so it passes no gradient.
  return { inv: 1 / Math.max(norm, PROTOTYPE_NORM_EPS_REF), guarded: norm <= PROTOTYPE_NORM_EPS_REF };
}

function layout(dims: PrototypeRefDims) {
  const H = dims.heads ?? 1;
  return { H, W: dims.D / H, cosine: dims.similarity !== 'dot' };
}

/** Cosines and softmax weights of row n's head h (offset o = h * W within rows). */
function rowScores(x: ArrayLike<number>, P: ArrayLike<number>, n: number, o: number, dims: PrototypeRefDims, pInv: number[]) {
  const { D, K, temperature } = dims;
  const { W, cosine } = layout(dims);
  const xn = invNorm(x, n * D + o, W, cosine);
  const c = new Float64Array(K);
  let max = -Infinity;
  for (let k = 0; k < K; k++) {
    let dot = 0;
    for (let d = 0; d < W; d++) dot += x[n * D + o + d] * P[k * D + o + d];
    c[k] = dot * xn.inv * pInv[k];
    max = Math.max(max, c[k] / temperature);
  }
  const w = new Float64Array(K);
  let z = 0;
  for (let k = 0; k < K; k++) z += w[k] = Math.exp(c[k] / temperature - max);
  for (let k = 0; k < K; k++) w[k] /= z;
  return { c, w, xInv: xn.inv, xGuarded: xn.guarded };
}

/** Per head, the prototypes' inverse norms of their slices. */
function prototypeNorms(P: ArrayLike<number>, dims: PrototypeRefDims, h: number) {
  const { W, cosine } = layout(dims);
  const inv: number[] = [];
  const guarded: boolean[] = [];
  for (let k = 0; k < dims.K; k++) {
    const r = invNorm(P, k * dims.D + h * W, W, cosine);
    inv.push(r.inv);
    guarded.push(r.guarded);
  }
  return { inv, guarded };
}

export function prototypeMatchRef(x: ArrayLike<number>, P: ArrayLike<number>, dims: PrototypeRefDims, values?: ArrayLike<number>): PrototypeRefOutputs {
  const { N, D, K } = dims;
  const { H, W } = layout(dims);
  const V = values ?? P;
  const out = new Float64Array(N * D);
  const weights = new Float64Array(N * H * K);
  for (let h = 0; h < H; h++) {
    const o = h * W;
    const pn = prototypeNorms(P, dims, h);
    for (let n = 0; n < N; n++) {
      const { w } = rowScores(x, P, n, o, dims, pn.inv);
      for (let k = 0; k < K; k++) {
        weights[(n * H + h) * K + k] = w[k];
        for (let d = 0; d < W; d++) out[n * D + o + d] += w[k] * V[k * D + o + d];
      }
    }
  }
  return { out, weights };
}

/**
 * Gradients of sum(gOut * out) + sum(gWeights * weights) with respect to x, the prototypes
 * and the values; a null cotangent counts as zero.
 */
export function prototypeMatchBackwardRef(
  x: ArrayLike<number>, P: ArrayLike<number>, gOut: ArrayLike<number> | null, gWeights: ArrayLike<number> | null,
  dims: PrototypeRefDims, values?: ArrayLike<number>,
): PrototypeRefGrads {
  const { N, D, K, temperature } = dims;
  const { H, W } = layout(dims);
  const V = values ?? P;
  const dx = new Float64Array(N * D);
  const dP = new Float64Array(K * D);
  const dV = values ? new Float64Array(K * D) : dP;
  for (let h = 0; h < H; h++) {
    const o = h * W;
    const pn = prototypeNorms(P, dims, h);
    for (let n = 0; n < N; n++) {
      const { c, w, xInv, xGuarded } = rowScores(x, P, n, o, dims, pn.inv);
      const dw = new Float64Array(K);
      let wdw = 0;
      for (let k = 0; k < K; k++) {
        if (gOut) for (let d = 0; d < W; d++) dw[k] += gOut[n * D + o + d] * V[k * D + o + d];
        if (gWeights) dw[k] += gWeights[(n * H + h) * K + k];
        wdw += w[k] * dw[k];
      }
      let dcc = 0;
      for (let k = 0; k < K; k++) {
        const dc = (w[k] * (dw[k] - wdw)) / temperature;
        dcc += dc * c[k];
        for (let d = 0; d < W; d++) {
          const i = n * D + o + d;
          const j = k * D + o + d;
          dx[i] += dc * P[j] * pn.inv[k] * xInv;
          // The score's dependence on p_k, with its cosine norm.
          let gp = dc * x[i] * xInv * pn.inv[k];
          if (!pn.guarded[k]) gp -= dc * c[k] * P[j] * pn.inv[k] * pn.inv[k];
          dP[j] += gp;
          // out_n = sum_k w_nk v_k.
          if (gOut) dV[j] += w[k] * gOut[i];
        }
      }
      if (!xGuarded) for (let d = 0; d < W; d++) dx[n * D + o + d] -= dcc * x[n * D + o + d] * xInv * xInv;
    }
  }
  return { dx, dP, dV: values ? dV : null };
}
