import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';
import { sumRows, sumRowsInto } from './elementwise.js';
import { transposeRaw } from './matmul.js';

const FWD_PARAMS = { B: 'u32', L: 'u32', Cin: 'u32', Cout: 'u32', K: 'u32', dil: 'u32', hasBias: 'u32' } as const;
const BWD_PARAMS = { B: 'u32', L: 'u32', Cin: 'u32', Cout: 'u32', K: 'u32', dil: 'u32', rowsPerChunk: 'u32' } as const;

export const CONV_FULL: KernelSpec = { file: 'dilated_conv', entry: 'conv_full', params: FWD_PARAMS, storage: ['read', 'read', 'read', 'rw'] };
export const CONV_DEPTHWISE: KernelSpec = { file: 'dilated_conv', entry: 'conv_depthwise', params: FWD_PARAMS, storage: ['read', 'read', 'read', 'rw'] };
const bwd = (entry: string, storage: KernelSpec['storage']): KernelSpec => ({ file: 'dilated_conv_bwd', entry, params: BWD_PARAMS, storage });
export const CONV_FULL_DX = bwd('conv_full_dx', ['read', 'read', 'rw']);
export const CONV_DEPTHWISE_DX = bwd('conv_depthwise_dx', ['read', 'read', 'rw']);
export const CONV_FULL_DW = bwd('conv_full_dw', ['read', 'read', 'rw']);
export const CONV_DEPTHWISE_DW = bwd('conv_depthwise_dw', ['read', 'read', 'rw']);

/**
 * Tile sizes (WGSL overrides, at most the kernels' MAX_ bounds): TT time steps per workgroup
 * and TO channels per lane (full), TL time steps per workgroup (depthwise), TC input channels
 * per dW invocation.
 */
const TT = 8;
const TO = 4;
const TL = 64;
const TC = 8;
const FWD_TILES = { TT, TO, TL };
const BWD_TILES = { TT, TO, TL, TC };
/** Two-stage reductions split their rows into at most this many chunks of at least this many rows. */
const REDUCE_MAX_CHUNKS = 64;
const REDUCE_MIN_ROWS_PER_CHUNK = 256;

/**
 * Rows per chunk of a two-stage reduction over `rows` whose partials hold `partialFloats`
 * each: a function of the shape and the adapter's binding limit only, so the order of the
 * additions is fixed, with all chunks' partials fitting one binding.
 */
export function chunkRowsFor(rows: number, partialFloats: number, maxBindingBytes: number): number {
  const chunks = Math.max(1, Math.min(REDUCE_MAX_CHUNKS, Math.floor(maxBindingBytes / (4 * partialFloats))));
  return Math.max(REDUCE_MIN_ROWS_PER_CHUNK, Math.ceil(rows / chunks));
}

/**
 * Adds `partial` [chunks, n] over its chunks into `into` [n], chunk after chunk (no tape):
 * the second stage of a deterministic two-stage reduction.
 */
export function sumChunksInto(partial: Tensor, chunks: number, into: Tensor): void {
  sumRowsInto(partial, chunks, into.size, into);
}
const MAX_WORKGROUPS = 65535;

export const CONV_KERNEL_SIZE_MIN = 2;
export const CONV_KERNEL_SIZE_MAX = 7;
export const CONV_DILATION_MAX = 16;

export interface DilatedConvOptions {
  kernelSize: number;
  dilation: number;
  /** Per-channel filters (weight [K, C]) instead of a full channel mix (weight [K, Cin, Cout]). */
  depthwise: boolean;
}

interface ConvShape {
  B: number;
  L: number;
  Cin: number;
  Cout: number;
  K: number;
  dil: number;
  depthwise: boolean;
}

/** Lanes per workgroup: enough for `n` lane-owned items, a power of two in [8, 64]. */
function lanesFor(n: number): number {
  return Math.min(64, Math.max(8, 2 ** Math.ceil(Math.log2(Math.max(1, n)))));
}

function shapeText(t: Tensor): string {
  return `[${t.shape.join(', ')}]`;
}

export function dilatedConvShape(x: Tensor, weight: Tensor, bias: Tensor | null, opts: DilatedConvOptions): ConvShape {
  const op = 'dilatedConv';
  const { kernelSize: K, dilation: dil, depthwise } = opts;
  if (!Number.isInteger(K) || K < CONV_KERNEL_SIZE_MIN || K > CONV_KERNEL_SIZE_MAX) {
    throw new PantherError('E_LIMIT', `kernelSize ${K} is not supported; use an integer in ${CONV_KERNEL_SIZE_MIN}..${CONV_KERNEL_SIZE_MAX}`, op);
  }
  if (!Number.isInteger(dil) || dil < 1 || dil > CONV_DILATION_MAX) {
    throw new PantherError('E_LIMIT', `dilation ${dil} is not supported; use an integer in 1..${CONV_DILATION_MAX}`, op);
  }
  if (x.shape.length !== 3) throw new PantherError('E_SHAPE', `x must be [B, L, Cin], has shape ${shapeText(x)}`, op);
  const [B, L, Cin] = x.shape;
  if (B === 0 || L === 0 || Cin === 0) throw new PantherError('E_SHAPE', `x has an empty dimension: ${shapeText(x)}`, op);
  let Cout: number;
  if (depthwise) {
    if (weight.shape.length !== 2 || weight.shape[0] !== K || weight.shape[1] !== Cin) {
      throw new PantherError('E_SHAPE', `depthwise weight must be [K=${K}, C=${Cin}], has shape ${shapeText(weight)}`, op);
    }
    Cout = Cin;
  } else {
    if (weight.shape.length !== 3 || weight.shape[0] !== K || weight.shape[1] !== Cin || weight.shape[2] === 0) {
      throw new PantherError('E_SHAPE', `weight must be [K=${K}, Cin=${Cin}, Cout], has shape ${shapeText(weight)}`, op);
    }
    Cout = weight.shape[2];
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== Cout)) {
    throw new PantherError('E_SHAPE', `bias must be [Cout=${Cout}], has shape ${shapeText(bias)}`, op);
  }
  if (x.dtype !== 'f32' || weight.dtype !== 'f32' || (bias && bias.dtype !== 'f32')) {
    throw new PantherError('E_DTYPE', 'x, weight and bias must be f32', op);
  }
  if (B > MAX_WORKGROUPS || Math.ceil(L / TT) > MAX_WORKGROUPS || K * Math.ceil(Cin / TC) > MAX_WORKGROUPS) {
    throw new PantherError('E_LIMIT', `x ${shapeText(x)} is too large: B <= ${MAX_WORKGROUPS}, L <= ${MAX_WORKGROUPS * TT}, K * Cin <= ${MAX_WORKGROUPS * TC}`, op);
  }
  return { B, L, Cin, Cout, K, dil, depthwise };
}

function baseParams(s: ConvShape) {
  return { B: s.B, L: s.L, Cin: s.Cin, Cout: s.Cout, K: s.K, dil: s.dil };
}

/**
 * Causal dilated 1-D convolution over time. x [B, L, Cin] (channels last); weight
 * [K, Cin, Cout] (full) or [K, C] (depthwise); bias [Cout] or null. Output [B, L, Cout]:
 * y[b,t,o] = bias[o] + sum_k sum_c w[k,c,o] x[b, t - (K-1-k) dilation, c], zero before t = 0.
 */
export function dilatedConv(x: Tensor, weight: Tensor, bias: Tensor | null, opts: DilatedConvOptions): Tensor {
  const s = dilatedConvShape(x, weight, bias, opts);
  const gpu = x.gpu;
  const y = empty(gpu, [s.B, s.L, s.Cout]);
  const params = { ...baseParams(s), hasBias: bias ? 1 : 0 };
  // Without a bias any buffer fills the binding; the kernel does not read it.
  const buffers = [x.buffer, weight.buffer, (bias ?? weight).buffer, y.buffer];
  if (s.depthwise) {
    const lanes = lanesFor(s.Cin);
    gpu.dispatch(CONV_DEPTHWISE, {
      buffers, params, constants: { WG: lanes, ...FWD_TILES }, workgroups: [Math.ceil(s.Cin / lanes), Math.ceil(s.L / TL), s.B],
    });
  } else {
    const lanes = lanesFor(Math.ceil(s.Cout / TO));
    gpu.dispatch(CONV_FULL, {
      buffers, params, constants: { WG: lanes, ...FWD_TILES }, workgroups: [Math.ceil(s.Cout / (lanes * TO)), Math.ceil(s.L / TT), s.B],
    });
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  record('dilatedConv', inputs, [y], ([g]) => {
    const gx = x.requiresGrad ? convInputGrad(g!, weight, s) : null;
    const gw = weight.requiresGrad ? convWeightGrad(x, g!, s) : null;
    if (!bias) return [gx, gw];
    return [gx, gw, bias.requiresGrad ? sumRows(g!, s.Cout) : null];
  });
  return y;
}

function convInputGrad(g: Tensor, weight: Tensor, s: ConvShape): Tensor {
  const gpu = g.gpu;
  const dx = empty(gpu, [s.B, s.L, s.Cin]);
  const params = { ...baseParams(s), rowsPerChunk: 0 };
  if (s.depthwise) {
    const lanes = lanesFor(s.Cin);
    gpu.dispatch(CONV_DEPTHWISE_DX, {
      buffers: [g.buffer, weight.buffer, dx.buffer], params, constants: { WG: lanes, ...BWD_TILES },
      workgroups: [Math.ceil(s.Cin / lanes), Math.ceil(s.L / TL), s.B],
    });
  } else {
    // Lanes own input channels here: lay the weight out [K, Cout, Cin] so they read it contiguously.
    const wt = transposeRaw(weight, s.K, s.Cin, s.Cout);
    const lanes = lanesFor(Math.ceil(s.Cin / TO));
    gpu.dispatch(CONV_FULL_DX, {
      buffers: [g.buffer, wt.buffer, dx.buffer], params, constants: { WG: lanes, ...BWD_TILES },
      workgroups: [Math.ceil(s.Cin / (lanes * TO)), Math.ceil(s.L / TT), s.B],
    });
    wt.dispose();
  }
  return dx;
}

function convWeightGrad(x: Tensor, g: Tensor, s: ConvShape): Tensor {
  const gpu = x.gpu;
  const wShape = s.depthwise ? [s.K, s.Cin] : [s.K, s.Cin, s.Cout];
  const dw = empty(gpu, wShape);
  const rows = s.B * s.L;
  const chunkRows = chunkRowsFor(rows, dw.size, gpu.maxStorageBinding);
  const chunks = Math.ceil(rows / chunkRows);
  const params = { ...baseParams(s), rowsPerChunk: chunkRows };
  // One chunk writes the gradient directly; more write partials summed in chunk order.
  const partial = chunks === 1 ? dw : empty(gpu, [chunks, dw.size]);
  const buffers = [g.buffer, x.buffer, partial.buffer];
  if (s.depthwise) {
    const lanes = lanesFor(s.Cin);
    gpu.dispatch(CONV_DEPTHWISE_DW, { buffers, params, constants: { WG: lanes, ...BWD_TILES }, workgroups: [Math.ceil(s.Cin / lanes), 1, chunks] });
  } else {
    const lanes = lanesFor(Math.ceil(s.Cout / TO));
    gpu.dispatch(CONV_FULL_DW, {
      buffers, params, constants: { WG: lanes, ...BWD_TILES },
      workgroups: [Math.ceil(s.Cout / (lanes * TO)), s.K * Math.ceil(s.Cin / TC), chunks],
    });
  }
  if (partial !== dw) {
    sumChunksInto(partial, chunks, dw);
    partial.dispose();
  }
  return dw;
}
