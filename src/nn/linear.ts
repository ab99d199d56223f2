import { addRowVector, reshape } from '../tensor/ops/elementwise.js';
import { matmul } from '../tensor/ops/matmul.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ParameterStore } from './module.js';

/** y = x W + b over the last dimension; W is [in, out]. */
export class Linear {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(store: ParameterStore, name: string, readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; std?: number } = {}) {
    this.weight = store.create(`${name}.weight`, [inFeatures, outFeatures], { kind: 'normal', std: opts.std ?? 0.02 });
    this.bias = opts.bias === false ? null : store.create(`${name}.bias`, [outFeatures], { kind: 'constant', value: 0 });
  }

  forward(x: Tensor): Tensor {
    const lead = x.shape.slice(0, -1);
    const rows = lead.reduce((a, b) => a * b, 1);
    // Fold the leading dimensions into rows: one matmul, and dW needs no batch reduction.
    const flat = x.shape.length === 2 ? x : reshape(x, [rows, this.inFeatures]);
    let y = matmul(flat, this.weight);
    if (this.bias) y = addRowVector(y, this.bias);
    return x.shape.length === 2 ? y : reshape(y, [...lead, this.outFeatures]);
  }
}
