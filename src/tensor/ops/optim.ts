import { PantherError } from '../../errors.js';
import { grid1d, type Gpu } from '../../gpu/runtime.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { empty, type Tensor } from '../tensor.js';
import { fillInPlace } from './elementwise.js';
import { clipScale, gradNorm } from './reduce.js';

export { clipScale, gradNorm } from './reduce.js';

export const ADAMW_STEP: KernelSpec = {
  file: 'adamw', entry: 'adamw_step',
  params: { n: 'u32', hasScale: 'u32', lr: 'f32', beta1: 'f32', beta2: 'f32', eps: 'f32', weightDecay: 'f32', bc1: 'f32', bc2: 'f32' },
  storage: ['read', 'read', 'rw', 'rw', 'rw'],
};
export const ADAMW_STEP4: KernelSpec = { ...ADAMW_STEP, entry: 'adamw_step4' };

const WG = 64;
const PER_LANE = 4;

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for the bias corrections. */
  step: number;
}

function checkHyper(h: AdamWHyper, op: string): void {
  const check = (name: string, value: number, ok: boolean, range: string) => {
    if (!ok) throw new PantherError('E_ARGUMENT', `${name} is ${value}, must be ${range}`, op);
  };
  check('lr', h.lr, Number.isFinite(h.lr) && h.lr >= 0, 'finite and >= 0');
  check('beta1', h.beta1, h.beta1 >= 0 && h.beta1 < 1, 'in [0, 1)');
  check('beta2', h.beta2, h.beta2 >= 0 && h.beta2 < 1, 'in [0, 1)');
  check('eps', h.eps, h.eps > 0, '> 0');
  check('weightDecay', h.weightDecay, Number.isFinite(h.weightDecay) && h.weightDecay >= 0, 'finite and >= 0');
  check('step', h.step, Number.isInteger(h.step) && h.step >= 1, 'an integer >= 1');
}

/**
 * One AdamW update of `param` and its moments `m`, `v` in place (no tape), decoupled
 * weight decay: p -= lr * (mhat / (sqrt(vhat) + eps) + weightDecay * p). `scale` [1], when
 * given, multiplies the gradient on the GPU (the clipping factor from clipScale).
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamWHyper, scale?: Tensor): void {
  const op = 'adamwStep';
  for (const [name, t] of [['param', param], ['grad', grad], ['m', m], ['v', v]] as const) {
    if (t.dtype !== 'f32') throw new PantherError('E_DTYPE', `${name} must be f32, is ${t.dtype} (${t.describe()})`, op);
    if (t.size !== param.size) throw new PantherError('E_SHAPE', `${name} has ${t.size} elements, param [${param.shape}] has ${param.size}`, op);
  }
  if (new Set([param, grad, m, v]).size !== 4) throw new PantherError('E_ARGUMENT', 'param, grad, m and v must be four different tensors', op);
  if (scale && (scale.size !== 1 || scale.dtype !== 'f32')) throw new PantherError('E_SHAPE', `scale must be an f32 tensor of 1 element, is ${scale.describe()}`, op);
  checkHyper(h, op);
  const wide = param.size % 4 === 0;
  const n = wide ? param.size / 4 : param.size;
  param.gpu.dispatch(wide ? ADAMW_STEP4 : ADAMW_STEP, {
    buffers: [grad.buffer, (scale ?? grad).buffer, param.buffer, m.buffer, v.buffer],
    params: {
      n, hasScale: scale ? 1 : 0,
      lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay,
      bc1: 1 - h.beta1 ** h.step, bc2: 1 - h.beta2 ** h.step,
    },
    workgroups: grid1d(Math.ceil(n / PER_LANE), WG),
    constants: { PER_LANE },
  });
}

export interface AdamWState {
  m: Tensor;
  v: Tensor;
  /** Updates applied to this parameter so far. */
  step: number;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay (default: all). */
  decay?: (param: Tensor) => boolean;
}

export interface AdamWStepOptions {
  /** Clip the global gradient norm to this value (computed and applied on the GPU). */
  maxGradNorm?: number;
  /** Learning rate for this step (a schedule); defaults to the constructor's. */
  lr?: number;
}

/**
 * AdamW over a list of parameters, with first and second moments per parameter allocated
 * once (zeros) and reused. A step clips by the global gradient norm and updates every
 * parameter that has a gradient, all on the GPU: nothing is read back.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  /** Steps taken so far. */
  stepCount = 0;
  private readonly decay: (param: Tensor) => boolean;
  private readonly moments = new Map<Tensor, AdamWState>();
  private norm: Tensor | null = null;
  private scale: Tensor | null = null;

  constructor(private readonly gpu: Gpu, opts: AdamWOptions) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.decay = opts.decay ?? (() => true);
    checkHyper({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay, step: 1 }, 'AdamW');
  }

  /** The moments and update count of `param` (zeros before its first update), for checkpoints. */
  stateOf(param: Tensor): AdamWState {
    let s = this.moments.get(param);
    if (!s) {
      const zeros = (name: string) => fillInPlace(empty(this.gpu, param.shape, 'f32', name), 0).keep();
      s = { m: zeros('adamw.m'), v: zeros('adamw.v'), step: 0 };
      this.moments.set(param, s);
    }
    return s;
  }

  /**
   * Updates every parameter that has a gradient. Returns the global gradient norm before
   * clipping as a [1] tensor owned by the optimizer (overwritten by the next step), or null
   * without maxGradNorm.
   */
  step(params: readonly Tensor[], opts: AdamWStepOptions = {}): Tensor | null {
    const op = 'AdamW.step';
    const withGrad = params.filter((p) => p.grad);
    for (const p of withGrad) {
      if (p.gpu !== this.gpu) throw new PantherError('E_ARGUMENT', `${p.describe()} lives on another device`, op);
      if (p.grad!.size !== p.size) throw new PantherError('E_SHAPE', `gradient of ${p.describe()} has ${p.grad!.size} elements`, op);
    }
    const maxGradNorm = opts.maxGradNorm;
    if (maxGradNorm !== undefined && !(maxGradNorm > 0)) throw new PantherError('E_ARGUMENT', `maxGradNorm must be > 0, is ${maxGradNorm}`, op);
    const lr = opts.lr ?? this.lr;
    const hyper = { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps };
    checkHyper({ ...hyper, weightDecay: this.weightDecay, step: 1 }, op);
    this.stepCount++;
    if (withGrad.length === 0) return null;
    let scale: Tensor | undefined;
    if (maxGradNorm !== undefined) {
      this.norm ??= empty(this.gpu, [1], 'f32', 'adamw.gradNorm').keep();
      this.scale ??= empty(this.gpu, [1], 'f32', 'adamw.clipScale').keep();
      gradNorm(withGrad.map((p) => p.grad!), this.norm);
      scale = clipScale(this.norm, maxGradNorm, this.scale);
    }
    for (const p of withGrad) {
      const state = this.stateOf(p);
      // Bias corrections count this parameter's own updates (it may join late).
      state.step++;
      adamwStep(p, p.grad!, state.m, state.v, { ...hyper, step: state.step, weightDecay: this.decay(p) ? this.weightDecay : 0 }, scale);
    }
    return scale ? this.norm : null;
  }

  /** Frees the moments and scratch tensors. */
  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
    this.moments.clear();
    this.norm?.dispose();
    this.scale?.dispose();
    this.norm = this.scale = null;
  }
}
