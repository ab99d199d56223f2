import type { Gpu } from '../gpu/runtime.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { embedding } from '../tensor/ops/embedding.js';
import { lmHeadLoss } from '../model/lm-head.js';
import { gelu } from '../tensor/ops/gelu.js';
import { layerNorm } from '../tensor/ops/layernorm.js';
import { adamwStep, gradNorm } from '../tensor/ops/optim.js';
import { noGrad } from '../tensor/tape.js';
import { tensorFrom, tidy, type Tensor } from '../tensor/tensor.js';
import { randomData } from './harness.js';
import type { BenchCase } from './harness.js';

/**
 * Bytes count what the kernels move through memory once per run: reads and writes of every
 * element they touch.
 */
function randomIds(n: number, V: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % V;
  });
}

/**
 * Forward only, or forward + backward from a fixed cotangent, of an op. backward() frees the
 * cotangent it is given, so each run uploads it afresh, before its first dispatch (a write
 * after a dispatch would split the timed pass).
 */
function unaryCase(
  kernel: string, shape: string, bytes: number, withBackward: boolean, outSize: number,
  inputs: (gpu: Gpu) => Tensor[], op: (xs: Tensor[]) => Tensor,
): BenchCase {
  return {
    kernel, shape: `${shape}${withBackward ? ' fwd+bwd' : ''}`, flops: 0, bytes,
    setup(gpu) {
      const xs = inputs(gpu).map((x) => x.requireGrad(withBackward));
      const cotangent = randomData(outSize, 9);
      return {
        run: () => {
          if (!withBackward) {
            noGrad(gpu, () => tidy(gpu, () => { op(xs); }));
            return;
          }
          tidy(gpu, () => {
            const seed = tensorFrom(gpu, cotangent, [outSize]);
            backward(op(xs), seed);
          });
          zeroGrad(xs);
        },
        dispose: () => xs.forEach((t) => t.dispose()),
      };
    },
  };
}

export function layerNormCase(rows: number, D: number, withBackward: boolean): BenchCase {
  // forward: x read, y written; dx: x, g read, dx written; dgamma/dbeta: x, g read.
  const n = rows * D;
  return unaryCase('layerNorm', `${rows}x${D}`, 4 * n * (withBackward ? 7 : 2), withBackward, n,
    (gpu) => [
      tensorFrom(gpu, randomData(n, 1), [rows, D]),
      tensorFrom(gpu, randomData(D, 2), [D]),
      tensorFrom(gpu, randomData(D, 3), [D]),
    ],
    ([x, gamma, beta]) => layerNorm(x, gamma, beta));
}

export function geluCase(rows: number, cols: number, withBackward: boolean): BenchCase {
  // forward: x read, y written; backward: x, g read, dx written.
  const n = rows * cols;
  return unaryCase('gelu', `${rows}x${cols}`, 4 * n * (withBackward ? 5 : 2), withBackward, n,
    (gpu) => [tensorFrom(gpu, randomData(n, 4), [rows, cols])],
    ([x]) => gelu(x));
}

export function embeddingCase(N: number, V: number, D: number): BenchCase {
  // gather: N rows read and written; scatter: N gradient rows read, V rows written; ids and
  // the segment layout: N + (V + 1) + N ints.
  const bytes = 4 * ((2 * N + N + V) * D + 2 * N + V + 1);
  const ids = randomIds(N, V, 5);
  return unaryCase('embedding', `${N} ids V${V} D${D}`, bytes, true, N * D,
    (gpu) => [tensorFrom(gpu, randomData(V * D, 6), [V, D])],
    ([table]) => embedding(table, ids, [N]));
}

/**
 * Cross-entropy over `chunks` row blocks of [N, V] logits (one [2048, 20000] block is over
 * lavapipe's 128 MiB storage-binding limit, so the bench splits it as a trainer would).
 * forward: logits read once; backward: logits read, dlogits written.
 */
export function crossEntropyCase(chunks: number, N: number, V: number, withBackward: boolean): BenchCase {
  const n = chunks * N * V;
  return {
    kernel: 'crossEntropy',
    shape: `${chunks > 1 ? `${chunks}x` : ''}${N}x${V}${withBackward ? ' fwd+bwd' : ''}`,
    flops: 0,
    bytes: 4 * n * (withBackward ? 3 : 1),
    setup(gpu) {
      const logits = Array.from({ length: chunks }, (_, k) => tensorFrom(gpu, randomData(N * V, 7 + k), [N, V]).requireGrad(withBackward));
      const targets = Array.from({ length: chunks }, (_, k) => tensorFrom(gpu, randomIds(N, V, 20 + k), [N], 'i32'));
      return {
        run: () => {
          if (!withBackward) {
            noGrad(gpu, () => tidy(gpu, () => logits.forEach((l, k) => { crossEntropy(l, targets[k]); })));
            return;
          }
          tidy(gpu, () => logits.forEach((l, k) => backward(crossEntropy(l, targets[k]))));
          zeroGrad(logits);
        },
        dispose: () => [...logits, ...targets].forEach((t) => t.dispose()),
      };
    },
  };
}

/**
 * The vocabulary head's loss (lm-head.ts): N hidden rows of width d against V tokens, every row
 * with a target. FLOPs count its matmuls: the logits (forward), then dh and dW (backward, which
 * reuses the logits). Bytes: h, W and the logits written once and read by the cross-entropy;
 * the backward reads the logits again and writes and reads their gradient twice.
 */
export function lmHeadCase(N: number, d: number, V: number, withBackward: boolean): BenchCase {
  const targets = Int32Array.from(randomIds(N, V - 1, 11), (t) => t + 1);
  const matmulFlops = 2 * N * d * V;
  const bytes = 4 * (N * d + d * V + 2 * N * V + (withBackward ? 4 * N * V + 2 * (N * d + d * V) : 0));
  return {
    ...unaryCase('lmHead', `${N}x${d} V${V}`, bytes, withBackward, 1,
      (gpu) => [tensorFrom(gpu, randomData(N * d, 12), [N, d]), tensorFrom(gpu, randomData(d * V, 13), [d, V])],
      ([h, W]) => lmHeadLoss(h, W, targets)),
    flops: matmulFlops * (withBackward ? 3 : 1),
  };
}

/** Parameter-like tensors: `count` of `size` elements. */
function parameterSet(gpu: Gpu, count: number, size: number, seed: number): Tensor[] {
  return Array.from({ length: count }, (_, k) => tensorFrom(gpu, randomData(size, seed + k), [size]));
}

export function gradNormCase(count: number, size: number): BenchCase {
  return {
    kernel: 'gradNorm',
    shape: `${count}x${size}`,
    flops: 0,
    bytes: 4 * count * size,
    setup(gpu) {
      const grads = parameterSet(gpu, count, size, 30);
      return {
        run: () => tidy(gpu, () => { gradNorm(grads); }),
        dispose: () => grads.forEach((t) => t.dispose()),
      };
    },
  };
}

/** adamwStep over `count` tensors of `size` parameters: grad, p, m, v read; p, m, v written. */
export function adamwCase(count: number, size: number): BenchCase {
  return {
    kernel: 'adamw',
    shape: `${count}x${size}`,
    flops: 0,
    bytes: 4 * 7 * count * size,
    setup(gpu) {
      const [params, grads, m, v] = [40, 60, 80, 100].map((seed) => parameterSet(gpu, count, size, seed));
      const scale = tensorFrom(gpu, [0.5], [1]);
      const hyper = { lr: 1e-3, beta1: 0.9, beta2: 0.98, eps: 1e-8, weightDecay: 0.01, step: 10 };
      for (const t of v) t.write(randomData(size, 3).map(Math.abs));
      return {
        run: () => params.forEach((p, k) => adamwStep(p, grads[k], m[k], v[k], hyper, scale)),
        dispose: () => [...params, ...grads, ...m, ...v, scale].forEach((t) => t.dispose()),
      };
    },
  };
}

export function commonCases(): BenchCase[] {
  return [
    layerNormCase(8192, 256, false),
    layerNormCase(8192, 256, true),
    geluCase(8192, 1024, false),
    geluCase(8192, 1024, true),
    embeddingCase(16384, 20000, 128),
    crossEntropyCase(2, 1024, 20000, false),
    crossEntropyCase(2, 1024, 20000, true),
    // A vocabulary of S3-Rec Yelp's size (20,033 tokens: not a multiple of 4).
    lmHeadCase(1024, 64, 20033, false),
    lmHeadCase(1024, 64, 20033, true),
    gradNormCase(10, 1_000_000),
    adamwCase(10, 1_000_000),
  ];
}
