/** Linear warm-up to `peak`, then cosine decay to `peak * minRatio` at `total` steps. */
export function learningRate(step: number, o: { peak: number; warmup: number; total: number; minRatio: number }): number {
  if (o.warmup > 0 && step < o.warmup) return (o.peak * (step + 1)) / o.warmup;
  const span = Math.max(1, o.total - o.warmup);
  const t = Math.min(1, Math.max(0, (step - o.warmup) / span));
  const floor = o.peak * o.minRatio;
  return floor + 0.5 * (o.peak - floor) * (1 + Math.cos(Math.PI * t));
}
