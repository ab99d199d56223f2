import { runBackward } from './tape.js';
import type { Tensor } from './tensor.js';
import { axpyInPlace, copy, full } from './ops/elementwise.js';

/**
 * Backpropagates from `loss` (seeded with ones, or with `gradient`) through the recorded
 * tape into every tensor that requires grad. `onLeafDone` hears of each leaf (parameter)
 * whose gradient is final while the rest of the pass is still being recorded, so its
 * gradient can be read back and communicated while the GPU works on the rest.
 */
export function backward(loss: Tensor, gradient?: Tensor, onLeafDone?: (leaf: Tensor) => void): void {
  runBackward(
    loss,
    {
      accumulate: (into, add) => axpyInPlace(into, add, 1, 1),
      seed: (like) => full(like, 1),
      copy: (t) => copy(t),
      onLeafDone,
    },
    gradient,
  );
}

/** Drops the gradients of the given tensors (parameters) back to the pool. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
