import { describe, expect, it } from 'vitest';
import { spliceRows } from '../../src/cluster/splice.js';
import { backward } from '../../src/tensor/autograd.js';
import { tensorFrom, tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';

describe('spliceRows', () => {
  const gpu = useGpu();
  const E = 3;
  const B = 6;
  const gathered = Float32Array.from({ length: B * E }, (_, i) => 100 + i);

  it.each([
    [[1, 3]],
    [[0, 1, 2]],
    [[5, 0, 2]],
    [[0, 1, 2, 3, 4, 5]],
  ])('puts local rows %j into the gathered matrix and sends back only their gradient', async (rows) => {
    const b = rows.length;
    const local = Float32Array.from({ length: b * E }, (_, i) => -1 - i);
    const seed = Float32Array.from({ length: B * E }, (_, i) => 0.5 * i - 3);
    const [out, l] = tidy(gpu(), () => {
      const g = tensorFrom(gpu(), gathered, [B, E]);
      const l = tensorFrom(gpu(), local, [b, E]).requireGrad();
      const o = spliceRows(g, l, Int32Array.from(rows));
      backward(o, tensorFrom(gpu(), seed, [B, E]));
      expect(g.grad).toBeNull();
      return [o.keep(), l.keep()];
    });
    const grad = l.grad!;
    const want = Float32Array.from(gathered);
    rows.forEach((r, i) => want.set(local.subarray(i * E, (i + 1) * E), r * E));
    expect(Array.from(await out.read())).toEqual(Array.from(want));
    const wantGrad = new Float32Array(b * E);
    rows.forEach((r, i) => wantGrad.set(seed.subarray(r * E, (r + 1) * E), i * E));
    expect(Array.from(await grad.read())).toEqual(Array.from(wantGrad));
    out.dispose();
    l.dispose();
  });

  it('rejects repeated or out-of-range rows and mismatched widths', () => {
    tidy(gpu(), () => {
      const g = tensorFrom(gpu(), gathered, [B, E]);
      const l = tensorFrom(gpu(), new Float32Array(2 * E), [2, E]);
      expect(() => spliceRows(g, l, Int32Array.of(1, 1))).toThrow(/repeated/);
      expect(() => spliceRows(g, l, Int32Array.of(1, 6))).toThrow(/out of \[0, 6\)/);
      expect(() => spliceRows(g, l, Int32Array.of(1))).toThrow(/1 row indices for 2 local rows/);
      expect(() => spliceRows(g, tensorFrom(gpu(), new Float32Array(4), [2, 2]), Int32Array.of(0, 1))).toThrow(/must be \[B, E\]/);
    });
  });
});
