import type { Gpu } from '../gpu/runtime.js';
import { matmul } from '../tensor/ops/matmul.js';
import { tensorFrom, tidy, type Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/tape.js';
import { randomData, type BenchCase } from './harness.js';
import { attentionCases } from './cases-attention.js';
import { commonCases } from './cases-common.js';
import { sprmCases } from './cases-sprm.js';


/** Builds inputs once; each run records the op and frees its output. */
function opCase(
  kernel: string, shape: string, flops: number, bytes: number,
  inputs: (gpu: Gpu) => Tensor[], op: (xs: Tensor[]) => unknown,
): BenchCase {
  return {
    kernel, shape, flops, bytes,
    setup(gpu) {
      const xs = inputs(gpu);
      return {
        run: () => noGrad(gpu, () => tidy(gpu, () => { op(xs); })),
        dispose: () => xs.forEach((x) => x.dispose()),
      };
    },
  };
}

export function matmulCase(batch: number, M: number, N: number, K: number, transB = false): BenchCase {
  return opCase(
    'matmul', `${batch}x${M}x${N}x${K}${transB ? ' Bᵀ' : ''}`, 2 * batch * M * N * K, 4 * batch * (M * K + K * N + M * N),
    (gpu) => [
      tensorFrom(gpu, randomData(batch * M * K, 1), [batch, M, K]),
      tensorFrom(gpu, randomData(batch * K * N, 2), transB ? [batch, N, K] : [batch, K, N]),
    ],
    ([a, b]) => matmul(a, b, { transB }),
  );
}

export function kernelCases(): BenchCase[] {
  return [
    matmulCase(1, 1024, 1024, 1024),
    matmulCase(1, 1024, 1024, 1024, true),
    matmulCase(8, 256, 256, 64),
    matmulCase(1, 4096, 512, 128),
    ...attentionCases(),
    ...sprmCases(),
    ...commonCases(),
  ];
}
