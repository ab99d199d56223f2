import type { Gpu } from '../gpu/runtime.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { dilatedConv } from '../tensor/ops/conv.js';
import { full } from '../tensor/ops/elementwise.js';
import { prototypeMatch } from '../tensor/ops/prototype.js';
import { noGrad } from '../tensor/tape.js';
import { tensorFrom, tidy, type Tensor } from '../tensor/tensor.js';
import type { BenchCase } from './harness.js';

/** Uniform values in [-1, 1) from a fixed LCG, so every run sees the same data. */
function benchData(n: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = (state / 4294967296 - 0.5) * 2;
  }
  return out;
}

/**
 * Builds inputs once; each run records the op (and, with `withBackward`, its backward from a
 * cotangent of ones) and frees everything it made.
 */
function sprmCase(
  kernel: string, shape: string, flops: number, bytes: number, withBackward: boolean,
  inputs: (gpu: Gpu) => Tensor[], op: (xs: Tensor[]) => Tensor,
): BenchCase {
  return {
    kernel, shape, flops, bytes,
    setup(gpu) {
      const xs = inputs(gpu);
      if (withBackward) xs.forEach((x) => x.requireGrad());
      const forward = () => noGrad(gpu, () => tidy(gpu, () => { op(xs); }));
      const forwardBackward = () => tidy(gpu, () => {
        const y = op(xs);
        backward(y, full(y, 1));
        zeroGrad(xs);
      });
      return {
        run: withBackward ? forwardBackward : forward,
        dispose: () => xs.forEach((x) => x.dispose()),
      };
    },
  };
}

function convCase(depthwise: boolean, B: number, L: number, C: number, K: number, dilation: number, withBackward: boolean): BenchCase {
  const macs = B * L * C * K * (depthwise ? 1 : C);
  // Backward: dx and dW each cost what the forward does.
  const flops = 2 * macs * (withBackward ? 3 : 1);
  const wSize = depthwise ? K * C : K * C * C;
  const bytes = 4 * (2 * B * L * C + wSize + C) * (withBackward ? 3 : 1);
  return sprmCase(
    'dilatedConv', `${depthwise ? 'depthwise' : 'full'} B${B} L${L} C${C} K${K} dil${dilation} ${withBackward ? 'fwd+bwd' : 'fwd'}`,
    flops, bytes, withBackward,
    (gpu) => [
      tensorFrom(gpu, benchData(B * L * C, 1), [B, L, C]),
      tensorFrom(gpu, benchData(wSize, 2), depthwise ? [K, C] : [K, C, C]),
      tensorFrom(gpu, benchData(C, 3), [C]),
    ],
    ([x, w, b]) => dilatedConv(x, w, b, { kernelSize: K, dilation, depthwise }),
  );
}

/**
 * Prototype matching; with `heads`, cross-attention to the prototypes: per-head dot products and
 * separate value prototypes.
 */
function prototypeCase(N: number, D: number, K: number, withBackward: boolean, heads = 1): BenchCase {
  // Forward: scores and mixture, 2 N K D each (over all heads). Backward: scores, dw and dx per
  // row (3 x), and the two-term sum over rows for dP (and dV) (2 x).
  const flops = 2 * N * K * D * (withBackward ? 7 : 2);
  const attention = heads > 1;
  const bytes = 4 * (2 * N * D + (attention ? 2 : 1) * K * D + N * heads * K) * (withBackward ? 3 : 1);
  return sprmCase(
    'prototypeMatch', `N${N} D${D} K${K}${attention ? ` heads${heads} values` : ''} ${withBackward ? 'fwd+bwd' : 'fwd'}`, flops, bytes, withBackward,
    (gpu) => [
      tensorFrom(gpu, benchData(N * D, 4), [N, D]),
      tensorFrom(gpu, benchData(K * D, 5), [K, D]),
      ...(attention ? [tensorFrom(gpu, benchData(K * D, 6), [K, D])] : []),
    ],
    ([x, p, v]) => (attention
      ? prototypeMatch(x, p, { temperature: Math.sqrt(D / heads), similarity: 'dot', heads, values: v })
      : prototypeMatch(x, p, { temperature: 0.1 })).out,
  );
}

export function sprmCases(): BenchCase[] {
  return [
    convCase(false, 8, 512, 64, 3, 2, false),
    convCase(false, 8, 512, 64, 3, 2, true),
    convCase(true, 8, 512, 64, 3, 2, false),
    convCase(true, 8, 512, 64, 3, 2, true),
    prototypeCase(4096, 64, 64, false),
    prototypeCase(4096, 64, 64, true),
    prototypeCase(4096, 64, 64, false, 2),
    prototypeCase(4096, 64, 64, true, 2),
  ];
}
