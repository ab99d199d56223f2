import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PantherError } from '../errors.js';
import type { PantherModel } from '../model/panther.js';
import type { AdamW } from '../tensor/ops/optim.js';
import { loadSafetensors, saveSafetensors, stTensor, type StTensor } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'panther-checkpoint-1';

/** Where training stands: enough to continue exactly as if it had never stopped. */
export interface TrainingState {
  /** Optimizer steps taken. */
  step: number;
  epoch: number;
  /** Batches of the current epoch already consumed. */
  position: number;
  bestMetric: number;
  bestStep: number;
  /** Validations since the best one (early stopping). */
  sinceBest: number;
  /** Events read in training so far. */
  events: number;
}

export interface CheckpointMeta {
  state: TrainingState;
  /** The model config and shape it was built with (JSON), to rebuild it for evaluation and serving. */
  model: string;
  /** Free-form JSON (run info). */
  info?: string;
}

/**
 * Writes parameters, optimizer moments and per-parameter update counts, and the training
 * state to one safetensors file (atomically). Parameter names are the model's dotted names;
 * optimizer tensors are `optimizer.m.<name>`, `optimizer.v.<name>`, `optimizer.step.<name>`.
 */
export async function saveCheckpoint(path: string, model: PantherModel, optimizer: AdamW | null, meta: CheckpointMeta): Promise<void> {
  const tensors = new Map<string, StTensor>();
  for (const [name, p] of model.store.params) {
    tensors.set(name, stTensor(await p.readF32(), [...p.shape]));
    if (optimizer) {
      const s = optimizer.stateOf(p);
      tensors.set(`optimizer.m.${name}`, stTensor(await s.m.readF32(), [...p.shape]));
      tensors.set(`optimizer.v.${name}`, stTensor(await s.v.readF32(), [...p.shape]));
      tensors.set(`optimizer.step.${name}`, stTensor(Int32Array.of(s.step)));
    }
  }
  const dir = path.slice(0, Math.max(0, path.lastIndexOf('/')));
  if (dir && !existsSync(dir)) mkdirSync(dir, { recursive: true });
  saveSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    state: JSON.stringify(meta.state),
    model: meta.model,
    ...(meta.info ? { info: meta.info } : {}),
    ...(optimizer ? { optimizerSteps: String(optimizer.stepCount) } : {}),
  });
}

export interface LoadedCheckpoint {
  tensors: Map<string, StTensor>;
  state: TrainingState;
  model: unknown;
  info: unknown;
  optimizerSteps: number;
}

export function readCheckpoint(path: string): LoadedCheckpoint {
  const { tensors, metadata } = loadSafetensors(path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new PantherError('E_ARGUMENT', `not a panther checkpoint (format ${metadata.format ?? 'missing'})`, path);
  }
  try {
    return {
      tensors,
      state: JSON.parse(metadata.state),
      model: JSON.parse(metadata.model),
      info: metadata.info ? JSON.parse(metadata.info) : null,
      optimizerSteps: Number(metadata.optimizerSteps ?? 0),
    };
  } catch (err) {
    throw new PantherError('E_ARGUMENT', `checkpoint metadata is not valid JSON (${(err as Error).message})`, path);
  }
}

/** Loads parameters (and optimizer state when given) into a model built with the same config. */
export function restoreCheckpoint(ckpt: LoadedCheckpoint, model: PantherModel, optimizer: AdamW | null, where = 'checkpoint'): void {
  for (const [name, p] of model.store.params) {
    const t = ckpt.tensors.get(name);
    if (!t) throw new PantherError('E_ARGUMENT', `has no tensor '${name}'`, where);
    if (t.data.length !== p.size) throw new PantherError('E_SHAPE', `tensor '${name}' has shape [${t.shape}], the model [${p.shape}]`, where);
    p.write(t.data);
    if (optimizer) {
      const m = ckpt.tensors.get(`optimizer.m.${name}`);
      const v = ckpt.tensors.get(`optimizer.v.${name}`);
      const step = ckpt.tensors.get(`optimizer.step.${name}`);
      if (!m || !v || !step) throw new PantherError('E_ARGUMENT', `has no optimizer state for '${name}'`, where);
      const s = optimizer.stateOf(p);
      s.m.write(m.data);
      s.v.write(v.data);
      s.step = step.data[0];
    }
  }
  if (optimizer) optimizer.stepCount = ckpt.optimizerSteps;
}

export function checkpointPath(dir: string, name: 'last' | 'best'): string {
  return join(dir, `${name}.safetensors`);
}
