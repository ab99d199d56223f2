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
  const host: HostTrainingState = { params: new Map(), optimizer: optimizer ? { stepCount: optimizer.stepCount, states: new Map() } : null };
  for (const [name, p] of model.store.params) {
    host.params.set(name, { data: await p.readF32(), shape: [...p.shape] });
    if (optimizer) {
      const s = optimizer.stateOf(p);
      host.optimizer!.states.set(name, { m: await s.m.readF32(), v: await s.v.readF32(), step: s.step });
    }
  }
  writeCheckpoint(path, host, meta);
}

/** Parameters and optimizer state on the host (a replica's, pulled over the network). */
export interface HostTrainingState {
  params: Map<string, { data: Float32Array; shape: number[] }>;
  optimizer: { stepCount: number; states: Map<string, { m: Float32Array; v: Float32Array; step: number }> } | null;
}

/** Writes a checkpoint from host arrays (same file as saveCheckpoint), atomically. */
export function writeCheckpoint(path: string, host: HostTrainingState, meta: CheckpointMeta): void {
  const tensors = new Map<string, StTensor>();
  for (const [name, p] of host.params) {
    tensors.set(name, stTensor(p.data, [...p.shape]));
    if (host.optimizer) {
      const s = host.optimizer.states.get(name);
      if (!s) throw new PantherError('E_ARGUMENT', `no optimizer state for '${name}'`, path);
      tensors.set(`optimizer.m.${name}`, stTensor(s.m, [...p.shape]));
      tensors.set(`optimizer.v.${name}`, stTensor(s.v, [...p.shape]));
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
    ...(host.optimizer ? { optimizerSteps: String(host.optimizer.stepCount) } : {}),
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
