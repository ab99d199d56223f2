import { describe, expect, it } from 'vitest';
import { backward, zeroGrad } from '../../src/tensor/autograd.js';
import { attention } from '../../src/tensor/ops/attention.js';
import { dilatedConv } from '../../src/tensor/ops/conv.js';
import { crossEntropy } from '../../src/tensor/ops/cross_entropy.js';
import { add, axpyInPlace, reshape } from '../../src/tensor/ops/elementwise.js';
import { embedding } from '../../src/tensor/ops/embedding.js';
import { matmul } from '../../src/tensor/ops/matmul.js';
import { prototypeMatch } from '../../src/tensor/ops/prototype.js';
import { noGrad } from '../../src/tensor/tape.js';
import { tensorFrom, tidy, type Tensor } from '../../src/tensor/tensor.js';
import type { Gpu } from '../../src/gpu/runtime.js';
import { useGpu } from '../support/gpu.js';
import { finiteDiff, maxRelError } from '../support/numeric.js';
import {
  initialParams, PARAM_NAMES, paramShapes, referenceLossAndGrads, sgdStepRef, TINY_MODEL, tinyBatch,
  type TinyBatch, type TinyModelConfig, type TinyParams,
} from './tiny-model-reference.js';

const gpu = useGpu();
const C = TINY_MODEL;
const SEED = 7;

/**
 * Float32 GPU against float64 CPU. Measured on lavapipe: first-step gradients agree to
 * <= 5e-7, losses to <= 3e-7 and parameters to <= 3e-7 at every one of the 18 steps, the
 * accumulated updates p - p0 to <= 4e-6 (SGD at this step size damps rounding rather than
 * amplifying it). The bounds leave 25x or more headroom for other adapters' summation
 * orders. Scaling one backward's output by 1.001 (attention dq, dk or dv; prototype dx or
 * dP; conv dx, dW or bias) moves the first-step gradients by >= 5e-4 and the updates by
 * >= 5e-4, so a wrong gradient in any of them fails both checks.
 */
const LOSS_TOLERANCE = 1e-5;
const GRAD_TOLERANCE = 1e-4;
const PARAM_TOLERANCE = 1e-4;
const UPDATE_TOLERANCE = 1e-4;

/** The model's loss from the library's ops, recorded on the tape. */
function gpuLoss(c: TinyModelConfig, P: TinyParams<Tensor>, batch: TinyBatch, keyMask: Tensor): Tensor {
  const N = c.B * c.L;
  const x = embedding(P.table, batch.ids, [c.B, c.L], { padId: c.padId });
  const conved = reshape(
    dilatedConv(x, P.convW, P.convB, { kernelSize: c.kernelSize, dilation: c.dilation, depthwise: true }),
    [N, c.D],
  );
  const project = (w: Tensor) => reshape(matmul(conved, w), [c.B, c.L, c.D]);
  const a = attention(project(P.wq), project(P.wk), project(P.wv), { heads: c.heads, keyMask });
  const { out: p } = prototypeMatch(a, P.prototypes, { temperature: c.temperature });
  const logits = matmul(reshape(add(a, p), [N, c.D]), P.wout);
  return crossEntropy(logits, batch.targets, { ignoreIndex: c.ignoreIndex });
}

interface Trajectory {
  losses: number[];
  /** Gradients of the first step. */
  firstGrads: TinyParams<ArrayLike<number>>;
  /** Parameters after each step. */
  params: TinyParams<ArrayLike<number>>[];
}

async function readAll(P: TinyParams<Tensor | null>): Promise<TinyParams<Float32Array>> {
  const out = {} as TinyParams<Float32Array>;
  for (const name of PARAM_NAMES) out[name] = await P[name]!.readF32();
  return out;
}

async function trainOnGpu(g: Gpu, c: TinyModelConfig, init: TinyParams<Float32Array>, batch: TinyBatch): Promise<Trajectory> {
  const shapes = paramShapes(c);
  const P = {} as TinyParams<Tensor>;
  for (const name of PARAM_NAMES) P[name] = tensorFrom(g, init[name], shapes[name], 'f32', name).requireGrad().keep();
  const keyMask = tensorFrom(g, batch.keyMask, [c.B, c.L], 'u32').keep();
  const t: Trajectory = { losses: [], firstGrads: {} as TinyParams<Float32Array>, params: [] };
  for (let step = 0; step < c.steps; step++) {
    const loss = tidy(g, () => {
      const l = gpuLoss(c, P, batch, keyMask);
      backward(l);
      return l;
    });
    t.losses.push((await loss.readF32())[0]);
    loss.dispose();
    if (step === 0) {
      const grads = {} as TinyParams<Tensor | null>;
      for (const name of PARAM_NAMES) grads[name] = P[name].grad;
      t.firstGrads = await readAll(grads);
    }
    noGrad(g, () => {
      for (const name of PARAM_NAMES) axpyInPlace(P[name], P[name].grad!, -c.lr, 1);
    });
    zeroGrad(Object.values(P));
    t.params.push(await readAll(P));
  }
  for (const p of [...Object.values(P), keyMask]) p.dispose();
  return t;
}

function trainOnCpu(c: TinyModelConfig, init: TinyParams<Float32Array>, batch: TinyBatch): Trajectory {
  const P = {} as TinyParams<Float64Array>;
  for (const name of PARAM_NAMES) P[name] = Float64Array.from(init[name]);
  const t: Trajectory = { losses: [], firstGrads: {} as TinyParams<Float64Array>, params: [] };
  for (let step = 0; step < c.steps; step++) {
    const { loss, grads } = referenceLossAndGrads(c, P, batch);
    t.losses.push(loss);
    if (step === 0) t.firstGrads = grads;
    sgdStepRef(P, grads, c.lr);
    const snapshot = {} as TinyParams<Float64Array>;
    for (const name of PARAM_NAMES) snapshot[name] = Float64Array.from(P[name]);
    t.params.push(snapshot);
  }
  return t;
}

function minus(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => a[i] - b[i]);
}

interface Worst {
  error: number;
  at: string;
}

/** The largest entry of errors[row][col] and a label for where it is. */
function worst(errors: number[][], label: (row: number, col: number) => string): Worst {
  let best: Worst = { error: -Infinity, at: '' };
  errors.forEach((row, r) => row.forEach((e, c) => {
    if (!(e <= best.error)) best = { error: Number.isNaN(e) ? Infinity : e, at: label(r, c) };
  }));
  return best;
}

describe('tiny model end to end (embedding, dilated conv, attention, prototypes, cross-entropy)', () => {
  const batch = tinyBatch(C);
  const init = initialParams(C, SEED);

  it('the composed reference backward matches finite differences of the reference loss', () => {
    const P = {} as TinyParams<Float64Array>;
    for (const name of PARAM_NAMES) P[name] = Float64Array.from(init[name]);
    const { grads } = referenceLossAndGrads(C, P, batch);
    for (const name of PARAM_NAMES) {
      const lossAt = (values: Float64Array) => referenceLossAndGrads(C, { ...P, [name]: values }, batch).loss;
      const fd = finiteDiff(lossAt, P[name], 1e-6);
      expect(maxRelError(grads[name], fd), name).toBeLessThan(1e-6);
    }
  });

  it('trains on the GPU and matches the float64 CPU path step for step', async () => {
    const g = gpu();
    const got = await trainOnGpu(g, C, init, batch);
    const ref = trainOnCpu(C, init, batch);

    const lossErrors = got.losses.map((l, step) => Math.abs(l - ref.losses[step]) / ref.losses[step]);
    const gradErrors = PARAM_NAMES.map((name) => maxRelError(got.firstGrads[name], ref.firstGrads[name]));
    const paramErrors = got.params.map((P, step) => PARAM_NAMES.map((name) => maxRelError(P[name], ref.params[step][name])));
    const updateErrors = got.params.map((P, step) => PARAM_NAMES.map((name) =>
      maxRelError(minus(P[name], init[name]), minus(ref.params[step][name], init[name]))));

    expect(got.losses[C.steps - 1]).toBeLessThan(0.5 * got.losses[0]);
    got.losses.slice(1).forEach((l, i) => expect(l, `loss at step ${i + 1}`).toBeLessThan(got.losses[i]));
    // Soft: a failure lists every check that is off, which points at the op.
    const check = (what: string, w: Worst, tolerance: number) =>
      expect.soft(w.error, `${what}: worst ${w.error.toExponential(2)} at ${w.at}`).toBeLessThan(tolerance);
    check('first-step gradients', worst([gradErrors], (_, i) => PARAM_NAMES[i]), GRAD_TOLERANCE);
    check('losses', worst(lossErrors.map((e) => [e]), (step) => `step ${step}`), LOSS_TOLERANCE);
    check('parameters', worst(paramErrors, (step, i) => `${PARAM_NAMES[i]} after step ${step}`), PARAM_TOLERANCE);
    check('updates p - p0', worst(updateErrors, (step, i) => `${PARAM_NAMES[i]} after step ${step}`), UPDATE_TOLERANCE);
  });
});
