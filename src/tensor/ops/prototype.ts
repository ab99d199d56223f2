import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';
import { chunkRowsFor, sumChunksInto } from './conv.js';

const FWD_PARAMS = { N: 'u32', D: 'u32', K: 'u32', H: 'u32', RS: 'u32', invTemp: 'f32', cosine: 'u32' } as const;
const BWD_PARAMS = {
  N: 'u32', D: 'u32', K: 'u32', H: 'u32', RS: 'u32', invTemp: 'f32', hasGOut: 'u32', hasGW: 'u32', rowsPerChunk: 'u32', cosine: 'u32', separate: 'u32',
} as const;

export const PROTOTYPE_INV_NORMS: KernelSpec = { file: 'prototype', entry: 'prototype_inv_norms', params: FWD_PARAMS, storage: ['read', 'rw'] };
export const PROTOTYPE_MATCH: KernelSpec = {
  file: 'prototype', entry: 'prototype_match', params: FWD_PARAMS, storage: ['read', 'read', 'read', 'read', 'rw', 'rw'],
};
export const PROTOTYPE_BWD_ROWS: KernelSpec = {
  file: 'prototype_bwd', entry: 'prototype_bwd_rows', params: BWD_PARAMS, storage: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
};
export const PROTOTYPE_BWD_PROTOS: KernelSpec = {
  file: 'prototype_bwd', entry: 'prototype_bwd_protos', params: BWD_PARAMS, storage: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
};

/**
 * Tile sizes (WGSL overrides, at most the kernels' MAX_ bounds). Row kernels: ROW_LANES lanes
 * of TR rows each, TB-wide register blocks. prototype_bwd_protos: TK prototypes x TD columns
 * per invocation.
 */
const ROW_LANES = 64;
const TR = 4;
const FWD_TILES = { TR, TB: 8 };
const BWD_TILES = { TR, TB: 8, TK: 4, TD: 4 };

export interface PrototypeMatchOptions {
  /** Softmax temperature over the similarities; > 0. */
  temperature: number;
  /**
   * 'cosine' (default): cosine similarities of rows and prototypes; 'dot': plain dot products
   * (a scaled dot product when the temperature is sqrt(head width)).
   */
  similarity?: 'cosine' | 'dot';
  /**
   * Heads (default 1): the last dimension splits into this many slices of equal width, side by
   * side as linear projections produce them, and each slice is matched against the same slice
   * of the prototypes with its own softmax.
   */
  heads?: number;
  /**
   * Value prototypes [K, D] that the weights mix (cross-attention to the prototypes with
   * separate keys and values); the prototypes themselves when absent.
   */
  values?: Tensor;
}

export interface PrototypeMatchResult {
  /** sum_k w_nk v_k per head, shaped like x. */
  out: Tensor;
  /** Softmax weights [N, K], N = rows of x; [N, heads, K] with more than one head. */
  weights: Tensor;
}

interface PrototypeShape {
  /** Rows of x. */
  N: number;
  /** Width of one head. */
  D: number;
  K: number;
  H: number;
  /** Row stride of x, the prototypes and the values: H * D. */
  RS: number;
  /** 1 for cosine similarities, 0 for dot products (the kernels' `cosine` flag). */
  cosine: number;
}

function lanesFor(n: number): number {
  return Math.min(64, Math.max(8, 2 ** Math.ceil(Math.log2(Math.max(1, n)))));
}

export function prototypeMatchShape(x: Tensor, prototypes: Tensor, opts: PrototypeMatchOptions): PrototypeShape {
  const op = 'prototypeMatch';
  const t = opts.temperature;
  // The kernels scale by 1 / temperature in f32: it must stay finite there.
  if (!(typeof t === 'number' && Number.isFinite(t) && t > 0 && Number.isFinite(Math.fround(1 / t)))) {
    throw new PantherError('E_ARGUMENT', `temperature must be a finite number > 0 (and 1 / temperature finite in f32), got ${t}`, op);
  }
  const similarity = opts.similarity ?? 'cosine';
  if (similarity !== 'cosine' && similarity !== 'dot') {
    throw new PantherError('E_ARGUMENT', `similarity must be 'cosine' or 'dot', got ${String(similarity)}`, op);
  }
  if (prototypes.shape.length !== 2) {
    throw new PantherError('E_SHAPE', `prototypes must be [K, D], has shape [${prototypes.shape.join(', ')}]`, op);
  }
  const [K, RS] = prototypes.shape;
  if (K < 1 || RS < 1) throw new PantherError('E_SHAPE', `prototypes [${K}, ${RS}] must have K >= 1 and D >= 1`, op);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== RS) {
    throw new PantherError('E_SHAPE', `x [${x.shape.join(', ')}] must end in D = ${RS}, the prototypes' width`, op);
  }
  const v = opts.values;
  if (v && (v.shape.length !== 2 || v.shape[0] !== K || v.shape[1] !== RS)) {
    throw new PantherError('E_SHAPE', `values [${v.shape.join(', ')}] must have the prototypes' shape [${K}, ${RS}]`, op);
  }
  if (x.dtype !== 'f32' || prototypes.dtype !== 'f32' || (v && v.dtype !== 'f32')) throw new PantherError('E_DTYPE', 'x, prototypes and values must be f32', op);
  const H = opts.heads ?? 1;
  if (!Number.isInteger(H) || H < 1 || RS % H !== 0) {
    throw new PantherError('E_ARGUMENT', `heads must be a positive integer that divides D = ${RS}, got ${H}`, op);
  }
  const D = RS / H;
  const N = x.size / RS;
  if (Math.ceil(D / (lanesFor(D) * BWD_TILES.TD)) > 65535) throw new PantherError('E_LIMIT', `D = ${RS} is too large`, op);
  // The weights (and, for the backward, three N x H x K planes of scratch) must fit one binding.
  const planes = isRecording(x.gpu, v ? [x, prototypes, v] : [x, prototypes]) ? 3 : 1;
  if (planes * N * H * K * 4 > x.gpu.maxStorageBinding) {
    throw new PantherError(
      'E_LIMIT',
      `${planes} x N x heads x K = ${planes} x ${N} x ${H} x ${K} floats exceed the adapter's storage binding of ${x.gpu.maxStorageBinding} bytes; use fewer rows or prototypes`,
      op,
    );
  }
  return { N, D, K, H, RS, cosine: similarity === 'cosine' ? 1 : 0 };
}

function fwdParams(s: PrototypeShape, invTemp: number) {
  return { N: s.N, D: s.D, K: s.K, H: s.H, RS: s.RS, invTemp, cosine: s.cosine };
}

/** 1 / max(|p_kh|, eps) for every head and prototype, [H, K]; ones for dot products (scratch, no tape). */
function prototypeInvNorms(prototypes: Tensor, s: PrototypeShape): Tensor {
  const pInv = empty(prototypes.gpu, [s.H, s.K]);
  prototypes.gpu.dispatch(PROTOTYPE_INV_NORMS, {
    buffers: [prototypes.buffer, pInv.buffer],
    params: fwdParams(s, 0),
    workgroups: grid1d(s.H * s.K, 64),
  });
  return pInv;
}

/**
 * Soft assignment of each row of x [.., D] to K prototypes [K, D]: cosine similarity (or dot
 * product) over a temperature, softmax over k, and the weighted mixture of the prototypes (or
 * of separate value prototypes), per head. Gradients flow to x, the prototypes and the values
 * from both outputs.
 */
export function prototypeMatch(x: Tensor, prototypes: Tensor, opts: PrototypeMatchOptions): PrototypeMatchResult {
  const s = prototypeMatchShape(x, prototypes, opts);
  const gpu = x.gpu;
  const values = opts.values && opts.values !== prototypes ? opts.values : null;
  const invTemp = 1 / opts.temperature;
  const out = empty(gpu, x.shape);
  const weights = empty(gpu, s.H === 1 ? [s.N, s.K] : [s.N, s.H, s.K]);
  const pInv = prototypeInvNorms(prototypes, s);
  const [wx, wy] = grid1d(Math.ceil(s.N / TR), ROW_LANES);
  gpu.dispatch(PROTOTYPE_MATCH, {
    buffers: [prototypes.buffer, (values ?? prototypes).buffer, x.buffer, pInv.buffer, out.buffer, weights.buffer],
    params: fwdParams(s, invTemp),
    constants: { WG: ROW_LANES, ...FWD_TILES },
    workgroups: [wx, wy, s.H],
  });
  pInv.dispose();
  const inputs = values ? [x, prototypes, values] : [x, prototypes];
  record('prototypeMatch', inputs, [out, weights], ([gOut, gWeights]) => {
    const grads = prototypeMatchBackward(x, prototypes, values, gOut, gWeights, s, invTemp);
    const result = [x.requiresGrad ? grads.dx : null, prototypes.requiresGrad ? grads.dP : null];
    if (values) result.push(values.requiresGrad ? grads.dV : null);
    return result;
  });
  return { out, weights };
}

function prototypeMatchBackward(
  x: Tensor, prototypes: Tensor, values: Tensor | null, gOut: Tensor | null, gWeights: Tensor | null, s: PrototypeShape, invTemp: number,
): { dx: Tensor; dP: Tensor; dV: Tensor | null } {
  const gpu = x.gpu;
  const chunkRows = chunkRowsFor(s.N, s.K * s.RS, gpu.maxStorageBinding);
  const chunks = Math.max(1, Math.ceil(s.N / chunkRows));
  const params = {
    ...fwdParams(s, invTemp), hasGOut: gOut ? 1 : 0, hasGW: gWeights ? 1 : 0, rowsPerChunk: chunkRows, separate: values ? 1 : 0,
  };
  const pInv = prototypeInvNorms(prototypes, s);
  const dx = empty(gpu, x.shape);
  const dP = empty(gpu, prototypes.shape);
  const dV = values ? empty(gpu, values.shape) : null;
  const rowTerms = empty(gpu, [3, s.N, s.H, s.K]);
  // An absent cotangent is zero; any buffer fills its binding and the kernels do not read it.
  const gOutBuffer = (gOut ?? x).buffer;
  const valuesBuffer = (values ?? prototypes).buffer;
  const [wx, wy] = grid1d(Math.ceil(s.N / TR), ROW_LANES);
  gpu.dispatch(PROTOTYPE_BWD_ROWS, {
    buffers: [x.buffer, prototypes.buffer, valuesBuffer, pInv.buffer, gOutBuffer, (gWeights ?? x).buffer, dx.buffer, rowTerms.buffer],
    params,
    constants: { WG: ROW_LANES, ...BWD_TILES },
    workgroups: [wx, wy, s.H],
  });
  const lanes = lanesFor(Math.ceil(s.D / BWD_TILES.TD));
  // dP (and dV) in two fixed-order stages: partial sums over chunks of rows, then the chunks in order.
  const partial = chunks === 1 ? dP : empty(gpu, [chunks, s.K * s.RS]);
  const partialV = dV && chunks > 1 ? empty(gpu, [chunks, s.K * s.RS]) : dV;
  // Without separate values the kernel writes no dV; a one-float placeholder fills the binding.
  const placeholder = partialV ? null : empty(gpu, [1]);
  gpu.dispatch(PROTOTYPE_BWD_PROTOS, {
    buffers: [x.buffer, prototypes.buffer, valuesBuffer, pInv.buffer, gOutBuffer, rowTerms.buffer, partial.buffer, (partialV ?? placeholder!).buffer],
    params,
    constants: { WG: lanes, ...BWD_TILES },
    workgroups: [Math.ceil(s.D / (lanes * BWD_TILES.TD)), Math.ceil(s.K / BWD_TILES.TK), chunks * s.H],
  });
  for (const [part, into] of [[partial, dP], [partialV, dV]] as const) {
    if (part && into && part !== into) {
      sumChunksInto(part, chunks, into);
      part.dispose();
    }
  }
  placeholder?.dispose();
  pInv.dispose();
  rowTerms.dispose();
  return { dx, dP, dV };
}
