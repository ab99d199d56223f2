import { batchLength, epochOrder, makeBatch, trainingWindows } from '../data/batching.js';
import { loadPreparedData } from '../data/cache.js';
import type { ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { Gpu } from '../gpu/runtime.js';
import { baselineOf } from '../model/config.js';
import { PantherModel } from '../model/panther.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { AdamW } from '../tensor/ops/optim.js';
import { tidy } from '../tensor/tensor.js';
import { median } from '../bench/harness.js';
import { modelShapeOf } from '../train/trainer.js';

/**
 * `panther bench step`: wall time and events/s of full training steps (forward, backward,
 * optimizer) on the configured data and model, and the GPU time per kernel of one step.
 */
export async function benchStep(config: ClusterConfig, o: { steps: number; baseline?: boolean; json?: boolean }): Promise<void> {
  const { data } = await loadPreparedData(config.data);
  const gpu = await Gpu.create(gpuOptionsFrom(config.gpu));
  const L = config.data.maxLength;
  const model = new PantherModel(gpu, o.baseline ? baselineOf(config.model) : config.model, modelShapeOf(data, L));
  const opt = new AdamW(gpu, { lr: 1e-3 });
  const B = config.train.batchSize;
  const windows = epochOrder(trainingWindows(data, L, config.train.windowContext), 1, 0, B, config.train.lengthBuckets);
  const step = async (i: number) => {
    const start = (i * B) % Math.max(1, windows.length - B);
    const slice = windows.slice(start, start + B);
    const batch = makeBatch(data, slice, batchLength(slice, L), 'right');
    const loss = tidy(gpu, () => {
      const l = model.loss(batch, { train: true, step: i });
      backward(l.total);
      return l.total.keep();
    });
    opt.step(model.parameters(), { maxGradNorm: 1 });
    zeroGrad(model.parameters());
    await loss.read();
    loss.dispose();
    return batch.tokens;
  };
  try {
    await step(0);
    await step(1);
    const times: number[] = [];
    let events = 0;
    for (let i = 0; i < o.steps; i++) {
      const t0 = performance.now();
      events += await step(i + 2);
      times.push(performance.now() - t0);
    }
    let profile: { kernel: string; count: number; ms: number }[] = [];
    if (gpu.hasTimestamps) {
      gpu.startProfile();
      await step(o.steps + 2);
      profile = await gpu.stopProfile();
    }
    const ms = median(times);
    const gpuMs = profile.reduce((a, p) => a + p.ms, 0);
    const report = {
      model: o.baseline ? 'transformer' : 'PANTHER', batch: B, length: L, parameters: model.store.count(),
      stepMs: ms, eventsPerSecond: events / (times.reduce((a, b) => a + b, 0) / 1000), gpuMsPerStep: gpuMs, kernels: profile,
    };
    if (o.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    const lines = [
      `${report.model}: batch ${B} x ${L}, ${report.parameters.toLocaleString('en')} parameters`,
      `step ${ms.toFixed(1)} ms (median of ${o.steps}), ${Math.round(report.eventsPerSecond).toLocaleString('en')} events/s; GPU time of one step ${gpuMs.toFixed(1)} ms in ${profile.reduce((a, p) => a + p.count, 0)} dispatches`,
      ...profile.slice(0, 25).map((p) => `  ${p.ms.toFixed(2).padStart(9)} ms  ${String(p.count).padStart(4)}x  ${p.kernel}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    model.dispose();
    opt.dispose();
    gpu.destroy();
  }
}
