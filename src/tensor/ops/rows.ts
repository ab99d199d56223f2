import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { grid1d } from '../../gpu/runtime.js';
import { record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';
import { fillInPlace } from './elementwise.js';

export const COPY_ROWS: KernelSpec = {
  file: 'rows', entry: 'copy_rows',
  params: { rows: 'u32', cols: 'u32', srcOffset: 'u32', dstOffset: 'u32', accumulate: 'u32' },
  storage: ['read', 'rw'],
};

function rowsOf(t: Tensor): [number, number] {
  const cols = t.shape[t.shape.length - 1];
  return [t.size / cols, cols];
}

/**
 * dst[dstOffset + r] (+)= src[srcOffset + r] for r < rows, over the last dimension (no
 * tape: a building block for ops that manage their own backward).
 */
export function copyRowsInto(src: Tensor, dst: Tensor, o: { rows: number; srcOffset?: number; dstOffset?: number; accumulate?: boolean }): void {
  const [srcRows, cols] = rowsOf(src);
  const [dstRows, dstCols] = rowsOf(dst);
  const srcOffset = o.srcOffset ?? 0;
  const dstOffset = o.dstOffset ?? 0;
  if (cols !== dstCols) throw new PantherError('E_SHAPE', `row widths differ: ${cols} vs ${dstCols}`, 'copyRows');
  if (srcOffset + o.rows > srcRows || dstOffset + o.rows > dstRows) {
    throw new PantherError('E_SHAPE', `rows ${srcOffset}+${o.rows} of ${srcRows} into ${dstOffset}+${o.rows} of ${dstRows} are out of range`, 'copyRows');
  }
  src.gpu.dispatch(COPY_ROWS, {
    buffers: [src.buffer, dst.buffer],
    params: { rows: o.rows, cols, srcOffset, dstOffset, accumulate: o.accumulate ? 1 : 0 },
    workgroups: grid1d(o.rows * cols, 64),
  });
}

/** Rows [start, start + count) of a [.., cols] tensor as a new [count, cols] tensor. */
export function sliceRows(x: Tensor, start: number, count: number): Tensor {
  const [, cols] = rowsOf(x);
  const out = empty(x.gpu, [count, cols]);
  copyRowsInto(x, out, { rows: count, srcOffset: start });
  record('sliceRows', [x], [out], ([g]) => {
    const gx = fillInPlace(empty(x.gpu, x.shape), 0);
    copyRowsInto(g!, gx, { rows: count, dstOffset: start });
    return [gx];
  });
  return out;
}
