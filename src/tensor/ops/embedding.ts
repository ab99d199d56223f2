import { PantherError } from '../../errors.js';
import type { KernelSpec } from '../../gpu/kernel.js';
import { isRecording, record } from '../tape.js';
import { empty, shapeSize, tensorFrom, type Tensor } from '../tensor.js';

export const EMBEDDING_GATHER: KernelSpec = {
  file: 'embedding', entry: 'embedding_gather',
  params: { N: 'u32', D: 'u32', hasPad: 'u32', padId: 'i32' },
  storage: ['read', 'read', 'rw'],
};
export const EMBEDDING_SCATTER: KernelSpec = {
  file: 'embedding_bwd', entry: 'embedding_scatter',
  params: { V: 'u32', D: 'u32' },
  storage: ['read', 'read', 'read', 'rw'],
};

const WG = 64;
const ROWS = 16;

/** Workgroups covering `rows` rows of D columns, ROWS rows x WG columns each; rows fold into z. */
function rowBlocks(rows: number, D: number): [number, number, number] {
  const x = Math.max(1, Math.ceil(D / WG));
  const blocks = Math.max(1, Math.ceil(rows / ROWS));
  const y = Math.min(blocks, 65535);
  return [x, y, Math.ceil(blocks / y)];
}

export interface EmbeddingOptions {
  /** Positions holding this id gather a zero row and send no gradient (padding). */
  padId?: number;
}

/**
 * Positions grouped by id (counting sort, ascending positions within an id), in O(N + V):
 * the positions of id v are order[segStart[v] .. segStart[v + 1]). Padding positions are left out.
 */
export function segmentLayout(ids: ArrayLike<number>, V: number, padId?: number): { segStart: Uint32Array; order: Uint32Array } {
  const segStart = new Uint32Array(V + 1);
  let count = 0;
  for (let n = 0; n < ids.length; n++) {
    if (ids[n] === padId) continue;
    segStart[ids[n] + 1]++;
    count++;
  }
  for (let v = 0; v < V; v++) segStart[v + 1] += segStart[v];
  const cursor = segStart.slice(0, V);
  const order = new Uint32Array(count);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id === padId) continue;
    order[cursor[id]++] = n;
  }
  return { segStart, order };
}

function checkIds(ids: ArrayLike<number>, V: number, padId: number | undefined, op: string): void {
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id === padId) continue;
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new PantherError('E_ARGUMENT', `id at index ${n} is ${id}, outside [0, ${V})`, op);
    }
  }
}

/**
 * Rows of `table` [V, D] picked by host ids laid out as `shape`: returns [...shape, D].
 * The backward pass sums each id's gradient rows into dTable on the GPU, in position order.
 */
export function embedding(table: Tensor, ids: Int32Array | readonly number[], shape: readonly number[], opts: EmbeddingOptions = {}): Tensor {
  const op = 'embedding';
  if (table.dtype !== 'f32') throw new PantherError('E_DTYPE', `table must be f32, is ${table.dtype} (${table.describe()})`, op);
  if (table.shape.length !== 2) throw new PantherError('E_SHAPE', `table must be [V, D], has shape [${table.shape}]`, op);
  const [V, D] = table.shape;
  const count = shapeSize(shape);
  if (ids.length !== count) throw new PantherError('E_SHAPE', `${ids.length} ids for shape [${shape}] (${count} positions)`, op);
  const padId = opts.padId;
  if (padId !== undefined && !Number.isInteger(padId)) throw new PantherError('E_ARGUMENT', `padId must be an integer, is ${padId}`, op);
  checkIds(ids, V, padId, op);

  const gpu = table.gpu;
  const hostIds = Int32Array.from(ids);
  const idTensor = tensorFrom(gpu, count ? hostIds : [0], [Math.max(count, 1)], 'i32');
  // The backward layout is uploaded now, before any dispatch of this op, so the backward
  // pass records dispatches only (no write that would split the pass).
  let starts: Tensor | null = null;
  let positions: Tensor | null = null;
  const recording = isRecording(gpu, [table]);
  if (recording) {
    const { segStart, order } = segmentLayout(hostIds, V, padId);
    starts = tensorFrom(gpu, segStart, [V + 1], 'u32');
    positions = tensorFrom(gpu, order.length ? order : [0], [Math.max(order.length, 1)], 'u32');
  }
  const out = empty(gpu, [...shape, D]);
  gpu.dispatch(EMBEDDING_GATHER, {
    buffers: [table.buffer, idTensor.buffer, out.buffer],
    params: { N: count, D, hasPad: padId === undefined ? 0 : 1, padId: padId ?? 0 },
    workgroups: rowBlocks(count, D),
  });
  idTensor.dispose();
  if (!recording) return out;
  record(op, [table], [out], ([g]) => {
    const dtable = empty(gpu, [V, D]);
    gpu.dispatch(EMBEDDING_SCATTER, {
      buffers: [g!.buffer, starts!.buffer, positions!.buffer, dtable.buffer],
      params: { V, D },
      workgroups: rowBlocks(V, D),
    });
    return [dtable];
  });
  return out;
}
