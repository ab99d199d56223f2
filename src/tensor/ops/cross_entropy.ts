import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, Tensor, tensorFrom } from '../tensor.js';
import { maskedMean } from './reduce.js';

const CE_PARAMS = { N: 'u32', V: 'u32', ignoreIndex: 'i32', stride: 'u32' } as const;
export const CE_PARTIALS: KernelSpec = { file: 'cross_entropy', entry: 'ce_partials', params: CE_PARAMS, storage: ['read', 'rw'] };
export const CE_PARTIALS4: KernelSpec = { ...CE_PARTIALS, entry: 'ce_partials4' };
export const CE_ROWS: KernelSpec = { file: 'cross_entropy', entry: 'ce_rows', params: CE_PARAMS, storage: ['read', 'read', 'read', 'rw', 'rw', 'rw'] };
export const CE_BACKWARD: KernelSpec = {
  file: 'cross_entropy_bwd', entry: 'ce_backward', params: CE_PARAMS,
  storage: ['read', 'read', 'read', 'read', 'read', 'rw'],
};
export const CE_BACKWARD4: KernelSpec = { ...CE_BACKWARD, entry: 'ce_backward4' };

/** Lanes per row in ce_partials and ce_backward (the kernels' WG). */
const LANES = 64;

export type Targets = Int32Array | readonly number[] | Tensor;

export interface CrossEntropyOptions {
  /** Rows with this target are left out of the mean and get no gradient. */
  ignoreIndex?: number;
  /**
   * The classes are the first `classes` columns of each row; the rest is padding (logits laid
   * out with vec4-aligned rows), not read as classes and given a zero gradient. Default: all.
   */
  classes?: number;
}

export interface CrossEntropyRows {
  /** Per-row loss, lse - logit of the target; 0 for ignored rows. [N] */
  loss: Tensor;
  /** Per-row log-sum-exp of the logits. [N] */
  lse: Tensor;
  /** 1 for rows that count, 0 for ignored ones. [N] */
  weight: Tensor;
}

function rowWorkgroups(N: number): [number, number] {
  const x = Math.min(Math.max(N, 1), 65535);
  return [x, Math.ceil(Math.max(N, 1) / x)];
}

/**
 * Checks shapes and host targets (each in [0, V) or ignoreIndex) and uploads host targets.
 * Targets already on the GPU cannot be checked without a read: out-of-range ones are ignored.
 */
function prepare(logits: Tensor, targets: Targets, opts: CrossEntropyOptions, op: string): { N: number; V: number; stride: number; ignoreIndex: number; targetTensor: Tensor; uploaded: boolean } {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (logits.dtype !== 'f32') throw new PantherError('E_DTYPE', `logits must be f32, is ${logits.dtype} (${logits.describe()})`, op);
  if (logits.shape.length !== 2) throw new PantherError('E_SHAPE', `logits must be [N, V], has shape [${logits.shape}]`, op);
  const [N, stride] = logits.shape;
  if (N < 1 || stride < 1) throw new PantherError('E_SHAPE', `logits [${logits.shape}] are empty`, op);
  const V = opts.classes ?? stride;
  if (!(Number.isInteger(V) && V >= 1 && V <= stride)) throw new PantherError('E_ARGUMENT', `classes must be an integer in [1, ${stride}] (the row width of logits [${logits.shape}]), is ${V}`, op);
  if (!Number.isInteger(ignoreIndex)) throw new PantherError('E_ARGUMENT', `ignoreIndex must be an integer, is ${ignoreIndex}`, op);
  if (targets instanceof Tensor) {
    if (targets.dtype !== 'i32') throw new PantherError('E_DTYPE', `targets must be i32, is ${targets.dtype} (${targets.describe()})`, op);
    if (targets.size !== N) throw new PantherError('E_SHAPE', `targets [${targets.shape}] do not match ${N} rows of logits [${logits.shape}]`, op);
    return { N, V, stride, ignoreIndex, targetTensor: targets, uploaded: false };
  }
  if (targets.length !== N) throw new PantherError('E_SHAPE', `${targets.length} targets for ${N} rows of logits [${logits.shape}]`, op);
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    if (!Number.isInteger(t) || t < 0 || t >= V) {
      throw new PantherError('E_ARGUMENT', `target at row ${r} is ${t}, outside [0, ${V}) and not ignoreIndex ${ignoreIndex}`, op);
    }
  }
  return { N, V, stride, ignoreIndex, targetTensor: tensorFrom(logits.gpu, targets, [N], 'i32'), uploaded: true };
}

type Prepared = ReturnType<typeof prepare>;

function dispatchRows(logits: Tensor, s: Prepared): CrossEntropyRows {
  const gpu = logits.gpu;
  const { N, targetTensor } = s;
  const params = { N, V: s.V, ignoreIndex: s.ignoreIndex, stride: s.stride };
  const partials = empty(gpu, [N * LANES * 2]);
  gpu.dispatch(s.stride % 4 === 0 ? CE_PARTIALS4 : CE_PARTIALS, { buffers: [logits.buffer, partials.buffer], params, workgroups: rowWorkgroups(N) });
  const rows: CrossEntropyRows = { loss: empty(gpu, [N]), lse: empty(gpu, [N]), weight: empty(gpu, [N]) };
  gpu.dispatch(CE_ROWS, {
    buffers: [logits.buffer, targetTensor.buffer, partials.buffer, rows.loss.buffer, rows.lse.buffer, rows.weight.buffer],
    params,
    workgroups: grid1d(N, LANES),
  });
  partials.dispose();
  return rows;
}

/**
 * Per-row cross-entropy of logits [N, V] against targets [N], without the tape: for
 * evaluation (negative log-likelihood and log-normalizer of each row).
 */
export function crossEntropyRows(logits: Tensor, targets: Targets, opts: CrossEntropyOptions = {}): CrossEntropyRows {
  const s = prepare(logits, targets, opts, 'crossEntropyRows');
  const rows = dispatchRows(logits, s);
  if (s.uploaded) s.targetTensor.dispose();
  return rows;
}

/**
 * Gradient of the mean cross-entropy with respect to logits [N, stride] (their first
 * `classes` columns; padding gets 0): (softmax - onehot) * g / count, with the row
 * log-sum-exps of the forward pass and g and count read on the GPU. No tape.
 */
export function crossEntropyBackward(
  logits: Tensor, targets: Tensor, lse: Tensor, count: Tensor, g: Tensor, opts: { ignoreIndex: number; classes?: number },
): Tensor {
  const [N, stride] = logits.shape;
  const dlogits = empty(logits.gpu, [N, stride]);
  logits.gpu.dispatch(stride % 4 === 0 ? CE_BACKWARD4 : CE_BACKWARD, {
    buffers: [logits.buffer, targets.buffer, lse.buffer, count.buffer, g.buffer, dlogits.buffer],
    params: { N, V: opts.classes ?? stride, ignoreIndex: opts.ignoreIndex, stride },
    workgroups: rowWorkgroups(N),
  });
  return dlogits;
}

/**
 * Mean softmax cross-entropy of logits [N, V] against targets [N] (host ints or an i32
 * tensor) over the rows whose target is not ignoreIndex: a [1] tensor, 0 when every row is
 * ignored. The count of rows is reduced on the GPU, so nothing is read back.
 */
export function crossEntropy(logits: Tensor, targets: Targets, opts: CrossEntropyOptions = {}): Tensor {
  const s = prepare(logits, targets, opts, 'crossEntropy');
  const { targetTensor, uploaded } = s;
  const gpu = logits.gpu;
  const rows = dispatchRows(logits, s);
  const { mean, weightSum } = maskedMean(rows.loss, rows.weight);
  rows.loss.dispose();
  rows.weight.dispose();
  if (!isRecording(gpu, [logits])) {
    rows.lse.dispose();
    weightSum.dispose();
    if (uploaded) targetTensor.dispose();
    return mean;
  }
  record('crossEntropy', [logits], [mean], ([g]) => [crossEntropyBackward(logits, targetTensor, rows.lse, weightSum, g!, { ignoreIndex: s.ignoreIndex, classes: s.V })]);
  return mean;
}
