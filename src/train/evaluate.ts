import { batchLength, evaluationWindows, makeBatch, type Window } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';
import { UNK } from '../data/tokenizer.js';
import type { PantherModel } from '../model/panther.js';
import { targetRanks } from '../tensor/ops/rank.js';
import { noGrad } from '../tensor/tape.js';
import { tidy } from '../tensor/tensor.js';
import { rankingMetrics, type RankingMetrics } from './ranking.js';

export interface EvaluationOptions {
  role: 'valid' | 'test';
  length: number;
  batchSize: number;
  /** Evaluate on the first N windows only (a deterministic subset for frequent validation). */
  limit?: number;
}

export interface Evaluation extends RankingMetrics {
  role: 'valid' | 'test';
  /** Targets whose token is <unk> (unseen in training): counted as misses. */
  unknownTargets: number;
  /** Held-out events with no history before them (cannot be scored). */
  withoutHistory: number;
}

/** Evenly spread, deterministic subset of windows. */
function subset(windows: Window[], limit: number | undefined): Window[] {
  if (!limit || windows.length <= limit) return windows;
  const step = windows.length / limit;
  return Array.from({ length: limit }, (_, i) => windows[Math.floor(i * step)]);
}

export interface HeldOutRanks {
  /** 0-based rank of each held-out event's true token, in a fixed order of the events (the same for every model on the same data). */
  ranks: Uint32Array;
  /** The user (index in the data) of each ranked event, in the same order. */
  users: Uint32Array;
  unknownTargets: number;
  withoutHistory: number;
}

/**
 * Next-event ranking on held-out events: the model reads each user's history up to the
 * held-out event and ranks its true token against the FULL vocabulary (no sampled
 * negatives). Ties count against the target; <unk> targets are misses (rank V).
 */
export async function rankHeldOut(model: PantherModel, data: PreparedData, o: EvaluationOptions): Promise<HeldOutRanks> {
  const gpu = model.gpu;
  const { windows: all, withoutHistory } = evaluationWindows(data, o.role, o.length);
  // Batches of similar lengths, each cut to its longest window (the metrics do not depend on
  // order; the sort is stable, so the order is the same for every model).
  const windows = subset(all, o.limit).sort((a, b) => b.end - b.start - (a.end - a.start));
  const V = model.shape.vocabSize;
  const ranks = new Uint32Array(windows.length);
  const users = Uint32Array.from(windows, (w) => w.user);
  let unknownTargets = 0;
  for (let start = 0; start < windows.length; start += o.batchSize) {
    const slice = windows.slice(start, start + o.batchSize);
    const L = batchLength(slice, o.length);
    const batch = makeBatch(data, slice, L, 'right');
    const targets = Int32Array.from({ length: batch.rows }, (_, r) => batch.targets[r * L + L - 1]);
    const rankTensor = noGrad(gpu, () => tidy(gpu, () => {
      const f = model.forward(batch);
      return targetRanks(model.lastPositionScores(f, batch), targets).keep();
    }));
    const got = await rankTensor.read();
    rankTensor.dispose();
    for (let r = 0; r < batch.rows; r++) {
      if (targets[r] === UNK) {
        unknownTargets++;
        ranks[start + r] = V;
      } else {
        ranks[start + r] = got[r];
      }
    }
  }
  return { ranks, users, unknownTargets, withoutHistory };
}

/** The metrics of ranked held-out events. */
export function evaluationOf(role: 'valid' | 'test', h: HeldOutRanks): Evaluation {
  return { role, ...rankingMetrics(h.ranks), unknownTargets: h.unknownTargets, withoutHistory: h.withoutHistory };
}

/** HR@1, HR@10, NDCG@10, HR@50 and MRR of the held-out events (see rankHeldOut). */
export async function evaluateRanking(model: PantherModel, data: PreparedData, o: EvaluationOptions): Promise<Evaluation> {
  return evaluationOf(o.role, await rankHeldOut(model, data, o));
}
