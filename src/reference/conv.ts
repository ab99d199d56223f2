/**
 * Float64 CPU reference for the causal dilated 1-D convolution (kernels/dilated_conv.wgsl and
 * kernels/dilated_conv_bwd.wgsl). x is [B, L, Cin], time-major with channels last; the full
 * weight is [K, Cin, Cout], the depthwise weight [K, C]. Tap k looks back (K-1-k)*dilation
 * steps; steps before t = 0 are zero.
 */
export interface ConvRefDims {
  B: number;
  L: number;
  Cin: number;
  /** Equals Cin for depthwise. */
  Cout: number;
  K: number;
  dilation: number;
  depthwise: boolean;
}

export interface ConvRefGrads {
  dx: Float64Array;
  dw: Float64Array;
  dbias: Float64Array;
}

export function dilatedConvRef(
  x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, d: ConvRefDims,
): Float64Array {
  const { B, L, Cin, Cout, K, dilation } = d;
  const y = new Float64Array(B * L * Cout);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const yRow = (b * L + t) * Cout;
      for (let o = 0; o < Cout; o++) y[yRow + o] = bias ? bias[o] : 0;
      for (let k = 0; k < K; k++) {
        const ts = t - (K - 1 - k) * dilation;
        if (ts < 0) continue;
        const xRow = (b * L + ts) * Cin;
        if (d.depthwise) {
          for (let c = 0; c < Cin; c++) y[yRow + c] += w[k * Cin + c] * x[xRow + c];
        } else {
          for (let c = 0; c < Cin; c++) {
            const xv = x[xRow + c];
            for (let o = 0; o < Cout; o++) y[yRow + o] += w[(k * Cin + c) * Cout + o] * xv;
          }
        }
      }
    }
  }
  return y;
}

/** Gradients of sum(g * y) with respect to x, the weight and the bias. */
export function dilatedConvBackwardRef(
  x: ArrayLike<number>, w: ArrayLike<number>, g: ArrayLike<number>, d: ConvRefDims,
): ConvRefGrads {
  const { B, L, Cin, Cout, K, dilation } = d;
  const dx = new Float64Array(B * L * Cin);
  const dw = new Float64Array(d.depthwise ? K * Cin : K * Cin * Cout);
  const dbias = new Float64Array(Cout);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const gRow = (b * L + t) * Cout;
      for (let o = 0; o < Cout; o++) dbias[o] += g[gRow + o];
      for (let k = 0; k < K; k++) {
        const ts = t - (K - 1 - k) * dilation;
        if (ts < 0) continue;
        const xRow = (b * L + ts) * Cin;
        if (d.depthwise) {
          for (let c = 0; c < Cin; c++) {
            dx[xRow + c] += w[k * Cin + c] * g[gRow + c];
            dw[k * Cin + c] += x[xRow + c] * g[gRow + c];
          }
        } else {
          for (let c = 0; c < Cin; c++) {
            const wRow = (k * Cin + c) * Cout;
            let acc = 0;
            for (let o = 0; o < Cout; o++) {
              acc += w[wRow + o] * g[gRow + o];
              dw[wRow + o] += x[xRow + c] * g[gRow + o];
            }
            dx[xRow + c] += acc;
          }
        }
      }
    }
  }
  return { dx, dw, dbias };
}
