/** Float64 CPU reference for the embedding gather and its scatter-add backward (kernels/embedding*.wgsl). */
export function embeddingRef(table: ArrayLike<number>, V: number, D: number, ids: ArrayLike<number>, padId?: number): Float64Array {
  const out = new Float64Array(ids.length * D);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id === padId) continue;
    if (!(id >= 0 && id < V)) throw new Error(`id ${id} at ${n} out of range [0, ${V})`);
    for (let d = 0; d < D; d++) out[n * D + d] = table[id * D + d];
  }
  return out;
}

/** Gradient of sum(g * embedding(table, ids)) with respect to the table: [V, D]. */
export function embeddingBackwardRef(g: ArrayLike<number>, V: number, D: number, ids: ArrayLike<number>, padId?: number): Float64Array {
  const dtable = new Float64Array(V * D);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id === padId) continue;
    for (let d = 0; d < D; d++) dtable[id * D + d] += g[n * D + d];
  }
  return dtable;
}
