import { PantherError } from '../../errors.js';
import { grid1d, type Gpu } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { record } from '../tape.js';
import { empty, shapeSize, type Tensor } from '../tensor.js';

const P = { n: 'u32', alpha: 'f32', beta: 'f32', cols: 'u32', offset: 'u32' } as const;
const spec = (entry: string, storage: KernelSpec['storage']): KernelSpec => ({ file: 'elementwise', entry, params: P, storage });

/** A scalar kernel and its vec4 twin. */
interface Pair {
  scalar: KernelSpec;
  vec4: KernelSpec;
}
const pair = (entry: string, storage: KernelSpec['storage']): Pair => ({ scalar: spec(entry, storage), vec4: spec(`${entry}4`, storage) });

export const FILL = pair('fill', ['rw']);
export const AXPBY = pair('axpby', ['read', 'read', 'rw']);
export const MUL = pair('mul', ['read', 'read', 'rw']);
export const ADD_ROW_VECTOR = pair('add_row_vector', ['read', 'read', 'rw']);
export const AXPY_INPLACE = pair('axpy_inplace', ['read', 'rw']);
export const SCALE = pair('scale', ['read', 'rw']);
export const SUM_ROWS = pair('sum_rows', ['read', 'rw']);
export const SUM_ROWS_SEGMENTS4 = spec('sum_rows_segments4', ['read', 'rw']);

const WG = 64;
const PER_LANE = 4;

/**
 * Dispatches an elementwise kernel over n elements: the vec4 twin over the first
 * floor(n / 4) * 4 and the scalar kernel over the rest (no tape).
 */
function run(gpu: Gpu, k: Pair, n: number, buffers: GPUBuffer[], alpha = 1, beta = 0, cols = 1): void {
  const n4 = Math.floor(n / 4);
  const vecCols = cols % 4 === 0 ? cols / 4 : 0;
  // add_row_vector can use vec4s only when rows are whole vec4s.
  const wide = n4 > 0 && (k !== ADD_ROW_VECTOR || vecCols > 0);
  let done = 0;
  if (wide) {
    gpu.dispatch(k.vec4, { buffers, params: { n: n4, alpha, beta, cols: vecCols || 1, offset: 0 }, workgroups: grid1d(Math.ceil(n4 / PER_LANE), WG) });
    done = 4 * n4;
  }
  if (done < n) gpu.dispatch(k.scalar, { buffers, params: { n, alpha, beta, cols, offset: done }, workgroups: grid1d(n - done, WG) });
}

export function sameShape(a: Tensor, b: Tensor, op: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new PantherError('E_SHAPE', `shapes [${a.shape}] and [${b.shape}] differ`, op);
  }
}

/** Fills in place with `value` (no tape). */
export function fillInPlace(t: Tensor, value: number): Tensor {
  run(t.gpu, FILL, t.size, [t.buffer], value);
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
  run(y.gpu, AXPY_INPLACE, y.size, [x.buffer, y.buffer], alpha, beta);
}

/** alpha * x as a new tensor. */
export function scale(x: Tensor, alpha: number): Tensor {
  const out = empty(x.gpu, x.shape);
  run(x.gpu, SCALE, x.size, [x.buffer, out.buffer], alpha);
  record('scale', [x], [out], ([g]) => [alpha === 1 ? g : scale(g!, alpha)]);
  return out;
}

export function copy(x: Tensor): Tensor {
  return scale(x, 1);
}

/** alpha * a + beta * b (residual add, weighted blends). */
export function axpby(a: Tensor, b: Tensor, alpha = 1, beta = 1): Tensor {
  sameShape(a, b, 'axpby');
  const out = empty(a.gpu, a.shape);
  run(a.gpu, AXPBY, a.size, [a.buffer, b.buffer, out.buffer], alpha, beta);
  record('axpby', [a, b], [out], ([g]) => [
    // A coefficient of 1 passes the gradient through (backward copies it only where it must).
    a.requiresGrad ? (alpha === 1 ? g : scale(g!, alpha)) : null,
    b.requiresGrad ? (beta === 1 ? g : scale(g!, beta)) : null,
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
  run(a.gpu, MUL, a.size, [a.buffer, b.buffer, out.buffer], alpha);
  record('mul', [a, b], [out], ([g]) => [
    a.requiresGrad ? mul(g!, b, alpha) : null,
    b.requiresGrad ? mul(g!, a, alpha) : null,
  ]);
  return out;
}

/** Rows per segment of a two-stage column sum (sumRowsInto). */
const SEGMENT_ROWS = 64;

/**
 * into[c] = alpha * sum over the `rows` rows of x[r, c] (no tape), in a fixed order: row
 * order, or for many rows of whole vec4s, row order within segments of SEGMENT_ROWS rows and
 * then segment order (one invocation per column would leave most of the adapter idle).
 */
export function sumRowsInto(x: Tensor, rows: number, cols: number, into: Tensor, alpha = 1): void {
  const vec = cols % 4 === 0;
  const width = vec ? cols / 4 : cols;
  const segments = Math.ceil(rows / SEGMENT_ROWS);
  let src = x;
  let n = rows;
  if (vec && segments > 2) {
    src = empty(x.gpu, [segments, cols]);
    x.gpu.dispatch(SUM_ROWS_SEGMENTS4, {
      buffers: [x.buffer, src.buffer],
      params: { n: rows, alpha: 1, beta: 0, cols: width, offset: SEGMENT_ROWS },
      workgroups: grid1d(width * segments, WG),
    });
    n = segments;
  }
  x.gpu.dispatch(vec ? SUM_ROWS.vec4 : SUM_ROWS.scalar, {
    buffers: [src.buffer, into.buffer],
    params: { n, alpha, beta: 0, cols: width, offset: 0 },
    workgroups: grid1d(width, WG),
  });
  if (src !== x) src.dispose();
}

/** Column sums of a [rows, cols] view: alpha * sum over rows. */
export function sumRows(x: Tensor, cols: number, alpha = 1): Tensor {
  if (cols <= 0 || x.size % cols !== 0) throw new PantherError('E_SHAPE', `size ${x.size} is not a multiple of ${cols} columns`, 'sumRows');
  const rows = x.size / cols;
  const out = empty(x.gpu, [cols]);
  sumRowsInto(x, rows, cols, out, alpha);
  record('sumRows', [x], [out], ([g]) => {
    // Every row of the input gets alpha * g.
    const zeros = full(x, 0);
    const gx = empty(x.gpu, x.shape);
    run(x.gpu, ADD_ROW_VECTOR, x.size, [zeros.buffer, g!.buffer, gx.buffer], 0, alpha, cols);
    zeros.dispose();
    return [gx];
  });
  return out;
}

/** x + bias broadcast over the last dimension (a linear layer's bias). */
export function addRowVector(x: Tensor, bias: Tensor): Tensor {
  const cols = x.shape[x.shape.length - 1];
  if (bias.size !== cols) throw new PantherError('E_SHAPE', `bias has ${bias.size} values for rows of ${cols}`, 'addRowVector');
  const out = empty(x.gpu, x.shape);
  run(x.gpu, ADD_ROW_VECTOR, x.size, [x.buffer, bias.buffer, out.buffer], 1, 1, cols);
  record('addRowVector', [x, bias], [out], ([g]) => [x.requiresGrad ? g : null, bias.requiresGrad ? sumRows(g!, cols) : null]);
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
