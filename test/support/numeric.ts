/** Deterministic pseudo-random numbers (mulberry32) so every test run sees the same data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/** Max |a - b| over max |b|: the error relative to the reference's scale. */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

/**
 * Central finite differences of a scalar function of `x` along the coordinates `indices`
 * (all of them by default), in float64.
 */
export function finiteDiff(f: (x: Float64Array) => number, x: ArrayLike<number>, eps = 1e-6, indices?: number[]): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length);
  for (const i of indices ?? xs.keys()) {
    const keep = xs[i];
    xs[i] = keep + eps;
    const up = f(xs);
    xs[i] = keep - eps;
    const down = f(xs);
    xs[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/** Sum of w[i] * y[i]: turns a tensor output into a scalar loss with a random cotangent. */
export function dot(w: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i] * y[i];
  return s;
}
