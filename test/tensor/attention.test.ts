import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { attentionBackwardRef, attentionRef, type AttentionRefShape } from '../../src/reference/attention.js';
import { backward } from '../../src/tensor/autograd.js';
import { attention, attentionVariant } from '../../src/tensor/ops/attention.js';
import type { Gpu } from '../../src/gpu/runtime.js';
import { tensorFrom, tidy, type Tensor } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn } from '../support/numeric.js';

interface Case extends AttentionRefShape {
  name: string;
}

/** Runs forward and backward on the GPU; returns everything as host arrays. */
async function runGpu(g: Gpu, c: Case, q: Float32Array, k: Float32Array, v: Float32Array, w: Float32Array, maskDtype: 'u32' | 'i32' = 'u32') {
  const shape = [c.B, c.L, c.H * c.D];
  const Q = tensorFrom(g, q, shape).requireGrad().keep();
  const K = tensorFrom(g, k, shape).requireGrad().keep();
  const V = tensorFrom(g, v, shape).requireGrad().keep();
  const result = await tidy(g, () => {
    const keyMask: Tensor | undefined = c.keyMask ? tensorFrom(g, c.keyMask, [c.B, c.L], maskDtype) : undefined;
    const out = attention(Q, K, V, { heads: c.H, keyMask, scale: c.scale });
    backward(out, tensorFrom(g, w, out.shape));
    return out.readF32();
  });
  const grads = { out: result, dq: await Q.grad!.readF32(), dk: await K.grad!.readF32(), dv: await V.grad!.readF32() };
  for (const t of [Q, K, V]) t.dispose();
  return grads;
}

function inputs(c: Case, seed: number) {
  const n = c.B * c.L * c.H * c.D;
  return { q: randn(n, seed), k: randn(n, seed + 1), v: randn(n, seed + 2), w: randn(n, seed + 3) };
}

/**
 * Relative error against the reference, or the absolute error where the reference is
 * identically zero up to rounding (with one key per row, dq and dk vanish: ds = p (dp - D) = 0).
 */
function gradError(got: Float32Array, ref: Float64Array): number {
  const scale = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  if (scale < 1e-9) return got.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  return maxRelError(got, ref);
}

function expectFinite(xs: Float32Array): void {
  expect(xs.every((x) => Number.isFinite(x))).toBe(true);
}

// Both kernel families run every case: the subgroup kernels (CPU adapters with subgroups of
// 8+ lanes; head dims that are multiples of 4) and the portable ones. Head dims that are not
// multiples of 4 take the portable kernels on either device.
for (const variant of ['subgroup', 'reg'] as const) {
  describe(`attention (${variant} tunables)`, () => {
    const gpu = useGpu({ tunables: { matmul: variant } });

    const cases: Case[] = [
      { name: 'B=1 L=1', B: 1, L: 1, H: 1, D: 16 },
      { name: 'B=1 L=1 two heads of 3', B: 1, L: 1, H: 2, D: 3 },
      { name: 'ragged L=37, 2 heads of 25 (card-transaction config)', B: 2, L: 37, H: 2, D: 25 },
      { name: 'ragged L=37, 2 heads of 28', B: 2, L: 37, H: 2, D: 28 },
      { name: 'ragged L=70 (past one workgroup), D=16', B: 1, L: 70, H: 3, D: 16 },
      { name: 'L=70, D=64', B: 2, L: 70, H: 1, D: 64 },
      { name: 'L=37, D=128', B: 1, L: 37, H: 2, D: 128 },
      { name: 'D=1, custom scale', B: 2, L: 19, H: 2, D: 1, scale: 0.7 },
      { name: 'D=4, L=9, custom scale', B: 3, L: 9, H: 2, D: 4, scale: 1.3 },
    ];

    it('picks the kernels the device and head dim allow', () => {
      const g = gpu();
      expect(attentionVariant(g, 24)).toBe(variant === 'subgroup' ? 'subgroup' : 'portable');
      expect(attentionVariant(g, 128)).toBe(variant === 'subgroup' ? 'subgroup' : 'portable');
      expect(attentionVariant(g, 25)).toBe('portable');
      expect(attentionVariant(g, 3)).toBe('portable');
    });

    for (const c of cases) {
      it(`forward and backward match the reference: ${c.name}`, async () => {
        const { q, k, v, w } = inputs(c, c.L * 10 + c.D);
        const got = await runGpu(gpu(), c, q, k, v, w);
        const ref = attentionRef(q, k, v, c);
        const grads = attentionBackwardRef(q, k, v, w, c);
        expect(maxRelError(got.out, ref.out)).toBeLessThan(1e-4);
        expect(gradError(got.dq, grads.dq)).toBeLessThan(1e-4);
        expect(gradError(got.dk, grads.dk)).toBeLessThan(1e-4);
        expect(gradError(got.dv, grads.dv)).toBeLessThan(1e-4);
      });
    }

    // D=25 takes the portable kernels everywhere, D=24 the subgroup ones where available.
    for (const D of [25, 24]) {
      it(`honours a key-padding mask, with empty rows giving zeros and zero gradients (D=${D})`, async () => {
        const B = 4;
        const L = 45;
        // Right padding (len 45, 23), left padding (first 11 keys masked: rows 0..10 see no
        // key), and a sequence with every key masked.
        const keyMask = new Uint32Array(B * L);
        for (let j = 0; j < L; j++) {
          keyMask[0 * L + j] = 1;
          keyMask[1 * L + j] = j < 23 ? 1 : 0;
          keyMask[2 * L + j] = j >= 11 && j !== 30 ? 1 : 0;
          keyMask[3 * L + j] = 0;
        }
        for (const maskDtype of ['u32', 'i32'] as const) {
          const c: Case = { name: 'mask', B, L, H: 2, D, keyMask };
          const { q, k, v, w } = inputs(c, 77);
          const got = await runGpu(gpu(), c, q, k, v, w, maskDtype);
          const ref = attentionRef(q, k, v, c);
          const grads = attentionBackwardRef(q, k, v, w, c);
          for (const xs of [got.out, got.dq, got.dk, got.dv]) expectFinite(xs);
          expect(maxRelError(got.out, ref.out)).toBeLessThan(1e-4);
          expect(gradError(got.dq, grads.dq)).toBeLessThan(1e-4);
          expect(gradError(got.dk, grads.dk)).toBeLessThan(1e-4);
          expect(gradError(got.dv, grads.dv)).toBeLessThan(1e-4);
          const C = c.H * c.D;
          const rowSlice = (xs: Float32Array, b: number, i: number) => xs.subarray((b * L + i) * C, (b * L + i + 1) * C);
          const emptyRows = [...Array.from({ length: 11 }, (_, i) => [2, i]), ...Array.from({ length: L }, (_, i) => [3, i])];
          for (const [b, i] of emptyRows) {
            expect(rowSlice(got.out, b, i).every((x) => x === 0)).toBe(true);
            expect(rowSlice(got.dq, b, i).every((x) => x === 0)).toBe(true);
          }
          // Masked keys take no gradient.
          for (const [b, j] of [[1, 30], [2, 5], [2, 30], [3, 0]]) {
            expect(rowSlice(got.dk, b, j).every((x) => x === 0)).toBe(true);
            expect(rowSlice(got.dv, b, j).every((x) => x === 0)).toBe(true);
          }
        }
      });
    }

    it('computes gradients only for the inputs that require them', async () => {
      const g = gpu();
      const c = { B: 2, L: 21, H: 2, D: 8 };
      const { q, k, v, w } = inputs({ ...c, name: 'partial' }, 31);
      const shape = [c.B, c.L, c.H * c.D];
      const Q = tensorFrom(g, q, shape).keep();
      const K = tensorFrom(g, k, shape).requireGrad().keep();
      const V = tensorFrom(g, v, shape).keep();
      tidy(g, () => backward(attention(Q, K, V, { heads: c.H }), tensorFrom(g, w, shape)));
      expect(Q.grad).toBeNull();
      expect(V.grad).toBeNull();
      expect(maxRelError(await K.grad!.readF32(), attentionBackwardRef(q, k, v, w, c).dk)).toBeLessThan(1e-4);
      for (const t of [Q, K, V]) t.dispose();
    });

    it('forward matches the reference at L=1024', async () => {
      const g = gpu();
      const c = { B: 1, L: 1024, H: 1, D: 16 };
      const { q, k, v } = inputs({ ...c, name: 'long' }, 5);
      const shape = [c.B, c.L, c.H * c.D];
      const got = await tidy(g, () => {
        const out = attention(tensorFrom(g, q, shape), tensorFrom(g, k, shape), tensorFrom(g, v, shape), { heads: c.H });
        return out.readF32();
      });
      expect(maxRelError(got, attentionRef(q, k, v, c).out)).toBeLessThan(1e-4);
    });

    for (const D of [25, 24]) {
      it(`is deterministic: two runs give identical bits (D=${D})`, async () => {
        const c: Case = { name: 'det', B: 2, L: 70, H: 2, D };
        const { q, k, v, w } = inputs(c, 9);
        const a = await runGpu(gpu(), c, q, k, v, w);
        const b = await runGpu(gpu(), c, q, k, v, w);
        for (const key of ['out', 'dq', 'dk', 'dv'] as const) expect(a[key]).toEqual(b[key]);
      });
    }

    it('rejects bad inputs before any dispatch', () => {
      const g = gpu();
      const t = (shape: number[], dtype: 'f32' | 'u32' = 'f32') =>
        tensorFrom(g, new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, dtype);
      tidy(g, () => {
        const before = g.dispatchCount;
        const code = (fn: () => unknown) => {
          try {
            fn();
          } catch (err) {
            expect(err).toBeInstanceOf(PantherError);
            return { code: (err as PantherError).code, message: (err as PantherError).message };
          }
          throw new Error('expected a PantherError');
        };
        const x129 = t([1, 4, 129]);
        expect(code(() => attention(x129, x129, x129, { heads: 1 }))).toMatchObject({ code: 'E_LIMIT', message: expect.stringMatching(/D=129/) });
        const x512 = t([1, 4, 512]);
        expect(code(() => attention(x512, x512, x512, { heads: 2 }))).toMatchObject({ code: 'E_LIMIT', message: expect.stringMatching(/D=256/) });
        const x30 = t([2, 5, 30]);
        expect(code(() => attention(x30, x30, x30, { heads: 4 }))).toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/not divisible/) });
        const other = t([2, 6, 30]);
        expect(code(() => attention(x30, other, x30, { heads: 2 })).code).toBe('E_SHAPE');
        expect(code(() => attention(x30, x30, other, { heads: 2 })).code).toBe('E_SHAPE');
        expect(code(() => attention(t([10, 30]), t([10, 30]), t([10, 30]), { heads: 2 })).code).toBe('E_SHAPE');
        expect(code(() => attention(x30, x30, x30, { heads: 2, keyMask: t([2, 4], 'u32') })).code).toBe('E_SHAPE');
        expect(code(() => attention(x30, x30, x30, { heads: 2, keyMask: t([2, 5]) })).code).toBe('E_DTYPE');
        expect(code(() => attention(x30, x30, x30, { heads: 0 })).code).toBe('E_ARGUMENT');
        const empty = t([2, 0, 30]);
        expect(code(() => attention(empty, empty, empty, { heads: 2 })).code).toBe('E_SHAPE');
        expect(g.dispatchCount).toBe(before);
      });
    });
  });
}

describe('attention reference', () => {
  it('reference backward matches finite differences of the reference forward', () => {
    const keyMask = new Uint32Array(2 * 9).fill(1);
    keyMask[2] = 0;
    keyMask[9 + 0] = 0;
    keyMask[9 + 1] = 0;
    for (const c of [
      { B: 2, L: 9, H: 2, D: 5 },
      { B: 2, L: 9, H: 1, D: 7, keyMask, scale: 0.9 },
    ] as AttentionRefShape[]) {
      const n = c.B * c.L * c.H * c.D;
      const q = randn(n, 21);
      const k = randn(n, 22);
      const v = randn(n, 23);
      const w = randn(n, 24);
      const grads = attentionBackwardRef(q, k, v, w, c);
      const pick = Array.from({ length: 60 }, (_, i) => (i * 7919) % n);
      const check = (analytic: Float64Array, fd: Float64Array) =>
        maxRelError(pick.map((i) => analytic[i]), pick.map((i) => fd[i]));
      const fdq = finiteDiff((x) => dot(w, attentionRef(x, k, v, c).out), q, 1e-6, pick);
      const fdk = finiteDiff((x) => dot(w, attentionRef(q, x, v, c).out), k, 1e-6, pick);
      const fdv = finiteDiff((x) => dot(w, attentionRef(q, k, x, c).out), v, 1e-6, pick);
      expect(check(grads.dq, fdq)).toBeLessThan(1e-6);
      expect(check(grads.dk, fdk)).toBeLessThan(1e-6);
      expect(check(grads.dv, fdv)).toBeLessThan(1e-6);
    }
  });
});
