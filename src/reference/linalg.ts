/**
 * Float64 CPU references for matmul and transpose (the kernels in kernels/matmul.wgsl and
 * kernels/transpose.wgsl).
 */
export interface MatmulRefOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  batchA?: number;
  batchB?: number;
}

/** C[b] = alpha op(A[b]) op(B[b]); batch counts of 1 broadcast. */
export function matmulRef(
  A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number, o: MatmulRefOptions = {},
): Float64Array {
  const batchA = o.batchA ?? 1;
  const batchB = o.batchB ?? 1;
  const batch = Math.max(batchA, batchB);
  const alpha = o.alpha ?? 1;
  const C = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    const ba = batchA === 1 ? 0 : b * M * K;
    const bb = batchB === 1 ? 0 : b * K * N;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const a = o.transA ? A[ba + k * M + m] : A[ba + m * K + k];
          const bv = o.transB ? B[bb + n * K + k] : B[bb + k * N + n];
          acc += a * bv;
        }
        C[b * M * N + m * N + n] = alpha * acc;
      }
    }
  }
  return C;
}
