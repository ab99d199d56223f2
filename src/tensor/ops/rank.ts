import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { grid1d } from '../../gpu/runtime.js';
import { empty, tensorFrom, type Tensor } from '../tensor.js';

export const TARGET_RANK: KernelSpec = { file: 'rank', entry: 'target_rank', params: { rows: 'u32', V: 'u32' }, storage: ['read', 'read', 'rw'] };

/**
 * For each row of `scores` [rows, V], the 0-based rank of the target among all V entries
 * (ties count against the target); 0xffffffff for rows whose target is outside [0, V).
 * Evaluation only: no gradient.
 */
export function targetRanks(scores: Tensor, targets: Int32Array): Tensor {
  if (scores.shape.length !== 2) throw new PantherError('E_SHAPE', `scores must be [rows, V], got [${scores.shape}]`, 'targetRanks');
  const [rows, V] = scores.shape;
  if (targets.length !== rows) throw new PantherError('E_SHAPE', `${targets.length} targets for ${rows} rows`, 'targetRanks');
  const t = tensorFrom(scores.gpu, targets, [rows], 'i32');
  const out = empty(scores.gpu, [rows], 'u32');
  scores.gpu.dispatch(TARGET_RANK, { buffers: [scores.buffer, t.buffer, out.buffer], params: { rows, V }, workgroups: grid1d(rows, 64) });
  t.dispose();
  return out;
}
