import { PantherError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { tensorFrom, type Tensor } from '../tensor/tensor.js';
import type { Rng } from './random.js';

export type Init =
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'constant'; value: number };

export function initValues(n: number, init: Init, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  if (init.kind === 'constant') return out.fill(init.value);
  for (let i = 0; i < n; i++) {
    out[i] = init.kind === 'normal' ? init.std * rng.normal() : (2 * rng.next() - 1) * init.bound;
  }
  return out;
}

/**
 * Owns named parameters (dotted names, as saved in checkpoints). Parameters live outside
 * every scope and require grad.
 */
export class ParameterStore {
  readonly params = new Map<string, Tensor>();

  constructor(readonly gpu: Gpu, readonly rng: Rng) {}

  create(name: string, shape: readonly number[], init: Init): Tensor {
    if (this.params.has(name)) throw new PantherError('E_ARGUMENT', `parameter '${name}' defined twice`, 'ParameterStore');
    const n = shape.reduce((a, b) => a * b, 1);
    const t = tensorFrom(this.gpu, initValues(n, init, this.rng), shape, 'f32', name).keep().requireGrad();
    this.params.set(name, t);
    return t;
  }

  get(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new PantherError('E_ARGUMENT', `no parameter '${name}'`, 'ParameterStore');
    return t;
  }

  list(): Tensor[] {
    return [...this.params.values()];
  }

  count(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n;
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
  }
}
