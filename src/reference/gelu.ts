/** Float64 CPU reference for GELU, tanh approximation (kernels/gelu.wgsl). */
const K0 = Math.sqrt(2 / Math.PI);
const K1 = 0.044715;

export function geluRef(x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    y[i] = 0.5 * v * (1 + Math.tanh(K0 * (v + K1 * v * v * v)));
  }
  return y;
}

/** Gradient of sum(g * gelu(x)) with respect to x. */
export function geluBackwardRef(x: ArrayLike<number>, g: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const t = Math.tanh(K0 * (v + K1 * v * v * v));
    const du = K0 * (1 + 3 * K1 * v * v);
    dx[i] = g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du);
  }
  return dx;
}
