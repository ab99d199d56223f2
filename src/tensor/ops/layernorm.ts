import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';

export const LAYERNORM_FORWARD: KernelSpec = {
  file: 'layernorm', entry: 'layernorm_forward',
  params: { rows: 'u32', D: 'u32', eps: 'f32' },
  storage: ['read', 'read', 'read', 'rw', 'rw', 'rw'],
};
export const LAYERNORM_DX: KernelSpec = {
  file: 'layernorm_bwd', entry: 'layernorm_dx',
  params: { rows: 'u32', D: 'u32' },
  storage: ['read', 'read', 'read', 'read', 'read', 'rw'],
};
export const LAYERNORM_DPARAMS: KernelSpec = {
  file: 'layernorm_bwd', entry: 'layernorm_dparams',
  params: { rows: 'u32', D: 'u32' },
  storage: ['read', 'read', 'read', 'read', 'rw', 'rw'],
};
export const LAYERNORM_FORWARD4: KernelSpec = { ...LAYERNORM_FORWARD, entry: 'layernorm_forward4' };
export const LAYERNORM_DX4: KernelSpec = { ...LAYERNORM_DX, entry: 'layernorm_dx4' };
export const LAYERNORM_DPARAMS4: KernelSpec = { ...LAYERNORM_DPARAMS, entry: 'layernorm_dparams4' };

const WG = 64;
/** Narrow workgroups for the per-column kernel, so a few hundred columns still spread over cores. */
const PARAMS_WG = 16;

function requireF32(t: Tensor, name: string, op: string): void {
  if (t.dtype !== 'f32') throw new PantherError('E_DTYPE', `${name} must be f32, is ${t.dtype} (${t.describe()})`, op);
}

/**
 * Layer normalization over the last dimension: x [..., D], gamma [D], beta [D] -> [..., D].
 * Mean and 1/std of each row are kept for the backward pass.
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  requireF32(x, 'x', op);
  requireF32(gamma, 'gamma', op);
  requireF32(beta, 'beta', op);
  if (x.shape.length < 1) throw new PantherError('E_SHAPE', `x must have at least 1 dimension, has shape [${x.shape}]`, op);
  const D = x.shape[x.shape.length - 1];
  if (D < 1) throw new PantherError('E_SHAPE', `last dimension of x [${x.shape}] is 0`, op);
  if (gamma.shape.length !== 1 || gamma.shape[0] !== D) throw new PantherError('E_SHAPE', `gamma has shape [${gamma.shape}], expected [${D}] for x [${x.shape}]`, op);
  if (beta.shape.length !== 1 || beta.shape[0] !== D) throw new PantherError('E_SHAPE', `beta has shape [${beta.shape}], expected [${D}] for x [${x.shape}]`, op);
  if (!(eps > 0)) throw new PantherError('E_ARGUMENT', `eps must be > 0, is ${eps}`, op);
  const rows = x.size / D;
  // Rows of a multiple of 4 take the vec4 kernels.
  const wide = D % 4 === 0;
  const gpu = x.gpu;
  const out = empty(gpu, x.shape);
  const mean = empty(gpu, [rows]);
  const rstd = empty(gpu, [rows]);
  gpu.dispatch(wide ? LAYERNORM_FORWARD4 : LAYERNORM_FORWARD, {
    buffers: [x.buffer, gamma.buffer, beta.buffer, out.buffer, mean.buffer, rstd.buffer],
    params: { rows, D, eps },
    workgroups: grid1d(rows, WG),
  });
  if (!isRecording(gpu, [x, gamma, beta])) {
    mean.dispose();
    rstd.dispose();
    return out;
  }
  record(op, [x, gamma, beta], [out], ([g]) => {
    let dx: Tensor | null = null;
    let dgamma: Tensor | null = null;
    let dbeta: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(gpu, x.shape);
      gpu.dispatch(wide ? LAYERNORM_DX4 : LAYERNORM_DX, {
        buffers: [x.buffer, g!.buffer, mean.buffer, rstd.buffer, gamma.buffer, dx.buffer],
        params: { rows, D },
        workgroups: grid1d(rows, WG),
      });
    }
    if (gamma.requiresGrad || beta.requiresGrad) {
      dgamma = empty(gpu, [D]);
      dbeta = empty(gpu, [D]);
      gpu.dispatch(wide ? LAYERNORM_DPARAMS4 : LAYERNORM_DPARAMS, {
        buffers: [x.buffer, g!.buffer, mean.buffer, rstd.buffer, dgamma.buffer, dbeta.buffer],
        params: { rows, D },
        workgroups: grid1d(wide ? D / 4 : D, PARAMS_WG),
        constants: { WG: PARAMS_WG },
      });
    }
    return [dx, gamma.requiresGrad ? dgamma : null, beta.requiresGrad ? dbeta : null];
  });
  return out;
}
