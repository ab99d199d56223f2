import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';
import { asShape, sumRows } from './elementwise.js';

const MATMUL_PARAMS = { M: 'u32', N: 'u32', K: 'u32', strideA: 'u32', strideB: 'u32', strideC: 'u32', alpha: 'f32', beta: 'f32' } as const;
export const MATMUL_REG: KernelSpec = { file: 'matmul', entry: 'matmul_reg', params: MATMUL_PARAMS, storage: ['read', 'read', 'rw'] };
export const MATMUL_TILED: KernelSpec = { file: 'matmul', entry: 'matmul_tiled', params: MATMUL_PARAMS, storage: ['read', 'read', 'rw'] };
export const MATMUL_SUBGROUP: KernelSpec = { file: 'matmul_subgroup', entry: 'matmul_subgroup', params: MATMUL_PARAMS, storage: ['read', 'read', 'rw'] };
export const RELAYOUT: KernelSpec = {
  file: 'relayout', entry: 'relayout',
  params: { batch: 'u32', srcRows: 'u32', srcCols: 'u32', rows: 'u32', cols: 'u32', dstRows: 'u32', dstCols: 'u32', transpose: 'u32' },
  storage: ['read', 'rw'],
};

const SUBGROUP_LANES = 8;
const SUBGROUP_ROWS = 8;
const REG_TM = 8;
const REG_LANES = 64;
const REG_TN = 4;
const TILE = 64;

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
}

interface MatmulShape {
  batch: number;
  batchA: number;
  batchB: number;
  M: number;
  N: number;
  K: number;
  outShape: number[];
}

function matrixDims(t: Tensor, name: string): { batch: number; rows: number; cols: number; lead: number[] } {
  if (t.shape.length < 2) throw new PantherError('E_SHAPE', `${name} must have at least 2 dimensions, has shape [${t.shape}]`, 'matmul');
  const lead = t.shape.slice(0, -2);
  return { batch: lead.reduce((a, b) => a * b, 1), rows: t.shape[t.shape.length - 2], cols: t.shape[t.shape.length - 1], lead };
}

export function matmulShape(a: Tensor, b: Tensor, opts: MatmulOptions): MatmulShape {
  const da = matrixDims(a, 'A');
  const db = matrixDims(b, 'B');
  const [M, Ka] = opts.transA ? [da.cols, da.rows] : [da.rows, da.cols];
  const [Kb, N] = opts.transB ? [db.cols, db.rows] : [db.rows, db.cols];
  if (Ka !== Kb) {
    throw new PantherError('E_SHAPE', `inner dimensions differ: A [${a.shape}]${opts.transA ? 'ᵀ' : ''} x B [${b.shape}]${opts.transB ? 'ᵀ' : ''} (${Ka} vs ${Kb})`, 'matmul');
  }
  if (da.batch !== db.batch && da.batch !== 1 && db.batch !== 1) {
    throw new PantherError('E_SHAPE', `batch sizes ${da.batch} and ${db.batch} differ (one may be 1 to broadcast)`, 'matmul');
  }
  const batch = Math.max(da.batch, db.batch);
  if (batch > 65535) throw new PantherError('E_LIMIT', `batch ${batch} exceeds 65535`, 'matmul');
  const lead = da.batch >= db.batch ? da.lead : db.lead;
  return { batch, batchA: da.batch, batchB: db.batch, M, N, K: Ka, outShape: [...lead, M, N] };
}

/**
 * dst[b] = op(src[b]) zero-padded (or cropped) to dstRows x dstCols, where src[b] is stored
 * srcRows x srcCols and op transposes when asked. No tape: a layout change inside ops.
 */
export function relayoutRaw(
  src: Tensor, batch: number, srcRows: number, srcCols: number,
  o: { transpose?: boolean; dstRows?: number; dstCols?: number } = {},
): Tensor {
  const [rows, cols] = o.transpose ? [srcCols, srcRows] : [srcRows, srcCols];
  const dstRows = o.dstRows ?? rows;
  const dstCols = o.dstCols ?? cols;
  const out = empty(src.gpu, [batch, dstRows, dstCols]);
  src.gpu.dispatch(RELAYOUT, {
    buffers: [src.buffer, out.buffer],
    params: { batch, srcRows, srcCols, rows, cols, dstRows, dstCols, transpose: o.transpose ? 1 : 0 },
    workgroups: [Math.ceil(dstCols / 64), Math.min(dstRows, 65535), batch],
  });
  return out;
}

/** out[b] = x[b]ᵀ for a batch of R x C matrices (no tape). */
export function transposeRaw(x: Tensor, batch: number, R: number, C: number): Tensor {
  return relayoutRaw(x, batch, R, C, { transpose: true });
}

/** n rounded up to a whole number of vec4s. */
export const roundUp4 = (n: number) => Math.ceil(n / 4) * 4;

/**
 * The subgroup kernel wants row-major A (M x K) and B (K x N) with K and N multiples of 4:
 * operands that are not are laid out that way first (O(MK + KN) work against O(MNK)), and a
 * padded result is cropped into `out`.
 */
function matmulSubgroup(a: Tensor, b: Tensor, out: Tensor, s: MatmulShape, opts: MatmulOptions): void {
  const gpu = a.gpu;
  const Kp = roundUp4(s.K);
  const Np = roundUp4(s.N);
  let tA = opts.transA ?? false;
  let tB = opts.transB ?? false;
  // The kernel reads transposed operands itself when K, N (and M for A) are whole vec4s.
  const padA = Kp !== s.K || (tA && s.M % 4 !== 0);
  const padB = Kp !== s.K || Np !== s.N;
  const la = padA ? relayoutRaw(a, s.batchA, tA ? s.K : s.M, tA ? s.M : s.K, { transpose: tA, dstCols: Kp }) : null;
  const lb = padB ? relayoutRaw(b, s.batchB, tB ? s.N : s.K, tB ? s.K : s.N, { transpose: tB, dstRows: Kp, dstCols: Np }) : null;
  if (la) tA = false;
  if (lb) tB = false;
  const c = Np !== s.N ? empty(gpu, [s.batch, s.M, Np]) : out;
  gpu.dispatch(MATMUL_SUBGROUP, {
    buffers: [(la ?? a).buffer, (lb ?? b).buffer, c.buffer],
    params: {
      M: s.M, N: Np, K: Kp,
      strideA: s.batchA === 1 ? 0 : s.M * Kp,
      strideB: s.batchB === 1 ? 0 : Kp * Np,
      strideC: s.M * Np,
      alpha: opts.alpha ?? 1,
      beta: 0,
    },
    workgroups: [Math.ceil(Np / 4 / SUBGROUP_LANES), Math.ceil(s.M / SUBGROUP_ROWS), s.batch],
    constants: { TRANS_A: tA ? 1 : 0, TRANS_B: tB ? 1 : 0 },
  });
  if (c !== out) {
    gpu.dispatch(RELAYOUT, {
      buffers: [c.buffer, out.buffer],
      params: { batch: s.batch, srcRows: s.M, srcCols: Np, rows: s.M, cols: s.N, dstRows: s.M, dstCols: s.N, transpose: 0 },
      workgroups: [Math.ceil(s.N / 64), Math.min(s.M, 65535), s.batch],
    });
    c.dispose();
  }
  la?.dispose();
  lb?.dispose();
}

/** Records the dispatch(es) of C = alpha op(A) op(B) into `out` without touching the tape. */
export function matmulInto(a: Tensor, b: Tensor, out: Tensor, s: MatmulShape, opts: MatmulOptions): void {
  const gpu = a.gpu;
  if (gpu.tunables.matmul === 'subgroup') {
    matmulSubgroup(a, b, out, s, opts);
    return;
  }
  let transB = opts.transB ?? false;
  let bt: Tensor | null = null;
  if (transB && gpu.tunables.matmul === 'reg') {
    // The register-blocked kernel reads B rows contiguously across lanes: lay B out as K x N.
    bt = transposeRaw(b, s.batchB, s.N, s.K);
    transB = false;
  }
  const params = {
    M: s.M, N: s.N, K: s.K,
    strideA: s.batchA === 1 ? 0 : s.M * s.K,
    strideB: s.batchB === 1 ? 0 : s.K * s.N,
    strideC: s.M * s.N,
    alpha: opts.alpha ?? 1,
    beta: 0,
  };
  const constants = { TRANS_A: opts.transA ? 1 : 0, TRANS_B: transB ? 1 : 0 };
  const buffers = [a.buffer, (bt ?? b).buffer, out.buffer];
  if (gpu.tunables.matmul === 'reg') {
    gpu.dispatch(MATMUL_REG, {
      buffers, params, constants,
      workgroups: [Math.ceil(s.N / (REG_LANES * REG_TN)), Math.ceil(s.M / REG_TM), s.batch],
    });
  } else {
    gpu.dispatch(MATMUL_TILED, { buffers, params, constants, workgroups: [Math.ceil(s.N / TILE), Math.ceil(s.M / TILE), s.batch] });
  }
  bt?.dispose();
}

/**
 * Batched matrix product alpha * op(A) op(B) over the last two dimensions; leading
 * dimensions are batch (an operand with batch 1 broadcasts).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const s = matmulShape(a, b, opts);
  const out = empty(a.gpu, s.outShape);
  if (s.M > 0 && s.N > 0) {
    if (s.K === 0) throw new PantherError('E_SHAPE', 'inner dimension is 0', 'matmul');
    matmulInto(a, b, out, s, opts);
  }
  const alpha = opts.alpha ?? 1;
  const tA = opts.transA ?? false;
  const tB = opts.transB ?? false;
  record('matmul', [a, b], [out], ([g]) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g op(B)ᵀ, laid out like A.
      ga = tA ? matmul(b, g!, { transA: tB, transB: true, alpha }) : matmul(g!, b, { transB: !tB, alpha });
      if (s.batchA === 1 && s.batch > 1) ga = sumRows(ga, s.M * s.K);
      ga = asShape(ga, a.shape);
    }
    if (b.requiresGrad) {
      // dB = op(A)ᵀ g, laid out like B.
      gb = tB ? matmul(g!, a, { transA: true, transB: tA, alpha }) : matmul(a, g!, { transA: !tA, alpha });
      if (s.batchB === 1 && s.batch > 1) gb = sumRows(gb, s.K * s.N);
      gb = asShape(gb, b.shape);
    }
    return [ga, gb];
  });
  return out;
}

/** xᵀ for a 2-D x [R, C]: [C, R], on the tape (its gradient is gᵀ). */
export function transpose(x: Tensor): Tensor {
  if (x.shape.length !== 2) throw new PantherError('E_SHAPE', `transpose needs a 2-D tensor, has shape [${x.shape}]`, 'transpose');
  const [R, C] = x.shape;
  const out = transposeRaw(x, 1, R, C).view([C, R]);
  record('transpose', [x], [out], ([g]) => [transpose(g!)]);
  return out;
}
