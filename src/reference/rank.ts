/** Float64 reference of kernels/rank.wgsl. */
export function targetRanksRef(scores: ArrayLike<number>, targets: ArrayLike<number>, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r];
    if (t < 0 || t >= V) {
      out.push(0xffffffff);
      continue;
    }
    const st = scores[r * V + t];
    let above = 0;
    for (let j = 0; j < V; j++) {
      const s = scores[r * V + j];
      if (s > st || (s === st && j !== t)) above++;
    }
    out.push(above);
  }
  return out;
}
