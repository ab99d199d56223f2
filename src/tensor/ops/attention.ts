import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { grid1d, type Gpu } from '../../gpu/runtime.js';
import { isRecording, record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';

const ATTENTION_PARAMS = { L: 'u32', C: 'u32', H: 'u32', D: 'u32', rows: 'u32', hasMask: 'u32', scale: 'f32' } as const;
export const ATTENTION_FWD: KernelSpec = {
  file: 'attention', entry: 'attention_fwd', params: ATTENTION_PARAMS,
  storage: ['read', 'read', 'read', 'read', 'rw', 'rw'],
};
export const ATTENTION_BWD_ROWS: KernelSpec = {
  file: 'attention_bwd', entry: 'attention_bwd_rows', params: ATTENTION_PARAMS,
  storage: ['read', 'read', 'read', 'rw'],
};
export const ATTENTION_BWD_DQ: KernelSpec = {
  file: 'attention_bwd', entry: 'attention_bwd_dq', params: ATTENTION_PARAMS,
  storage: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
};
export const ATTENTION_BWD_DKDV: KernelSpec = {
  file: 'attention_bwd', entry: 'attention_bwd_dkdv', params: ATTENTION_PARAMS,
  storage: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
};
/** Subgroup variants (CPU adapters with subgroups of 8+ lanes; head dim a multiple of 4). */
export const ATTENTION_FWD_SUBGROUP: KernelSpec = { ...ATTENTION_FWD, file: 'attention_subgroup', entry: 'attention_fwd_subgroup' };
export const ATTENTION_BWD_ROWS_SUBGROUP: KernelSpec = { ...ATTENTION_BWD_ROWS, file: 'attention_subgroup_bwd', entry: 'attention_bwd_rows_subgroup' };
export const ATTENTION_BWD_DQ_SUBGROUP: KernelSpec = { ...ATTENTION_BWD_DQ, file: 'attention_subgroup_bwd', entry: 'attention_bwd_dq_subgroup' };
export const ATTENTION_BWD_DKDV_SUBGROUP: KernelSpec = { ...ATTENTION_BWD_DKDV, file: 'attention_subgroup_bwd', entry: 'attention_bwd_dkdv_subgroup' };

/** Private arrays in the kernels hold up to 32 vec4 per row. */
export const MAX_HEAD_DIM = 128;
/**
 * Tile shape of the portable kernels: LANES invocations per workgroup, each owning
 * ROWS_PER_LANE query (or key) rows; keys (or queries) walked in tiles of TILE. The kernels'
 * private arrays bound these at 4 and 8.
 */
const LANES = 16;
const ROWS_PER_LANE = 4;
const TILE = 8;
/**
 * The subgroup kernels: one subgroup of 8 lanes per workgroup, each owning
 * SUBGROUP_ROWS_PER_LANE rows, the other operand walked in tiles of SUBGROUP_TILE_GROUPS * 8
 * rows. Their private arrays bound these at 4 and 2; larger tiles measured no faster on
 * lavapipe and compile slower.
 */
const SUBGROUP_LANES = 8;
const SUBGROUP_ROWS_PER_LANE = 4;
const SUBGROUP_TILE_GROUPS = 2;
const MIN_ROWS_PER_WORKGROUP = Math.min(LANES * ROWS_PER_LANE, SUBGROUP_LANES * SUBGROUP_ROWS_PER_LANE);
const MAX_WORKGROUPS = 65535;

interface AttentionKernels {
  fwd: KernelSpec;
  rows: KernelSpec;
  dq: KernelSpec;
  dkdv: KernelSpec;
  rowsPerWorkgroup: number;
  fwdConstants: Record<string, number>;
  bwdConstants: Record<string, number>;
}

const PORTABLE_KERNELS: AttentionKernels = {
  fwd: ATTENTION_FWD, rows: ATTENTION_BWD_ROWS, dq: ATTENTION_BWD_DQ, dkdv: ATTENTION_BWD_DKDV,
  rowsPerWorkgroup: LANES * ROWS_PER_LANE,
  fwdConstants: { WG: LANES, RPI: ROWS_PER_LANE, BK: TILE },
  bwdConstants: { WG: LANES, RPI: ROWS_PER_LANE, BT: TILE },
};
const SUBGROUP_KERNELS: AttentionKernels = {
  fwd: ATTENTION_FWD_SUBGROUP, rows: ATTENTION_BWD_ROWS_SUBGROUP, dq: ATTENTION_BWD_DQ_SUBGROUP, dkdv: ATTENTION_BWD_DKDV_SUBGROUP,
  rowsPerWorkgroup: SUBGROUP_LANES * SUBGROUP_ROWS_PER_LANE,
  fwdConstants: { RPI: SUBGROUP_ROWS_PER_LANE, KG: SUBGROUP_TILE_GROUPS },
  bwdConstants: { RPI: SUBGROUP_ROWS_PER_LANE, KG: SUBGROUP_TILE_GROUPS },
};

/**
 * Which kernels `attention` runs for a head dim on this device. The subgroup kernels share
 * whole vec4s of head rows, so they need D % 4 == 0; other head dims, and adapters without
 * subgroups of 8+ lanes (the subgroup matmul tunable), take the portable kernels.
 */
export function attentionVariant(gpu: Gpu, headDim: number): 'subgroup' | 'portable' {
  return gpu.tunables.matmul === 'subgroup' && headDim % 4 === 0 ? 'subgroup' : 'portable';
}

export interface AttentionOptions {
  heads: number;
  /** u32 or i32 [B, L]: nonzero marks a valid key, 0 a padding key. No gradient. */
  keyMask?: Tensor;
  /** Score scale, 1/sqrt(head dim) by default. */
  scale?: number;
}

export interface AttentionShape {
  B: number;
  L: number;
  /** heads * D: the last dimension of q, k, v and the output. */
  C: number;
  H: number;
  D: number;
  scale: number;
}

/** Validates the operands of `attention`; throws before anything is dispatched. */
export function attentionShape(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionShape {
  const where = 'attention';
  if (q.shape.length !== 3) throw new PantherError('E_SHAPE', `q must be [B, L, C], has shape [${q.shape}]`, where);
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    if (t.shape.length !== 3 || t.shape.some((d, i) => d !== q.shape[i])) {
      throw new PantherError('E_SHAPE', `${name} has shape [${t.shape}], q has [${q.shape}]; they must be equal`, where);
    }
  }
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.dtype !== 'f32') throw new PantherError('E_DTYPE', `${name} must be f32, is ${t.dtype}`, where);
  }
  const [B, L, C] = q.shape;
  const H = opts.heads;
  if (!Number.isInteger(H) || H < 1) throw new PantherError('E_ARGUMENT', `heads must be a positive integer, got ${H}`, where);
  if (C % H !== 0) throw new PantherError('E_SHAPE', `channels C=${C} are not divisible by heads=${H}`, where);
  const D = C / H;
  if (D < 1 || D > MAX_HEAD_DIM) {
    throw new PantherError('E_LIMIT', `head dim D=${D} (C=${C} / heads=${H}) is outside 1..${MAX_HEAD_DIM}; use more heads`, where);
  }
  if (B < 1 || L < 1) throw new PantherError('E_SHAPE', `batch and length must be at least 1, q has shape [${q.shape}]`, where);
  if (opts.keyMask) {
    const m = opts.keyMask;
    if (m.dtype === 'f32') throw new PantherError('E_DTYPE', 'keyMask must be u32 or i32, is f32', where);
    if (m.shape.length !== 2 || m.shape[0] !== B || m.shape[1] !== L) {
      throw new PantherError('E_SHAPE', `keyMask has shape [${m.shape}], expected [${B}, ${L}]`, where);
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new PantherError('E_ARGUMENT', `scale must be finite, got ${scale}`, where);
  if (B > MAX_WORKGROUPS || H > MAX_WORKGROUPS || Math.ceil(L / MIN_ROWS_PER_WORKGROUP) > MAX_WORKGROUPS) {
    throw new PantherError('E_LIMIT', `B=${B}, heads=${H} and L/${MIN_ROWS_PER_WORKGROUP}=${Math.ceil(L / MIN_ROWS_PER_WORKGROUP)} must each be at most ${MAX_WORKGROUPS}`, where);
  }
  // Kernels index elements with u32.
  if (q.size >= 2 ** 32) throw new PantherError('E_LIMIT', `q has ${q.size} elements, over 2^32`, where);
  return { B, L, C, H, D, scale };
}

/**
 * Causal multi-head scaled dot-product attention over q, k, v of shape [B, L, heads * D]
 * (heads side by side in the last dimension, as linear projections produce them). Query i
 * attends the keys j <= i that keyMask marks valid; a query with no valid key outputs zeros
 * and gets zero gradients. Output [B, L, heads * D]. Memory is O(B L C): the forward keeps
 * only each row's log-sum-exp for the backward, which recomputes the probabilities.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const s = attentionShape(q, k, v, opts);
  const gpu = q.gpu;
  const mask = opts.keyMask;
  // Head dim and mask are parameters, not override constants: one compiled pipeline per
  // kernel serves every shape (compiling these kernels takes seconds on CPU adapters).
  const params = { L: s.L, C: s.C, H: s.H, D: s.D, rows: s.B * s.H * s.L, hasMask: mask ? 1 : 0, scale: s.scale };
  const kernels = attentionVariant(gpu, s.D) === 'subgroup' ? SUBGROUP_KERNELS : PORTABLE_KERNELS;
  const workgroups = [Math.ceil(s.L / kernels.rowsPerWorkgroup), s.H, s.B] as const;
  // Without a mask the binding still needs a buffer; the kernel never reads it.
  const maskBuffer = (mask ?? q).buffer;

  const out = empty(gpu, q.shape, 'f32', 'attention.out');
  const lse = empty(gpu, [s.B, s.H, s.L], 'f32', 'attention.lse');
  gpu.dispatch(kernels.fwd, {
    buffers: [q.buffer, k.buffer, v.buffer, maskBuffer, out.buffer, lse.buffer],
    params, workgroups, constants: kernels.fwdConstants,
  });
  if (!isRecording(gpu, [q, k, v])) {
    lse.dispose();
    return out;
  }

  record('attention', [q, k, v], [out], ([g]) => {
    const rowStats = empty(gpu, [s.B, s.H, s.L, 2], 'f32', 'attention.rowStats');
    gpu.dispatch(kernels.rows, {
      buffers: [out.buffer, g!.buffer, lse.buffer, rowStats.buffer],
      params, workgroups: grid1d(params.rows, 64), constants: { WG: 64 },
    });
    const inputs = [q.buffer, k.buffer, v.buffer, maskBuffer, g!.buffer, rowStats.buffer];
    let dq: Tensor | null = null;
    if (q.requiresGrad) {
      dq = empty(gpu, q.shape, 'f32', 'attention.dq');
      gpu.dispatch(kernels.dq, { buffers: [...inputs, dq.buffer], params, workgroups, constants: kernels.bwdConstants });
    }
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (k.requiresGrad || v.requiresGrad) {
      dk = empty(gpu, k.shape, 'f32', 'attention.dk');
      dv = empty(gpu, v.shape, 'f32', 'attention.dv');
      gpu.dispatch(kernels.dkdv, { buffers: [...inputs, dk.buffer, dv.buffer], params, workgroups, constants: kernels.bwdConstants });
    }
    return [dq, k.requiresGrad ? dk : null, v.requiresGrad ? dv : null];
  });
  return out;
}
