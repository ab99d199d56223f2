import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shardOf } from '../../src/cluster/plan.js';
import { Replica } from '../../src/cluster/replica.js';
import { loadPreparedData } from '../../src/data/cache.js';
import { useGpu } from '../support/gpu.js';
import { tempDir } from '../support/tmp.js';
import { tinyConfig } from './support.js';

describe('gradient stream', () => {
  const gpu = useGpu();
  const root = tempDir('panther-stream');

  it('hands each bucket to the all-reduce once, as backward finishes it, with the values of a plain read', async () => {
    const config = tinyConfig(root, 'stream');
    const prepared = await loadPreparedData(config.data, {});
    // Small buckets: the tiny model spreads over several.
    const replica = new Replica(gpu(), prepared.data, config.model, config.train, config.data.maxLength, 4096);
    const buckets = replica.layout.buckets.length;
    expect(buckets).toBeGreaterThan(3);
    const indices = Int32Array.from({ length: 8 }, (_, i) => i);
    const shard = shardOf(prepared.data, replica.windows, indices, new Uint16Array(indices.length), 0, 1, config.data.maxLength);
    const noGather = async (mine: Float32Array): Promise<Float32Array[]> => [mine];

    const order: number[] = [];
    let computed = false;
    const startedEarly: boolean[] = [];
    const seen: Float32Array[] = [];
    const stream = replica.gradientStream(async (b, values) => {
      order.push(b);
      startedEarly.push(!computed);
      seen[b] = Float32Array.from(values);
      // A reduction that changes the values in place, as the ring's sum does.
      values.forEach((v, i) => { values[i] = 2 * v; });
    });
    await replica.computeShard(shard, noGather, 0, stream);
    computed = true;
    const flat = await stream.finish();

    // Every bucket exactly once; the flags bucket last, once every parameter is known.
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: buckets }, (_, i) => i));
    expect(order[order.length - 1]).toBe(buckets - 1);
    // Backward finishes the output side first: the first bucket out is not the embeddings'.
    expect(order[0]).not.toBe(0);
    // Some buckets went out while the step was still being computed.
    expect(startedEarly.some(Boolean)).toBe(true);

    // The values are the gradients as read after backward (then doubled by the reduction).
    const { offsets, total } = replica.layout;
    for (let i = 0; i < replica.params.length; i++) {
      const p = replica.params[i];
      const grad = p.grad ? await p.grad.readF32() : null;
      const b = replica.layout.buckets.findIndex((x) => offsets[i] >= x.start && offsets[i] < x.end);
      if (grad) {
        const sent = seen[b].subarray(offsets[i] - replica.layout.buckets[b].start, offsets[i] - replica.layout.buckets[b].start + p.size);
        expect(Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength).equals(Buffer.from(grad.buffer))).toBe(true);
        expect(flat[offsets[i]]).toBe(2 * grad[0]);
      }
      expect(flat[total + i]).toBe(grad ? 2 : 0);
    }
    replica.discard();
  });
});
