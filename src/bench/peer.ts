import type { Gpu } from '../gpu/runtime.js';
import { timeAsync } from './harness.js';

/**
 * TensorFlow.js's WebGPU backend on the same Dawn instance and adapter as ours, for
 * side-by-side numbers. Loaded lazily: it is a dev dependency used only by the benchmark.
 */
export interface Peer {
  name: string;
  matmulMs(batch: number, M: number, N: number, K: number, reps: number): Promise<number>;
  attentionMs(B: number, H: number, L: number, D: number, reps: number): Promise<number>;
  dispose(): void;
}

export async function loadTfjsPeer(gpu: Gpu): Promise<Peer> {
  const g = globalThis as { navigator?: unknown };
  g.navigator = { gpu: gpu.instance, userAgent: 'node' };
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('TensorFlow.js could not start its WebGPU backend');
  await tf.ready();
  const version = (tf as unknown as { version_core: string }).version_core;
  return {
    name: `tfjs-webgpu ${version}`,
    async matmulMs(batch, M, N, K, reps) {
      const a = tf.randomNormal([batch, M, K]);
      const b = tf.randomNormal([batch, K, N]);
      const ms = await timeAsync(async () => {
        const c = tf.matMul(a, b);
        await c.data();
        c.dispose();
      }, reps);
      a.dispose();
      b.dispose();
      return ms;
    },
    async attentionMs(B, H, L, D, reps) {
      // Causal attention from TF.js ops: scores = QKᵀ/√D + mask, softmax, times V.
      const q = tf.randomNormal([B * H, L, D]);
      const k = tf.randomNormal([B * H, L, D]);
      const v = tf.randomNormal([B * H, L, D]);
      const mask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([L, L]), -1, 0)), -1e9));
      const ms = await timeAsync(async () => {
        const out = tf.tidy(() => {
          const s = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(D)), mask);
          return tf.matMul(tf.softmax(s), v);
        });
        await out.data();
        out.dispose();
      }, reps);
      [q, k, v, mask].forEach((t) => t.dispose());
      return ms;
    },
    dispose() {
      tf.engine().reset();
    },
  };
}
