import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { empty, type Tensor } from '../tensor.js';

const REDUCE_PARAMS = { n: 'u32', offset: 'u32', groups: 'u32', flag: 'u32', value: 'f32' } as const;
export const SUMSQ_PARTIALS: KernelSpec = { file: 'reduce', entry: 'sumsq_partials', params: REDUCE_PARAMS, storage: ['read', 'rw'] };
export const SUMSQ_PARTIALS4: KernelSpec = { ...SUMSQ_PARTIALS, entry: 'sumsq_partials4' };
export const SUM_PARTIALS: KernelSpec = { file: 'reduce', entry: 'sum_partials', params: REDUCE_PARAMS, storage: ['read', 'rw'] };
export const MASKED_MEAN: KernelSpec = { file: 'reduce', entry: 'masked_mean', params: REDUCE_PARAMS, storage: ['read', 'read', 'rw', 'rw'] };
export const CLIP_SCALE: KernelSpec = { file: 'reduce', entry: 'clip_scale', params: REDUCE_PARAMS, storage: ['read', 'rw'] };

const WG = 64;
const CHUNK = 256;
const NO_PARAMS = { n: 0, offset: 0, groups: 0, flag: 0, value: 0 };

/**
 * sum(values) / max(sum(weights), 1) and sum(weights), each a [1] tensor, reduced on the GPU
 * in a fixed order (the mean loss over rows that count, and how many rows counted). No tape.
 */
export function maskedMean(values: Tensor, weights: Tensor): { mean: Tensor; weightSum: Tensor } {
  if (values.size !== weights.size) throw new PantherError('E_SHAPE', `${values.size} values and ${weights.size} weights`, 'maskedMean');
  const gpu = values.gpu;
  const mean = empty(gpu, [1]);
  const weightSum = empty(gpu, [1]);
  gpu.dispatch(MASKED_MEAN, {
    buffers: [values.buffer, weights.buffer, mean.buffer, weightSum.buffer],
    params: { ...NO_PARAMS, n: values.size },
    workgroups: [1],
  });
  return { mean, weightSum };
}

/** Elements (vec4s when the size allows) and workgroups of one tensor's partial sums. */
function sumsqPlan(size: number): { spec: KernelSpec; n: number; groups: number } {
  const wide = size % 4 === 0;
  const n = wide ? size / 4 : size;
  return { spec: wide ? SUMSQ_PARTIALS4 : SUMSQ_PARTIALS, n, groups: Math.ceil(n / (CHUNK * WG)) };
}

/**
 * sqrt of the sum of squares of every element of `tensors` (a global gradient norm) as a [1]
 * tensor, without reading back: per-chunk partial sums in a fixed order, then one final sum
 * in a fixed order, so the result does not depend on scheduling. Writes into `out` if given.
 */
export function gradNorm(tensors: readonly Tensor[], out?: Tensor): Tensor {
  if (tensors.length === 0) throw new PantherError('E_ARGUMENT', 'no tensors to take the norm of', 'gradNorm');
  const gpu = tensors[0].gpu;
  tensors.forEach((t, i) => {
    if (t.dtype !== 'f32') throw new PantherError('E_DTYPE', `tensor ${i} (${t.describe()}) is not f32`, 'gradNorm');
    if (t.gpu !== gpu) throw new PantherError('E_ARGUMENT', `tensor ${i} (${t.describe()}) lives on another device`, 'gradNorm');
  });
  if (out && (out.size !== 1 || out.dtype !== 'f32')) throw new PantherError('E_SHAPE', `out must be an f32 tensor of 1 element, is ${out.describe()}`, 'gradNorm');
  let partialCount = 0;
  for (const t of tensors) partialCount += sumsqPlan(t.size).groups * WG;
  const partials = empty(gpu, [Math.max(partialCount, 1)]);
  const norm = out ?? empty(gpu, [1]);
  let offset = 0;
  for (const t of tensors) {
    const { spec, n, groups } = sumsqPlan(t.size);
    if (groups === 0) continue;
    const x = Math.min(groups, 65535);
    gpu.dispatch(spec, {
      buffers: [t.buffer, partials.buffer],
      params: { ...NO_PARAMS, n, offset, groups },
      workgroups: [x, Math.ceil(groups / x)],
      constants: { CHUNK },
    });
    offset += groups * WG;
  }
  gpu.dispatch(SUM_PARTIALS, { buffers: [partials.buffer, norm.buffer], params: { ...NO_PARAMS, n: partialCount, flag: 1 }, workgroups: [1] });
  partials.dispose();
  return norm;
}

/** min(1, maxNorm / (norm + 1e-6)) as a [1] tensor computed on the GPU (gradient clipping). */
export function clipScale(norm: Tensor, maxNorm: number, out?: Tensor): Tensor {
  if (norm.size !== 1 || norm.dtype !== 'f32') throw new PantherError('E_SHAPE', `norm must be an f32 tensor of 1 element, is ${norm.describe()}`, 'clipScale');
  if (!(maxNorm > 0)) throw new PantherError('E_ARGUMENT', `maxNorm must be > 0, is ${maxNorm}`, 'clipScale');
  const scale = out ?? empty(norm.gpu, [1]);
  norm.gpu.dispatch(CLIP_SCALE, { buffers: [norm.buffer, scale.buffer], params: { ...NO_PARAMS, value: maxNorm }, workgroups: [1] });
  return scale;
}
