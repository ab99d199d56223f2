import { PantherError } from '../../errors.js';
import { grid1d } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { record } from '../tape.js';
import { empty, type Tensor } from '../tensor.js';

export const GELU_FORWARD: KernelSpec = { file: 'gelu', entry: 'gelu_forward', params: { n: 'u32' }, storage: ['read', 'rw'] };
export const GELU_BACKWARD: KernelSpec = { file: 'gelu', entry: 'gelu_backward', params: { n: 'u32' }, storage: ['read', 'read', 'rw'] };
export const GELU_FORWARD4: KernelSpec = { ...GELU_FORWARD, entry: 'gelu_forward4' };
export const GELU_BACKWARD4: KernelSpec = { ...GELU_BACKWARD, entry: 'gelu_backward4' };

const WG = 64;
const PER_LANE = 4;

/** The spec (vec4 when the size allows), its element count and workgroups. */
function plan(size: number, scalar: KernelSpec, vec4: KernelSpec): { spec: KernelSpec; n: number; workgroups: [number, number] } {
  const wide = size % 4 === 0;
  const n = wide ? size / 4 : size;
  return { spec: wide ? vec4 : scalar, n, workgroups: grid1d(Math.ceil(n / PER_LANE), WG) };
}

/** GELU (tanh approximation), elementwise. */
export function gelu(x: Tensor): Tensor {
  if (x.dtype !== 'f32') throw new PantherError('E_DTYPE', `x must be f32, is ${x.dtype} (${x.describe()})`, 'gelu');
  const gpu = x.gpu;
  const out = empty(gpu, x.shape);
  const fwd = plan(x.size, GELU_FORWARD, GELU_FORWARD4);
  gpu.dispatch(fwd.spec, { buffers: [x.buffer, out.buffer], params: { n: fwd.n }, workgroups: fwd.workgroups, constants: { PER_LANE } });
  record('gelu', [x], [out], ([g]) => {
    const dx = empty(gpu, x.shape);
    const bwd = plan(x.size, GELU_BACKWARD, GELU_BACKWARD4);
    gpu.dispatch(bwd.spec, { buffers: [x.buffer, g!.buffer, dx.buffer], params: { n: bwd.n }, workgroups: bwd.workgroups, constants: { PER_LANE } });
    return [dx];
  });
  return out;
}
