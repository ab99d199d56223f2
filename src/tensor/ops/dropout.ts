import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { grid1d } from '../../gpu/runtime.js';
import { record } from '../tape.js';
import { empty, tensorFrom, type Tensor } from '../tensor.js';

export const DROPOUT: KernelSpec = {
  file: 'dropout', entry: 'dropout',
  params: { n: 'u32', width: 'u32', stride: 'u32', seed: 'u32', threshold: 'u32', scale: 'f32' },
  storage: ['read', 'read', 'rw'],
};
export const DROPOUT4: KernelSpec = { ...DROPOUT, entry: 'dropout4' };

export interface DropoutOptions {
  p: number;
  seed: number;
  /**
   * For each leading row of x (x viewed as [rows, width]), its row in the global batch;
   * identity by default. Makes the mask independent of how the batch is sharded.
   */
  globalRows?: Uint32Array;
  /**
   * Row width of the untrimmed batch (default: the row width of x). Rows are taken as
   * right-aligned in it, so a batch cut to fewer leading (padding) positions draws the same
   * mask for every element it keeps.
   */
  rowStride?: number;
}

/** Inverted dropout with a hashed, recomputable mask (kernels/dropout.wgsl). */
export function dropout(x: Tensor, o: DropoutOptions): Tensor {
  if (!(o.p >= 0 && o.p < 1)) throw new PantherError('E_ARGUMENT', `dropout probability must be in [0, 1), is ${o.p}`, 'dropout');
  if (o.p === 0) return x;
  const rows = o.globalRows?.length ?? x.shape[0];
  if (x.size % rows !== 0) throw new PantherError('E_SHAPE', `${x.describe()} does not split into ${rows} rows`, 'dropout');
  const width = x.size / rows;
  const stride = o.rowStride ?? width;
  if (!(Number.isInteger(stride) && stride >= width)) throw new PantherError('E_ARGUMENT', `dropout row stride ${stride} is not an integer >= the row width ${width}`, 'dropout');
  const gpu = x.gpu;
  const globalRows = tensorFrom(gpu, o.globalRows ?? Uint32Array.from({ length: rows }, (_, i) => i), [rows], 'u32');
  const params = { n: x.size, width, stride, seed: o.seed >>> 0, threshold: Math.min(0xffffffff, Math.round(o.p * 2 ** 32)), scale: 1 / (1 - o.p) };
  const apply = (input: Tensor) => {
    const out = empty(gpu, input.shape);
    const wide = width % 4 === 0 && stride % 4 === 0;
    gpu.dispatch(wide ? DROPOUT4 : DROPOUT, { buffers: [input.buffer, globalRows.buffer, out.buffer], params, workgroups: grid1d(wide ? input.size / 4 : input.size, 64) });
    return out;
  };
  const y = apply(x);
  // The same mask and scale apply to the gradient.
  record('dropout', [x], [y], ([g]) => [apply(g!)]);
  return y;
}

/** Host copy of the kernel's hash, for tests and references. */
export function dropoutKeeps(seed: number, id: number, p: number): boolean {
  const pcg = (v: number) => {
    const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
    const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
    return ((word >>> 22) ^ word) >>> 0;
  };
  return pcg((pcg(id) ^ (seed >>> 0)) >>> 0) >= Math.min(0xffffffff, Math.round(p * 2 ** 32));
}
