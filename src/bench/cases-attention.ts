import type { Gpu } from '../gpu/runtime.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { attention } from '../tensor/ops/attention.js';
import { copy } from '../tensor/ops/elementwise.js';
import { noGrad } from '../tensor/tape.js';
import { tensorFrom, tidy } from '../tensor/tensor.js';
import { randomData } from './harness.js';
import type { BenchCase } from './harness.js';

/**
 * Causal attention at B x H x L x D. FLOPs count what the kernels compute: the forward does
 * two causal L x L x D products (scores, then probabilities times values): 4 B H L^2 D / 2.
 * The backward recomputes scores and dO V^T in both of its passes, so it does seven such
 * products (dQ pass: scores, dP, dQ; dK/dV pass: scores, dP, dV, dK): 4.5x the forward in
 * all, against 3.5x for a backward that could keep the probabilities. Which kernels run
 * (subgroup or portable) follows the device's tunables and the head dim, as in `attention`.
 */
export function attentionCase(B: number, H: number, L: number, D: number, withBackward: boolean): BenchCase {
  const C = H * D;
  const causalProduct = B * H * L * L * D;
  const flops = (withBackward ? 9 : 2) * causalProduct;
  // q, k, v read and the output written; the backward adds dO read and dq, dk, dv written.
  const bytes = 4 * B * L * C * (withBackward ? 8 : 4);
  return {
    kernel: 'attention',
    shape: `B${B} H${H} L${L} D${D}${withBackward ? ' fwd+bwd' : ''}`,
    flops,
    bytes,
    setup(gpu: Gpu) {
      const shape = [B, L, C];
      const [q, k, v] = [1, 2, 3].map((seed) => tensorFrom(gpu, randomData(B * L * C, seed), shape).requireGrad(withBackward));
      const dOut = tensorFrom(gpu, randomData(B * L * C, 4), shape);
      return {
        run: () => {
          if (!withBackward) {
            noGrad(gpu, () => tidy(gpu, () => { attention(q, k, v, { heads: H }); }));
            return;
          }
          // backward() frees the seed gradient it is given, so each run seeds with a copy.
          tidy(gpu, () => backward(attention(q, k, v, { heads: H }), copy(dOut)));
          zeroGrad([q, k, v]);
        },
        dispose: () => [q, k, v, dOut].forEach((t) => t.dispose()),
      };
    },
  };
}

export function attentionCases(): BenchCase[] {
  return [
    attentionCase(1, 4, 512, 64, false),
    attentionCase(1, 4, 512, 64, true),
    attentionCase(4, 2, 256, 32, false),
    attentionCase(4, 2, 256, 32, true),
  ];
}
