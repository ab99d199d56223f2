import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { record } from '../tape.js';
import { empty, shapeSize, type Tensor } from '../tensor.js';

const P = { n: 'u32', alpha: 'f32', beta: 'f32', cols: 'u32' } as const;
const spec = (entry: string, storage: KernelSpec['storage']): KernelSpec => ({ file: 'elementwise', entry, params: P, storage });

export const FILL = spec('fill', ['rw']);
export const AXPBY = spec('axpby', ['read', 'read', 'rw']);
export const MUL = spec('mul', ['read', 'read', 'rw']);
export const ADD_ROW_VECTOR = spec('add_row_vector', ['read', 'read', 'rw']);
export const AXPY_INPLACE = spec('axpy_inplace', ['read', 'rw']);
export const SCALE = spec('scale', ['read', 'rw']);
export const SUM_ROWS = spec('sum_rows', ['read', 'rw']);

export function sameShape(a: Tensor, b: Tensor, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new PantherError('E_SHAPE', `shapes [${a.shape}] and [${b.shape}] differ`, op);
  }
}

function params(n: number, alpha = 1, beta = 0, cols = 1) {
  return { n, alpha, beta, cols };
}

/** Fills in place with `value` (no tape). */
export function fillInPlace(t: Tensor, value: number): Tensor {
  t.gpu.dispatch(FILL, { buffers: [t.buffer], params: params(t.size, value), workgroups: grid1d(t.size, 64) });
  return t;
}

export function full(like: Tensor | { gpu: Tensor['gpu']; shape: readonly number[] }, value: number): Tensor {
  return fillInPlace(empty(like.gpu, like.shape), value);
}

export function zerosLike(t: Tensor): Tensor {
  return full(t, 0);
}

/** y <- alpha * x + beta * y, in place (no tape): gradient accumulation, optimizer helpers. */
export function axpyInPlace(y: Tensor, x: Tensor, alpha = 1, beta = 1): void {
  if (x.size !== y.size) throw new PantherError('E_SHAPE', `sizes ${x.size} and ${y.size} differ`, 'axpyInPlace');
  y.gpu.dispatch(AXPY_INPLACE, { buffers: [x.buffer, y.buffer], params: params(y.size, alpha, beta), workgroups: grid1d(y.size, 64) });
}

/** alpha * x as a new tensor. */
export function scale(x: Tensor, alpha: number): Tensor {
  const out = empty(x.gpu, x.shape);
  x.gpu.dispatch(SCALE, { buffers: [x.buffer, out.buffer], params: params(x.size, alpha), workgroups: grid1d(x.size, 64) });
  record('scale', [x], [out], ([g]) => [scale(g!, alpha)]);
  return out;
}

export function copy(x: Tensor): Tensor {
  return scale(x, 1);
}

/** alpha * a + beta * b (residual add, weighted blends). */
export function axpby(a: Tensor, b: Tensor, alpha = 1, beta = 1): Tensor {
  sameShape(a, b, 'axpby');
  const out = empty(a.gpu, a.shape);
  a.gpu.dispatch(AXPBY, { buffers: [a.buffer, b.buffer, out.buffer], params: params(a.size, alpha, beta), workgroups: grid1d(a.size, 64) });
  record('axpby', [a, b], [out], ([g]) => [
    a.requiresGrad ? scale(g!, alpha) : null,
    b.requiresGrad ? scale(g!, beta) : null,
  ]);
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  return axpby(a, b, 1, 1);
}

/** alpha * a * b elementwise. */
export function mul(a: Tensor, b: Tensor, alpha = 1): Tensor {
  sameShape(a, b, 'mul');
  const out = empty(a.gpu, a.shape);
  a.gpu.dispatch(MUL, { buffers: [a.buffer, b.buffer, out.buffer], params: params(a.size, alpha), workgroups: grid1d(a.size, 64) });
  record('mul', [a, b], [out], ([g]) => [
    a.requiresGrad ? mul(g!, b, alpha) : null,
    b.requiresGrad ? mul(g!, a, alpha) : null,
  ]);
  return out;
}

/** Column sums of a [rows, cols] view: alpha * sum over rows. */
export function sumRows(x: Tensor, cols: number, alpha = 1): Tensor {
  if (cols <= 0 || x.size % cols !== 0) throw new PantherError('E_SHAPE', `size ${x.size} is not a multiple of ${cols} columns`, 'sumRows');
  const rows = x.size / cols;
  const out = empty(x.gpu, [cols]);
  x.gpu.dispatch(SUM_ROWS, { buffers: [x.buffer, out.buffer], params: params(rows, alpha, 0, cols), workgroups: grid1d(cols, 64) });
  record('sumRows', [x], [out], ([g]) => [addRowVector(full(x, 0), g!)]);
  return out;
}

/** x + bias broadcast over the last dimension (a linear layer's bias). */
export function addRowVector(x: Tensor, bias: Tensor): Tensor {
  const cols = x.shape[x.shape.length - 1];
  if (bias.size !== cols) throw new PantherError('E_SHAPE', `bias has ${bias.size} values for rows of ${cols}`, 'addRowVector');
  const out = empty(x.gpu, x.shape);
  x.gpu.dispatch(ADD_ROW_VECTOR, { buffers: [x.buffer, bias.buffer, out.buffer], params: params(x.size, 1, 1, cols), workgroups: grid1d(x.size, 64) });
  record('addRowVector', [x, bias], [out], ([g]) => [x.requiresGrad ? copy(g!) : null, bias.requiresGrad ? sumRows(g!, cols) : null]);
  return out;
}

/** Same data, new shape: a view sharing the buffer; its gradient is a view too. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  if (shapeSize(shape) !== x.size) throw new PantherError('E_SHAPE', `cannot reshape [${x.shape}] to [${shape}]`, 'reshape');
  const out = x.view(shape);
  record('reshape', [x], [out], ([g]) => [g!.view(x.shape)]);
  return out;
}

/** `x` itself when it already has `shape`, else a reshaped copy. */
export function asShape(x: Tensor, shape: readonly number[]): Tensor {
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  return reshape(x, shape);
}
