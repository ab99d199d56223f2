/**
 * Float64 CPU reference for causal multi-head attention (kernels/attention.wgsl and
 * kernels/attention_bwd.wgsl). q, k, v, out are [B, L, H * D] with element (b, i, h, d) at
 * ((b * L + i) * H + h) * D + d; keyMask is [B, L], nonzero = valid key. Scores are
 * materialized one query row at a time.
 */
export interface AttentionRefShape {
  B: number;
  L: number;
  H: number;
  D: number;
  keyMask?: ArrayLike<number>;
  /** 1/sqrt(D) by default. */
  scale?: number;
}

export interface AttentionRefOutput {
  out: Float64Array;
  /** [B, H, L]; -Infinity for a row with no valid key. */
  lse: Float64Array;
}

export interface AttentionRefGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** Softmax weights of query row i of head (b, h) over keys 0..i (0 where masked or empty). */
function rowProbabilities(q: ArrayLike<number>, k: ArrayLike<number>, s: AttentionRefShape, b: number, h: number, i: number, probs: Float64Array): number {
  const { L, H, D } = s;
  const scale = s.scale ?? 1 / Math.sqrt(D);
  const at = (t: number, d: number) => ((b * L + t) * H + h) * D + d;
  let max = -Infinity;
  for (let j = 0; j <= i; j++) {
    if (s.keyMask && !s.keyMask[b * L + j]) {
      probs[j] = -Infinity;
      continue;
    }
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[at(i, d)] * k[at(j, d)];
    probs[j] = scale * dot;
    max = Math.max(max, probs[j]);
  }
  if (max === -Infinity) {
    probs.fill(0, 0, i + 1);
    return -Infinity;
  }
  let sum = 0;
  for (let j = 0; j <= i; j++) sum += probs[j] === -Infinity ? 0 : Math.exp(probs[j] - max);
  for (let j = 0; j <= i; j++) probs[j] = probs[j] === -Infinity ? 0 : Math.exp(probs[j] - max) / sum;
  return max + Math.log(sum);
}

export function attentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttentionRefShape): AttentionRefOutput {
  const { B, L, H, D } = s;
  const out = new Float64Array(B * L * H * D);
  const lse = new Float64Array(B * H * L);
  const probs = new Float64Array(L);
  const at = (b: number, t: number, h: number, d: number) => ((b * L + t) * H + h) * D + d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < L; i++) {
        lse[(b * H + h) * L + i] = rowProbabilities(q, k, s, b, h, i, probs);
        for (let j = 0; j <= i; j++) {
          if (probs[j] === 0) continue;
          for (let d = 0; d < D; d++) out[at(b, i, h, d)] += probs[j] * v[at(b, j, h, d)];
        }
      }
    }
  }
  return { out, lse };
}

/**
 * Gradients of sum(dOut * attention(q, k, v)) by the softmax Jacobian (not by the
 * D_i = dO_i . O_i shortcut the kernels use, so the two derivations check each other).
 */
export function attentionBackwardRef(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dOut: ArrayLike<number>, s: AttentionRefShape,
): AttentionRefGrads {
  const { B, L, H, D } = s;
  const scale = s.scale ?? 1 / Math.sqrt(D);
  const n = B * L * H * D;
  const dq = new Float64Array(n);
  const dk = new Float64Array(n);
  const dv = new Float64Array(n);
  const probs = new Float64Array(L);
  const dp = new Float64Array(L);
  const at = (b: number, t: number, h: number, d: number) => ((b * L + t) * H + h) * D + d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < L; i++) {
        if (rowProbabilities(q, k, s, b, h, i, probs) === -Infinity) continue;
        let weighted = 0;
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += dOut[at(b, i, h, d)] * v[at(b, j, h, d)];
          dp[j] = dot;
          weighted += probs[j] * dot;
        }
        for (let j = 0; j <= i; j++) {
          if (probs[j] === 0) continue;
          const ds = probs[j] * (dp[j] - weighted);
          for (let d = 0; d < D; d++) {
            dv[at(b, j, h, d)] += probs[j] * dOut[at(b, i, h, d)];
            dq[at(b, i, h, d)] += scale * ds * k[at(b, j, h, d)];
            dk[at(b, j, h, d)] += scale * ds * q[at(b, i, h, d)];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
