import { PantherError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { contextOf, tidy, type Tensor } from './tensor.js';

/**
 * One recorded op: its inputs, its outputs, and the function that maps the outputs'
 * gradients to the inputs' gradients (null where an input takes none).
 */
export interface TapeNode {
  op: string;
  inputs: readonly Tensor[];
  outputs: readonly Tensor[];
  backward: (gradOutputs: readonly (Tensor | null)[]) => readonly (Tensor | null)[];
}

export function isRecording(gpu: Gpu, inputs: readonly Tensor[]): boolean {
  return contextOf(gpu).gradEnabled && inputs.some((t) => t.requiresGrad);
}

/** Appends a node when recording; marks outputs as requiring grad. */
export function record(
  op: string,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  backward: TapeNode['backward'],
): void {
  const gpu = outputs[0].gpu;
  if (!isRecording(gpu, inputs)) return;
  const node: TapeNode = { op, inputs, outputs, backward };
  for (const o of outputs) {
    o.requiresGrad = o.dtype === 'f32';
    o.producer = node;
  }
  contextOf(gpu).tape.push(node);
}

/** Runs `fn` without recording (evaluation, optimizer steps). */
export function noGrad<T>(gpu: Gpu, fn: () => T): T {
  const ctx = contextOf(gpu);
  const before = ctx.gradEnabled;
  ctx.gradEnabled = false;
  try {
    return fn();
  } finally {
    ctx.gradEnabled = before;
  }
}

/** Drops the recorded nodes (their tensors are owned by scopes, not by the tape). */
export function clearTape(gpu: Gpu): void {
  contextOf(gpu).tape.length = 0;
}

export interface BackwardOptions {
  /** Adds `a` into `b` in place; supplied by the ops module to avoid an import cycle. */
  accumulate: (into: Tensor, add: Tensor) => void;
  seed: (like: Tensor) => Tensor;
  copy: (t: Tensor) => Tensor;
  /**
   * Called once per leaf (a tensor no op produced, such as a parameter) as soon as its
   * gradient is final: the walk has passed the earliest op that reads it. Its `.grad` is
   * then complete (or null when no gradient reached it), while the dispatches for the rest
   * of the walk are still being recorded.
   */
  onLeafDone?: (leaf: Tensor) => void;
}

/** For each tape index, the leaves (parameters and other inputs) whose earliest reader it is. */
function leavesFinishedAt(tape: readonly TapeNode[], last: number): Map<number, Tensor[]> {
  const seen = new Set<Tensor>();
  const at = new Map<number, Tensor[]>();
  for (let i = 0; i <= last; i++) {
    for (const t of tape[i].inputs) {
      if (t.producer || !t.requiresGrad || seen.has(t)) continue;
      seen.add(t);
      const list = at.get(i);
      if (list) list.push(t);
      else at.set(i, [t]);
    }
  }
  return at;
}

/**
 * Walks the tape backwards from `loss`: each node's backward kernels turn its outputs'
 * gradients into its inputs' gradients, which are summed where a tensor feeds several ops.
 * Leaves (tensors no op produced, such as parameters) keep their `.grad`; intermediate
 * gradients are freed. The tape is cleared.
 */
export function runBackward(loss: Tensor, opts: BackwardOptions, gradient?: Tensor): void {
  const gpu = loss.gpu;
  const ctx = contextOf(gpu);
  if (!loss.requiresGrad) {
    throw new PantherError('E_AUTOGRAD', 'backward() on a tensor that does not depend on any parameter', loss.describe());
  }
  const tape = ctx.tape;
  const lastIndex = loss.producer ? tape.lastIndexOf(loss.producer) : -1;
  if (lastIndex < 0) throw new PantherError('E_AUTOGRAD', 'the tensor was not produced on the current tape', loss.describe());
  const intermediateGrads = new Set<Tensor>();
  const assigned = new Set<Tensor>();
  const finished = opts.onLeafDone ? leavesFinishedAt(tape, lastIndex) : null;
  const leavesDone = (i: number): void => {
    for (const leaf of finished?.get(i) ?? []) opts.onLeafDone!(leaf);
  };
  noGrad(gpu, () => {
    if (gradient) {
      if (gradient.size !== loss.size) throw new PantherError('E_SHAPE', `seed gradient has ${gradient.size} elements, loss has ${loss.size}`, 'backward');
      loss.grad = gradient;
    } else {
      loss.grad = opts.seed(loss).keep();
    }
    if (loss.producer) intermediateGrads.add(loss.grad);
    for (let i = lastIndex; i >= 0; i--) {
      const node = tape[i];
      const gOut = node.outputs.map((o) => o.grad);
      if (gOut.every((g) => g === null)) {
        leavesDone(i);
        continue;
      }
      tidy(gpu, () => {
        const gIn = node.backward(gOut);
        node.inputs.forEach((input, j) => {
          let g = gIn[j];
          if (!g || !input.requiresGrad) return;
          if (g.size !== input.size) {
            throw new PantherError('E_AUTOGRAD', `op '${node.op}' returned a gradient of ${g.size} elements for an input of ${input.size}`, input.describe());
          }
          if (input.grad) {
            // The input may already hold this very gradient (an op that reads it twice).
            opts.accumulate(input.grad, input.grad === g ? opts.copy(g) : g);
          } else {
            // A pass-through op hands back its output's gradient. The first input to take it
            // takes it over (the output is done with it); a gradient already handed to
            // another input (or not the walk's to give) is copied.
            const from = gOut.indexOf(g);
            const owner = from >= 0 ? node.outputs[from] : null;
            if (owner && owner.grad === g && intermediateGrads.has(g)) {
              owner.grad = null;
              intermediateGrads.delete(g);
            } else if (assigned.has(g) || from >= 0) {
              g = opts.copy(g);
            }
            assigned.add(g);
            input.grad = g.keep();
            if (input.producer) intermediateGrads.add(g);
          }
        });
      });
      for (const o of node.outputs) {
        if (o.grad && intermediateGrads.has(o.grad)) {
          o.grad.dispose();
          o.grad = null;
        }
      }
      leavesDone(i);
    }
  });
  tape.length = 0;
}
