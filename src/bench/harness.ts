import type { Gpu } from '../gpu/runtime.js';

/** One benchmark case: records its dispatches into the open pass each repetition. */
export interface BenchCase {
  kernel: string;
  shape: string;
  /** Floating-point operations per run (for GFLOP/s), or 0 for bandwidth-bound kernels. */
  flops: number;
  /** Bytes moved per run (for GB/s). */
  bytes: number;
  setup(gpu: Gpu): { run(): void; dispose(): void };
}

export interface Timing {
  gpuMs: number | null;
  wallMs: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Warm-up, then `reps` repetitions: GPU time from timestamp queries around a pass holding
 * exactly the case's dispatches (when the adapter has them), and wall time from recording
 * to the queue reporting completion. Medians of both.
 */
export async function timeCase(gpu: Gpu, run: () => void, reps: number, warmup = 2): Promise<Timing> {
  for (let i = 0; i < warmup; i++) {
    run();
    await gpu.sync();
  }
  const gpuTimes: number[] = [];
  const wallTimes: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const ms = await gpu.timePass(run);
    wallTimes.push(performance.now() - t0);
    if (ms !== null) gpuTimes.push(ms);
  }
  return { gpuMs: gpuTimes.length ? median(gpuTimes) : null, wallMs: median(wallTimes) };
}

export async function timeAsync(fn: () => Promise<void>, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Deterministic inputs in [-1, 1) for benchmarks (an LCG: fast, and the values do not matter). */
export function randomData(n: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 2;
  }
  return out;
}
