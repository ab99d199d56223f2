import { PantherError } from '../errors.js';
import { copyRowsInto } from '../tensor/ops/rows.js';
import { record } from '../tensor/tape.js';
import { empty, type Tensor } from '../tensor/tensor.js';

/**
 * `gathered` [B, E] (every worker's rows of the global batch, no gradient) with rows
 * `rows[i]` replaced by `local[i]` [b, E]. The backward pass hands `local` the gradient of
 * its own rows only: under data parallelism each worker backpropagates the global loss into
 * the rows it computed, and the all-reduce adds the rest.
 */
export function spliceRows(gathered: Tensor, local: Tensor, rows: Int32Array): Tensor {
  const op = 'spliceRows';
  if (gathered.shape.length !== 2 || local.shape.length !== 2 || gathered.shape[1] !== local.shape[1]) {
    throw new PantherError('E_SHAPE', `gathered [${gathered.shape}] and local [${local.shape}] must be [B, E] and [b, E]`, op);
  }
  const [B] = gathered.shape;
  if (rows.length !== local.shape[0]) throw new PantherError('E_SHAPE', `${rows.length} row indices for ${local.shape[0]} local rows`, op);
  const seen = new Set<number>();
  for (const r of rows) {
    if (!(r >= 0 && r < B) || seen.has(r)) throw new PantherError('E_ARGUMENT', `row index ${r} is out of [0, ${B}) or repeated`, op);
    seen.add(r);
  }
  const gpu = gathered.gpu;
  const out = empty(gpu, gathered.shape);
  copyRowsInto(gathered, out, { rows: B });
  // Runs of consecutive rows go in one dispatch each.
  const runs = rowRuns(rows);
  for (const { local: i, global: g, count } of runs) copyRowsInto(local, out, { rows: count, srcOffset: i, dstOffset: g });
  record(op, [gathered, local], [out], ([g]) => {
    const dLocal = empty(gpu, local.shape);
    for (const r of runs) copyRowsInto(g!, dLocal, { rows: r.count, srcOffset: r.global, dstOffset: r.local });
    return [null, dLocal];
  });
  return out;
}

function rowRuns(rows: Int32Array): { local: number; global: number; count: number }[] {
  const runs: { local: number; global: number; count: number }[] = [];
  for (let i = 0; i < rows.length; i++) {
    const last = runs[runs.length - 1];
    if (last && rows[i] === last.global + last.count && i === last.local + last.count) last.count++;
    else runs.push({ local: i, global: rows[i], count: 1 });
  }
  return runs;
}
