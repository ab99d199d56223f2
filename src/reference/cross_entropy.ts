/** Float64 CPU reference for softmax cross-entropy (kernels/cross_entropy*.wgsl). */
export interface CrossEntropyRef {
  /** Mean loss over rows whose target counts; 0 when none does. */
  loss: number;
  rowLoss: Float64Array;
  rowLse: Float64Array;
  count: number;
}

function counts(t: number, V: number, ignoreIndex: number): boolean {
  return t !== ignoreIndex && t >= 0 && t < V;
}

export function crossEntropyRef(logits: ArrayLike<number>, targets: ArrayLike<number>, N: number, V: number, ignoreIndex = -100): CrossEntropyRef {
  const rowLoss = new Float64Array(N);
  const rowLse = new Float64Array(N);
  let sum = 0;
  let count = 0;
  for (let r = 0; r < N; r++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, logits[r * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[r * V + j] - m);
    rowLse[r] = m + Math.log(s);
    const t = targets[r];
    if (!counts(t, V, ignoreIndex)) continue;
    rowLoss[r] = rowLse[r] - logits[r * V + t];
    sum += rowLoss[r];
    count++;
  }
  return { loss: count ? sum / count : 0, rowLoss, rowLse, count };
}

/** Gradient of g * crossEntropy(logits) with respect to the logits. */
export function crossEntropyBackwardRef(logits: ArrayLike<number>, targets: ArrayLike<number>, N: number, V: number, g = 1, ignoreIndex = -100): Float64Array {
  const { rowLse, count } = crossEntropyRef(logits, targets, N, V, ignoreIndex);
  const d = new Float64Array(N * V);
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (!counts(t, V, ignoreIndex)) continue;
    for (let j = 0; j < V; j++) {
      d[r * V + j] = ((Math.exp(logits[r * V + j] - rowLse[r]) - (j === t ? 1 : 0)) * g) / count;
    }
  }
  return d;
}
