import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, Tensor, tensorFrom } from '../tensor.js';
import { maskedMean } from './reduce.js';

const CE_PARAMS = { N: 'u32', V: 'u32', ignoreIndex: 'i32' } as const;
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
function prepare(logits: Tensor, targets: Targets, ignoreIndex: number, op: string): { N: number; V: number; targetTensor: Tensor; uploaded: boolean } {
  if (logits.dtype !== 'f32') throw new PantherError('E_DTYPE', `logits must be f32, is ${logits.dtype} (${logits.describe()})`, op);
  if (logits.shape.length !== 2) throw new PantherError('E_SHAPE', `logits must be [N, V], has shape [${logits.shape}]`, op);
  const [N, V] = logits.shape;
  if (N < 1 || V < 1) throw new PantherError('E_SHAPE', `logits [${logits.shape}] are empty`, op);
  if (!Number.isInteger(ignoreIndex)) throw new PantherError('E_ARGUMENT', `ignoreIndex must be an integer, is ${ignoreIndex}`, op);
  if (targets instanceof Tensor) {
    if (targets.dtype !== 'i32') throw new PantherError('E_DTYPE', `targets must be i32, is ${targets.dtype} (${targets.describe()})`, op);
    if (targets.size !== N) throw new PantherError('E_SHAPE', `targets [${targets.shape}] do not match ${N} rows of logits [${logits.shape}]`, op);
    return { N, V, targetTensor: targets, uploaded: false };
  }
  if (targets.length !== N) throw new PantherError('E_SHAPE', `${targets.length} targets for ${N} rows of logits [${logits.shape}]`, op);
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (t === ignoreIndex) continue;
    if (!Number.isInteger(t) || t < 0 || t >= V) {
      throw new PantherError('E_ARGUMENT', `target at row ${r} is ${t}, outside [0, ${V}) and not ignoreIndex ${ignoreIndex}`, op);
    }
  }
  return { N, V, targetTensor: tensorFrom(logits.gpu, targets, [N], 'i32'), uploaded: true };
}

function dispatchRows(logits: Tensor, targetTensor: Tensor, N: number, V: number, ignoreIndex: number): CrossEntropyRows {
  const gpu = logits.gpu;
  const params = { N, V, ignoreIndex };
  const partials = empty(gpu, [N * LANES * 2]);
  gpu.dispatch(V % 4 === 0 ? CE_PARTIALS4 : CE_PARTIALS, { buffers: [logits.buffer, partials.buffer], params, workgroups: rowWorkgroups(N) });
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
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const { N, V, targetTensor, uploaded } = prepare(logits, targets, ignoreIndex, 'crossEntropyRows');
  const rows = dispatchRows(logits, targetTensor, N, V, ignoreIndex);
  if (uploaded) targetTensor.dispose();
  return rows;
}

/**
 * Mean softmax cross-entropy of logits [N, V] against targets [N] (host ints or an i32
 * tensor) over the rows whose target is not ignoreIndex: a [1] tensor, 0 when every row is
 * ignored. The count of rows is reduced on the GPU, so nothing is read back.
 */
export function crossEntropy(logits: Tensor, targets: Targets, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const { N, V, targetTensor, uploaded } = prepare(logits, targets, ignoreIndex, op);
  const gpu = logits.gpu;
  const rows = dispatchRows(logits, targetTensor, N, V, ignoreIndex);
  const { mean, weightSum } = maskedMean(rows.loss, rows.weight);
  rows.loss.dispose();
  rows.weight.dispose();
  if (!isRecording(gpu, [logits])) {
    rows.lse.dispose();
    weightSum.dispose();
    if (uploaded) targetTensor.dispose();
    return mean;
  }
  record(op, [logits], [mean], ([g]) => {
    const dlogits = empty(gpu, [N, V]);
    gpu.dispatch(V % 4 === 0 ? CE_BACKWARD4 : CE_BACKWARD, {
      buffers: [logits.buffer, targetTensor.buffer, rows.lse.buffer, weightSum.buffer, g!.buffer, dlogits.buffer],
      params: { N, V, ignoreIndex },
      workgroups: rowWorkgroups(N),
    });
    return [dlogits];
  });
  return mean;
}
