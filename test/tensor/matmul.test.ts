import { describe, expect, it } from 'vitest';
import { matmulRef } from '../../src/reference/linalg.js';
import { backward } from '../../src/tensor/autograd.js';
import { matmul } from '../../src/tensor/ops/matmul.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { PantherError } from '../../src/errors.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn } from '../support/numeric.js';

const shapes: [number, number, number, number][] = [
  // batch, M, N, K
  [1, 1, 1, 1],
  [1, 7, 5, 3],
  [2, 33, 65, 17],
  [3, 64, 256, 64],
  [1, 129, 300, 70],
  // multiples of 4 but not of 8: the subgroup kernel reads transposed operands itself
  [2, 36, 40, 12],
  [1, 20, 8, 4],
];

for (const variant of ['subgroup', 'reg', 'tiled'] as const) {
  describe(`matmul (${variant})`, () => {
    const gpu = useGpu({ tunables: { matmul: variant } });

    for (const [batch, M, N, K] of shapes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          it(`forward and backward ${batch}x${M}x${N}x${K} transA=${transA} transB=${transB}`, async () => {
            const g = gpu();
            const a = randn(batch * M * K, 1 + M);
            const b = randn(batch * K * N, 2 + N);
            const w = randn(batch * M * N, 3);
            const aShape = transA ? [batch, K, M] : [batch, M, K];
            const bShape = transB ? [batch, N, K] : [batch, K, N];
            await (async () => {
              const A = tensorFrom(g, a, aShape).requireGrad();
              const B = tensorFrom(g, b, bShape).requireGrad();
              const C = matmul(A, B, { transA, transB, alpha: 0.5 });
              expect(C.shape).toEqual([batch, M, N]);
              const ref = matmulRef(a, b, M, N, K, { transA, transB, alpha: 0.5, batchA: batch, batchB: batch });
              expect(maxRelError(await C.readF32(), ref)).toBeLessThan(1e-4);

              backward(C, tensorFrom(g, w, C.shape));
              const lossA = (x: Float64Array) => dot(w, matmulRef(x, b, M, N, K, { transA, transB, alpha: 0.5, batchA: batch, batchB: batch }));
              const lossB = (x: Float64Array) => dot(w, matmulRef(a, x, M, N, K, { transA, transB, alpha: 0.5, batchA: batch, batchB: batch }));
              const pick = (n: number) => Array.from({ length: Math.min(n, 40) }, (_, i) => Math.floor((i * 7919) % n));
              const idxA = pick(a.length);
              const idxB = pick(b.length);
              const fdA = finiteDiff(lossA, a, 1e-3, idxA);
              const fdB = finiteDiff(lossB, b, 1e-3, idxB);
              const gA = await A.grad!.readF32();
              const gB = await B.grad!.readF32();
              expect(maxRelError(idxA.map((i) => gA[i]), idxA.map((i) => fdA[i]))).toBeLessThan(1e-4);
              expect(maxRelError(idxB.map((i) => gB[i]), idxB.map((i) => fdB[i]))).toBeLessThan(1e-4);
              A.dispose();
              B.dispose();
            })();
          });
        }
      }
    }

    it('broadcasts an operand with batch 1 and sums its gradient over the batch', async () => {
      const g = gpu();
      const [batch, M, N, K] = [3, 9, 11, 5];
      const a = randn(batch * M * K, 11);
      const b = randn(K * N, 12);
      const w = randn(batch * M * N, 13);
      const A = tensorFrom(g, a, [batch, M, K]).requireGrad();
      const B = tensorFrom(g, b, [K, N]).requireGrad();
      const C = matmul(A, B);
      expect(maxRelError(await C.readF32(), matmulRef(a, b, M, N, K, { batchA: batch }))).toBeLessThan(1e-4);
      backward(C, tensorFrom(g, w, C.shape));
      const fd = finiteDiff((x) => dot(w, matmulRef(a, x, M, N, K, { batchA: batch })), b, 1e-3);
      expect(B.grad!.shape).toEqual([K, N]);
      expect(maxRelError(await B.grad!.readF32(), fd)).toBeLessThan(1e-4);
    });

    it('rejects mismatched inner dimensions before any dispatch', () => {
      const g = gpu();
      const before = g.dispatchCount;
      const A = tensorFrom(g, randn(6, 1), [2, 3]);
      const B = tensorFrom(g, randn(8, 1), [4, 2]);
      expect(() => matmul(A, B)).toThrowError(PantherError);
      expect(() => matmul(A, B)).toThrowError(/inner dimensions differ/);
      expect(g.dispatchCount).toBe(before);
    });
  });
}
