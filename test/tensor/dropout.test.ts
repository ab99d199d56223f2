import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { backward } from '../../src/tensor/autograd.js';
import { dropout, dropoutKeeps } from '../../src/tensor/ops/dropout.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { randn } from '../support/numeric.js';

describe('dropout', () => {
  const gpu = useGpu();

  // Row widths that take the scalar kernel and the vec4 one.
  for (const width of [37, 36]) {
    it(`keeps about 1 - p of the elements, scaled, with the mask the host hash predicts (width ${width})`, async () => {
      const g = gpu();
      const rows = 64;
      const x = randn(rows * width, 3);
      const y = await dropout(tensorFrom(g, x, [rows, width]), { p: 0.3, seed: 99 }).readF32();
      let kept = 0;
      for (let i = 0; i < x.length; i++) {
        const keep = dropoutKeeps(99, i, 0.3);
        if (keep) kept++;
        expect(y[i]).toBe(keep ? Math.fround(x[i] * Math.fround(1 / 0.7)) : 0);
      }
      expect(kept / x.length).toBeGreaterThan(0.65);
      expect(kept / x.length).toBeLessThan(0.75);
    });
  }

  it('gives each element the mask of its row in the global batch, whatever the sharding', async () => {
    const g = gpu();
    const [rows, width] = [6, 10];
    const x = randn(rows * width, 4);
    const whole = await dropout(tensorFrom(g, x, [rows, width]), { p: 0.5, seed: 7 }).readF32();
    // A shard holding global rows 4 and 1, in that order.
    const shard = Float32Array.from([...x.subarray(40, 50), ...x.subarray(10, 20)]);
    const part = await dropout(tensorFrom(g, shard, [2, width]), { p: 0.5, seed: 7, globalRows: Uint32Array.of(4, 1) }).readF32();
    expect(Array.from(part)).toEqual([...whole.subarray(40, 50), ...whole.subarray(10, 20)]);
  });

  // Kept widths that take the scalar kernel and the vec4 one.
  for (const kept of [7, 8]) {
    it(`keeps the mask of every element when rows are trimmed from the left (rowStride, ${kept} of 12 kept)`, async () => {
      const g = gpu();
      const [rows, width] = [5, 12];
      const x = randn(rows * width, 8);
      const whole = await dropout(tensorFrom(g, x, [rows, width]), { p: 0.5, seed: 11 }).readF32();
      const tail = (v: Float32Array) => Float32Array.from({ length: rows * kept }, (_, i) => v[Math.floor(i / kept) * width + width - kept + (i % kept)]);
      const trimmed = await dropout(tensorFrom(g, tail(x), [rows, kept]), { p: 0.5, seed: 11, rowStride: width }).readF32();
      expect(Array.from(trimmed)).toEqual(Array.from(tail(whole)));
      expect(() => dropout(tensorFrom(g, x, [rows, width]), { p: 0.5, seed: 1, rowStride: width - 1 })).toThrowError(/row stride/);
    });
  }

  it('passes the gradient through the same mask', async () => {
    const g = gpu();
    const X = tensorFrom(g, randn(200, 5), [20, 10]).requireGrad();
    const y = dropout(X, { p: 0.4, seed: 3 });
    backward(y);
    const grad = await X.grad!.readF32();
    const out = await y.readF32();
    for (let i = 0; i < 200; i++) expect(grad[i]).toBeCloseTo(out[i] === 0 ? 0 : 1 / 0.6, 5);
  });

  it('rejects a probability outside [0, 1)', () => {
    const g = gpu();
    expect(() => dropout(tensorFrom(g, [1, 2], [2]), { p: 1, seed: 1 })).toThrowError(PantherError);
  });
});
