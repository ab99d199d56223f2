import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';
import { chunkRowsFor, sumChunksInto } from './conv.js';

const FWD_PARAMS = { N: 'u32', D: 'u32', K: 'u32', invTemp: 'f32', cosine: 'u32' } as const;
const BWD_PARAMS = { N: 'u32', D: 'u32', K: 'u32', invTemp: 'f32', hasGOut: 'u32', hasGW: 'u32', rowsPerChunk: 'u32', cosine: 'u32' } as const;

export const PROTOTYPE_INV_NORMS: KernelSpec = { file: 'prototype', entry: 'prototype_inv_norms', params: FWD_PARAMS, storage: ['read', 'rw'] };
export const PROTOTYPE_MATCH: KernelSpec = {
  file: 'prototype', entry: 'prototype_match', params: FWD_PARAMS, storage: ['read', 'read', 'read', 'rw', 'rw'],
};
export const PROTOTYPE_BWD_ROWS: KernelSpec = {
  file: 'prototype_bwd', entry: 'prototype_bwd_rows', params: BWD_PARAMS, storage: ['read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
};
export const PROTOTYPE_BWD_PROTOS: KernelSpec = {
  file: 'prototype_bwd', entry: 'prototype_bwd_protos', params: BWD_PARAMS, storage: ['read', 'read', 'read', 'read', 'read', 'rw'],
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
   * (a scaled dot product when the temperature is sqrt(D)).
   */
  similarity?: 'cosine' | 'dot';
}

export interface PrototypeMatchResult {
  /** sum_k w_nk p_k, shaped like x. */
  out: Tensor;
  /** Softmax weights [N, K], N = rows of x. */
  weights: Tensor;
}

interface PrototypeShape {
  N: number;
  D: number;
  K: number;
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
  const [K, D] = prototypes.shape;
  if (K < 1 || D < 1) throw new PantherError('E_SHAPE', `prototypes [${K}, ${D}] must have K >= 1 and D >= 1`, op);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== D) {
    throw new PantherError('E_SHAPE', `x [${x.shape.join(', ')}] must end in D = ${D}, the prototypes' width`, op);
  }
  if (x.dtype !== 'f32' || prototypes.dtype !== 'f32') throw new PantherError('E_DTYPE', 'x and prototypes must be f32', op);
  const N = x.size / D;
  if (Math.ceil(D / (lanesFor(D) * BWD_TILES.TD)) > 65535) throw new PantherError('E_LIMIT', `D = ${D} is too large`, op);
  // The weights (and, for the backward, three N x K planes of scratch) must fit one binding.
  const planes = isRecording(x.gpu, [x, prototypes]) ? 3 : 1;
  if (planes * N * K * 4 > x.gpu.maxStorageBinding) {
    throw new PantherError(
      'E_LIMIT',
      `${planes} x N x K = ${planes} x ${N} x ${K} floats exceed the adapter's storage binding of ${x.gpu.maxStorageBinding} bytes; use fewer rows or prototypes`,
      op,
    );
  }
  return { N, D, K, cosine: similarity === 'cosine' ? 1 : 0 };
}

/** 1 / max(|p_k|, eps) for every prototype, ones for dot products (scratch, no tape). */
function prototypeInvNorms(prototypes: Tensor, s: PrototypeShape): Tensor {
  const pInv = empty(prototypes.gpu, [s.K]);
  prototypes.gpu.dispatch(PROTOTYPE_INV_NORMS, {
    buffers: [prototypes.buffer, pInv.buffer],
    params: { N: s.N, D: s.D, K: s.K, invTemp: 0, cosine: s.cosine },
    workgroups: grid1d(s.K, 64),
  });
  return pInv;
}

/**
 * Soft assignment of each row of x [.., D] to K prototypes [K, D]: cosine similarity (or dot
 * product) over a temperature, softmax over k, and the weighted mixture of the raw prototypes.
 * Gradients flow to x and the prototypes from both outputs.
 */
export function prototypeMatch(x: Tensor, prototypes: Tensor, opts: PrototypeMatchOptions): PrototypeMatchResult {
  const s = prototypeMatchShape(x, prototypes, opts);
  const gpu = x.gpu;
  const invTemp = 1 / opts.temperature;
  const out = empty(gpu, x.shape);
  const weights = empty(gpu, [s.N, s.K]);
  const params = { N: s.N, D: s.D, K: s.K, invTemp, cosine: s.cosine };
  const pInv = prototypeInvNorms(prototypes, s);
  gpu.dispatch(PROTOTYPE_MATCH, {
    buffers: [prototypes.buffer, x.buffer, pInv.buffer, out.buffer, weights.buffer],
    params,
    constants: { WG: ROW_LANES, ...FWD_TILES },
    workgroups: grid1d(Math.ceil(s.N / TR), ROW_LANES),
  });
  pInv.dispose();
  record('prototypeMatch', [x, prototypes], [out, weights], ([gOut, gWeights]) => {
    const grads = prototypeMatchBackward(x, prototypes, gOut, gWeights, s, invTemp);
    return [x.requiresGrad ? grads.dx : null, prototypes.requiresGrad ? grads.dP : null];
  });
  return { out, weights };
}

function prototypeMatchBackward(
  x: Tensor, prototypes: Tensor, gOut: Tensor | null, gWeights: Tensor | null, s: PrototypeShape, invTemp: number,
): { dx: Tensor; dP: Tensor } {
  const gpu = x.gpu;
  const chunkRows = chunkRowsFor(s.N, s.K * s.D, gpu.maxStorageBinding);
  const chunks = Math.max(1, Math.ceil(s.N / chunkRows));
  const params = { N: s.N, D: s.D, K: s.K, invTemp, hasGOut: gOut ? 1 : 0, hasGW: gWeights ? 1 : 0, rowsPerChunk: chunkRows, cosine: s.cosine };
  const pInv = prototypeInvNorms(prototypes, s);
  const dx = empty(gpu, x.shape);
  const dP = empty(gpu, prototypes.shape);
  const rowTerms = empty(gpu, [3, s.N, s.K]);
  // An absent cotangent is zero; any buffer fills its binding and the kernels do not read it.
  const gOutBuffer = (gOut ?? x).buffer;
  gpu.dispatch(PROTOTYPE_BWD_ROWS, {
    buffers: [x.buffer, prototypes.buffer, pInv.buffer, gOutBuffer, (gWeights ?? x).buffer, dx.buffer, rowTerms.buffer],
    params,
    constants: { WG: ROW_LANES, ...BWD_TILES },
    workgroups: grid1d(Math.ceil(s.N / TR), ROW_LANES),
  });
  const lanes = lanesFor(Math.ceil(s.D / BWD_TILES.TD));
  // dP in two fixed-order stages: partial sums over chunks of rows, then the chunks in order.
  const partial = chunks === 1 ? dP : empty(gpu, [chunks, s.K * s.D]);
  gpu.dispatch(PROTOTYPE_BWD_PROTOS, {
    buffers: [x.buffer, prototypes.buffer, pInv.buffer, gOutBuffer, rowTerms.buffer, partial.buffer],
    params,
    constants: { WG: lanes, ...BWD_TILES },
    workgroups: [Math.ceil(s.D / (lanes * BWD_TILES.TD)), Math.ceil(s.K / BWD_TILES.TK), chunks],
  });
  if (partial !== dP) {
    sumChunksInto(partial, chunks, dP);
    partial.dispose();
  }
  pInv.dispose();
  rowTerms.dispose();
  return { dx, dP };
}
