import { PantherError } from '../errors.js';
import { batchLength, makeBatch, shardBatch, windowsDistinctTargets, windowTargets, type Batch, type Window } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';

/**
 * What one data-parallel step works on, derived exactly as the single-process Trainer does:
 * the global batch is the EpochSchedule's batch at (epoch, position), split across the
 * ring by shardBatch (balanced by event count). Only window indices travel. Each rank cuts
 * its rows to its own longest window: the model's outputs do not depend on left padding.
 */

/** Ring rank of every row of the global batch (shardBatch over `workers` shards). */
export function assignRows(data: PreparedData, windows: readonly Window[], indices: Int32Array, maxLength: number, workers: number): Uint16Array {
  if (workers > 65535) throw new PantherError('E_ARGUMENT', `${workers} workers do not fit the protocol's 16-bit ranks`, 'assignRows');
  const batch = makeBatch(data, Array.from(indices, (i) => windows[i]), maxLength, 'right');
  const shards = shardBatch(batch, workers);
  const ranks = new Uint16Array(indices.length);
  shards.forEach((s, rank) => s.rowIndex.forEach((row) => (ranks[row] = rank)));
  return ranks;
}

/** Validated indices of a received step: every index names a training window. */
export function checkIndices(indices: Int32Array, windowCount: number, where: string): void {
  for (const i of indices) {
    if (!(i >= 0 && i < windowCount)) throw new PantherError('E_PROTOCOL', `window index ${i} is outside [0, ${windowCount})`, where);
  }
}

export interface Shard {
  /** Rows of the global batch this rank computes, ascending. */
  rows: Int32Array;
  /** Row count of every rank. */
  counts: number[];
  /** Ring rank of every row of the global batch. */
  assignment: Uint16Array;
  /** This rank's batch (globalTargetCount is the global batch's). */
  batch: Batch | null;
  /** The global batch's profile rows [B, fields] (the contrastive positives are global). */
  globalProfile: Int32Array;
  globalRows: number;
  globalTargetCount: number;
  /** The global batch's distinct targets (the in-batch negatives of every shard), computed when first read. */
  readonly globalCandidates: Int32Array;
}

/** This rank's part of the global batch, as the worker builds it from the indices. */
export function shardOf(data: PreparedData, windows: readonly Window[], indices: Int32Array, assignment: Uint16Array, rank: number, size: number, maxLength: number): Shard {
  if (assignment.length !== indices.length) throw new PantherError('E_PROTOCOL', `${assignment.length} row assignments for ${indices.length} rows`, 'step');
  const counts = new Array<number>(size).fill(0);
  const rows: number[] = [];
  assignment.forEach((r, g) => {
    if (r >= size) throw new PantherError('E_PROTOCOL', `row ${g} is assigned to rank ${r} of a ring of ${size}`, 'step');
    counts[r]++;
    if (r === rank) rows.push(g);
  });
  const global = Array.from(indices, (i) => windows[i]);
  const fields = data.profile.fields.length;
  const globalProfile = new Int32Array(global.length * fields);
  let globalTargetCount = 0;
  global.forEach((w, g) => {
    globalProfile.set(data.profile.ids.subarray(w.user * fields, (w.user + 1) * fields), g * fields);
    globalTargetCount += windowTargets(w).count;
  });
  let candidates: Int32Array | undefined;
  let batch: Batch | null = null;
  if (rows.length) {
    const mine = rows.map((g) => global[g]);
    batch = makeBatch(data, mine, batchLength(mine, maxLength), 'right');
    batch.rowIndex = Int32Array.from(rows);
    batch.globalTargetCount = globalTargetCount;
  }
  return {
    rows: Int32Array.from(rows), counts, assignment, batch, globalProfile, globalRows: global.length, globalTargetCount,
    // Only the in-batch loss reads them.
    get globalCandidates() {
      return (candidates ??= windowsDistinctTargets(data, global));
    },
  };
}
