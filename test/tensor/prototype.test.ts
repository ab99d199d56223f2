import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { prototypeMatchBackwardRef, prototypeMatchRef, type PrototypeRefDims } from '../../src/reference/prototype.js';
import { backward } from '../../src/tensor/autograd.js';
import { prototypeMatch } from '../../src/tensor/ops/prototype.js';
import { tensorFrom, type Tensor } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn } from '../support/numeric.js';

interface ProtoCase {
  /** x's shape; the last dimension is D. */
  xShape: number[];
  K: number;
  temperature: number;
  similarity?: 'cosine' | 'dot';
  heads?: number;
  /** Separate value prototypes (cross-attention to the prototypes). */
  values?: boolean;
}

const cases: ProtoCase[] = [
  { xShape: [1, 16], K: 1, temperature: 1 },
  { xShape: [37, 25], K: 7, temperature: 0.1 },
  { xShape: [3, 100, 50], K: 64, temperature: 0.1 },
  { xShape: [37, 1], K: 2, temperature: 1 },
  { xShape: [300, 16], K: 2, temperature: 0.1 },
  { xShape: [1, 50], K: 7, temperature: 0.1 },
  { xShape: [37, 16], K: 64, temperature: 1 },
  { xShape: [37, 25], K: 7, temperature: 5, similarity: 'dot' },
  { xShape: [3, 100, 50], K: 64, temperature: Math.sqrt(50), similarity: 'dot' },
  { xShape: [37, 1], K: 2, temperature: 1, similarity: 'dot' },
  { xShape: [37, 16], K: 5, temperature: 0.1, values: true },
  { xShape: [37, 25], K: 7, temperature: 0.1, heads: 5 },
  { xShape: [37, 24], K: 7, temperature: 2, similarity: 'dot', heads: 2, values: true },
  { xShape: [3, 100, 64], K: 64, temperature: 4, similarity: 'dot', heads: 4, values: true },
  { xShape: [1, 12], K: 1, temperature: 1, heads: 3, values: true },
];

type Cotangent = 'out' | 'weights' | 'both';

function dimsOf(c: ProtoCase): PrototypeRefDims {
  const D = c.xShape[c.xShape.length - 1];
  return { N: c.xShape.reduce((a, b) => a * b, 1) / D, D, K: c.K, temperature: c.temperature, similarity: c.similarity, heads: c.heads };
}

/** Random rows (of five different norms), prototypes and (with `values`) value prototypes. */
function inputs(d: PrototypeRefDims, seed: number, values = false): { x: Float32Array; P: Float32Array; V: Float32Array | undefined } {
  const x = randn(d.N * d.D, seed);
  for (let n = 0; n < d.N; n++) for (let i = 0; i < d.D; i++) x[n * d.D + i] *= 0.5 + (n % 5) * 0.5;
  const P = randn(d.K * d.D, seed + 1, 0.7);
  return { x, P, V: values ? randn(d.K * d.D, seed + 2) : undefined };
}

function weightsShape(d: PrototypeRefDims): number[] {
  return (d.heads ?? 1) === 1 ? [d.N, d.K] : [d.N, d.heads!, d.K];
}

/**
 * maxRelError, except where the reference is zero up to rounding (D = 1: the cosine is a
 * constant +-1, so dx = 0, and dP = 0 without a cotangent on out): then the largest
 * magnitude of `actual` itself.
 */
function gradError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  if (scale > 1e-9) return maxRelError(actual, expected);
  let size = 0;
  for (let i = 0; i < actual.length; i++) size = Math.max(size, Math.abs(actual[i]));
  return size;
}

const gpu = useGpu();

describe('prototypeMatch', () => {
  for (const c of cases) {
    const d = dimsOf(c);
    const label = `x [${c.xShape}] K${c.K} T${c.temperature.toPrecision(3)} ${c.similarity ?? 'cosine'} heads ${c.heads ?? 1}${c.values ? ' values' : ''}`;
    const H = c.heads ?? 1;

    it(`forward matches the reference: ${label}`, async () => {
      const g = gpu();
      const { x, P, V } = inputs(d, d.N + d.K, c.values);
      const X = tensorFrom(g, x, c.xShape);
      const Pt = tensorFrom(g, P, [d.K, d.D]);
      const Vt = V ? tensorFrom(g, V, [d.K, d.D]) : undefined;
      const { out, weights } = prototypeMatch(X, Pt, { temperature: c.temperature, similarity: c.similarity, heads: c.heads, values: Vt });
      expect(out.shape).toEqual(c.xShape);
      expect(weights.shape).toEqual(weightsShape(d));
      const ref = prototypeMatchRef(x, P, d, V);
      expect(maxRelError(await out.readF32(), ref.out)).toBeLessThan(1e-4);
      const w = await weights.readF32();
      expect(maxRelError(w, ref.weights)).toBeLessThan(1e-4);
      if (d.K === 1) expect(Array.from(w)).toEqual(new Array(d.N * H).fill(1));
      for (const t of [X, Pt, Vt, out, weights]) t?.dispose();
    });

    for (const cot of ['out', 'weights', 'both'] as Cotangent[]) {
      it(`GPU backward matches the reference, cotangent on ${cot}: ${label}`, async () => {
        const g = gpu();
        const { x, P, V } = inputs(d, d.N + d.K, c.values);
        const gOut = cot === 'weights' ? null : randn(d.N * d.D, 7);
        const gW = cot === 'out' ? null : randn(d.N * H * d.K, 8);
        const X = tensorFrom(g, x, c.xShape).requireGrad();
        const Pt = tensorFrom(g, P, [d.K, d.D]).requireGrad();
        const Vt = V ? tensorFrom(g, V, [d.K, d.D]).requireGrad() : undefined;
        const { out, weights } = prototypeMatch(X, Pt, { temperature: c.temperature, similarity: c.similarity, heads: c.heads, values: Vt });
        // The tape walks back from one tensor; seed the other output's gradient directly.
        const owned: Tensor[] = [X, Pt, out, weights, ...(Vt ? [Vt] : [])];
        if (gOut && gW) {
          weights.grad = tensorFrom(g, gW, weights.shape);
          backward(out, tensorFrom(g, gOut, out.shape));
        } else if (gOut) {
          backward(out, tensorFrom(g, gOut, out.shape));
        } else {
          backward(weights, tensorFrom(g, gW!, weights.shape));
        }
        const ref = prototypeMatchBackwardRef(x, P, gOut, gW, d, V);
        expect(gradError(await X.grad!.readF32(), ref.dx)).toBeLessThan(1e-4);
        expect(gradError(await Pt.grad!.readF32(), ref.dP)).toBeLessThan(1e-4);
        if (Vt) {
          // Only the mixture reads the values: without a cotangent on it they get zeros.
          if (gOut) expect(gradError(await Vt.grad!.readF32(), ref.dV!)).toBeLessThan(1e-4);
          else expect(Vt.grad === null || (await Vt.grad.readF32()).every((v) => v === 0)).toBe(true);
        }
        expect(X.grad!.shape).toEqual(c.xShape);
        expect(Pt.grad!.shape).toEqual([d.K, d.D]);
        for (const t of owned) t.dispose();
      });
    }
  }

  it('reference backward matches finite differences of the reference forward', () => {
    const small: ProtoCase[] = [
      { xShape: [5, 4], K: 3, temperature: 0.1 },
      { xShape: [5, 4], K: 3, temperature: 2, similarity: 'dot' },
      { xShape: [5, 6], K: 3, temperature: 0.3, heads: 3 },
      { xShape: [5, 6], K: 4, temperature: 1, heads: 2, values: true },
      { xShape: [5, 8], K: 4, temperature: 2, similarity: 'dot', heads: 2, values: true },
    ];
    for (const c of [cases[1], cases[3], cases[5], cases[7], cases[10], cases[12], ...small]) {
      const d = dimsOf(c);
      const { x, P, V } = inputs(d, 31 + d.K, c.values);
      const gOut = randn(d.N * d.D, 32);
      const gW = randn(d.N * (c.heads ?? 1) * d.K, 33);
      const loss = (xv: ArrayLike<number>, Pv: ArrayLike<number>, Vv: ArrayLike<number> | undefined = V) => {
        const r = prototypeMatchRef(xv, Pv, d, Vv);
        return dot(gOut, r.out) + dot(gW, r.weights);
      };
      const ref = prototypeMatchBackwardRef(x, P, gOut, gW, d, V);
      const pick = (n: number) => Array.from({ length: Math.min(n, 50) }, (_, i) => (i * 7919) % n);
      const ix = pick(x.length);
      const ip = pick(P.length);
      const fdx = finiteDiff((v) => loss(v, P), x, 1e-6, ix);
      const fdp = finiteDiff((v) => loss(x, v), P, 1e-6, ip);
      expect(gradError(ix.map((i) => ref.dx[i]), ix.map((i) => fdx[i]))).toBeLessThan(1e-6);
      expect(gradError(ip.map((i) => ref.dP[i]), ip.map((i) => fdp[i]))).toBeLessThan(1e-6);
      if (V) {
        const fdv = finiteDiff((v) => loss(x, P, v), V, 1e-6, ip);
        expect(gradError(ip.map((i) => ref.dV![i]), ip.map((i) => fdv[i]))).toBeLessThan(1e-6);
      }
    }
  });

  it('dot-product scores ignore the norms: scaling a row sharpens its weights, unlike cosines', async () => {
    const g = gpu();
    const d: PrototypeRefDims = { N: 2, D: 8, K: 5, temperature: 1, similarity: 'dot' };
    const row = randn(d.D, 71);
    const x = new Float32Array(2 * d.D);
    for (let i = 0; i < d.D; i++) [x[i], x[d.D + i]] = [row[i], 3 * row[i]];
    const P = randn(d.K * d.D, 72);
    const weightsOf = async (similarity: 'cosine' | 'dot') => {
      const X = tensorFrom(g, x, [2, d.D]);
      const Pt = tensorFrom(g, P, [d.K, d.D]);
      const { out, weights } = prototypeMatch(X, Pt, { temperature: 1, similarity });
      const w = await weights.readF32();
      for (const t of [X, Pt, out, weights]) t.dispose();
      return [Array.from(w.slice(0, d.K)), Array.from(w.slice(d.K))];
    };
    const [cos1, cos3] = await weightsOf('cosine');
    expect(maxRelError(cos3, cos1)).toBeLessThan(1e-5);
    const [dot1, dot3] = await weightsOf('dot');
    expect(Math.max(...dot3)).toBeGreaterThan(Math.max(...dot1) + 0.01);
    expect(maxRelError([...dot1, ...dot3], prototypeMatchRef(x, P, d).weights)).toBeLessThan(1e-4);
  });

  it('repeats forward and backward bit for bit (multi-chunk dP and dV)', async () => {
    const g = gpu();
    for (const c of [cases[2], cases[13]]) {
      const d = dimsOf(c);
      const { x, P, V } = inputs(d, 61, c.values);
      const gOut = randn(d.N * d.D, 62);
      const once = async () => {
        const X = tensorFrom(g, x, [d.N, d.D]).requireGrad();
        const Pt = tensorFrom(g, P, [d.K, d.D]).requireGrad();
        const Vt = V ? tensorFrom(g, V, [d.K, d.D]).requireGrad() : undefined;
        const { out, weights } = prototypeMatch(X, Pt, { temperature: d.temperature, similarity: c.similarity, heads: c.heads, values: Vt });
        backward(out, tensorFrom(g, gOut, out.shape));
        const result = [await out.readF32(), await weights.readF32(), await X.grad!.readF32(), await Pt.grad!.readF32()];
        if (Vt) result.push(await Vt.grad!.readF32());
        for (const t of [X, Pt, Vt, out, weights]) t?.dispose();
        return result;
      };
      const [a, b] = [await once(), await once()];
      expect(a.length).toBe(V ? 5 : 4);
      for (let i = 0; i < a.length; i++) expect(Buffer.from(b[i].buffer).equals(Buffer.from(a[i].buffer))).toBe(true);
    }
  });

  it('values equal to the keys, passed apart, split the shared gradient into its key and value parts', async () => {
    const g = gpu();
    const d: PrototypeRefDims = { N: 300, D: 24, K: 6, temperature: 0.2, heads: 2 };
    const { x, P } = inputs(d, 81);
    const gOut = randn(d.N * d.D, 82);
    const run = async (apart: boolean) => {
      const X = tensorFrom(g, x, [d.N, d.D]).requireGrad();
      const Pt = tensorFrom(g, P, [d.K, d.D]).requireGrad();
      const Vt = apart ? tensorFrom(g, P, [d.K, d.D]).requireGrad() : Pt;
      const { out, weights } = prototypeMatch(X, Pt, { temperature: d.temperature, heads: 2, values: Vt });
      backward(out, tensorFrom(g, gOut, out.shape));
      const r = { out: await out.readF32(), dx: await X.grad!.readF32(), dP: await Pt.grad!.readF32(), dV: apart ? await Vt.grad!.readF32() : null };
      for (const t of new Set([X, Pt, Vt, out, weights])) t.dispose();
      return r;
    };
    const shared = await run(false);
    const apart = await run(true);
    expect(Array.from(apart.out)).toEqual(Array.from(shared.out));
    expect(Array.from(apart.dx)).toEqual(Array.from(shared.dx));
    // The value part alone is not the whole gradient: the keys' part is not zero.
    expect(maxRelError(apart.dP, shared.dP)).toBeGreaterThan(1e-2);
    expect(maxRelError(apart.dP.map((v, i) => v + apart.dV![i]), shared.dP)).toBeLessThan(1e-5);
  });

  it('zero and tiny rows and prototypes: clamped norms, uniform weights, finite gradients', async () => {
    const g = gpu();
    const d: PrototypeRefDims = { N: 6, D: 25, K: 7, temperature: 0.1 };
    const { x, P } = inputs(d, 41);
    const [zeroRow, tinyRow, zeroProto, tinyProto] = [2, 4, 3, 5];
    const rescale = (a: Float32Array, row: number, norm: number) => {
      let ss = 0;
      for (let i = 0; i < d.D; i++) ss += a[row * d.D + i] ** 2;
      for (let i = 0; i < d.D; i++) a[row * d.D + i] *= norm / Math.sqrt(ss);
    };
    // Norms below the 1e-6 clamp: the tiny ones take the clamped branch without being zero.
    rescale(x, zeroRow, 0);
    rescale(x, tinyRow, 5e-7);
    rescale(P, zeroProto, 0);
    rescale(P, tinyProto, 4e-7);
    const gOut = randn(d.N * d.D, 42);
    const gW = randn(d.N * d.K, 43);
    const X = tensorFrom(g, x, [d.N, d.D]).requireGrad();
    const Pt = tensorFrom(g, P, [d.K, d.D]).requireGrad();
    const { out, weights } = prototypeMatch(X, Pt, { temperature: d.temperature });
    const ref = prototypeMatchRef(x, P, d);
    const w = await weights.readF32();
    const o = await out.readF32();
    expect(o.every(Number.isFinite) && w.every(Number.isFinite)).toBe(true);
    for (let k = 0; k < d.K; k++) expect(w[zeroRow * d.K + k]).toBeCloseTo(1 / d.K, 6);
    expect(maxRelError(o, ref.out)).toBeLessThan(1e-4);
    expect(maxRelError(w, ref.weights)).toBeLessThan(1e-4);

    weights.grad = tensorFrom(g, gW, weights.shape);
    backward(out, tensorFrom(g, gOut, out.shape));
    const gradRef = prototypeMatchBackwardRef(x, P, gOut, gW, d);
    const dx = await X.grad!.readF32();
    const dP = await Pt.grad!.readF32();
    expect(dx.every(Number.isFinite) && dP.every(Number.isFinite)).toBe(true);
    // A clamped norm scales its row's gradient by up to 1/eps: compare row by row, each on
    // its own scale.
    const rowError = (a: ArrayLike<number>, e: ArrayLike<number>, rows: number) =>
      Math.max(...Array.from({ length: rows }, (_, r) =>
        maxRelError(Array.from(a).slice(r * d.D, (r + 1) * d.D), Array.from(e).slice(r * d.D, (r + 1) * d.D))));
    expect(rowError(dx, gradRef.dx, d.N)).toBeLessThan(1e-4);
    expect(rowError(dP, gradRef.dP, d.K)).toBeLessThan(1e-4);

    // Inside the clamp the norm is a constant: finite differences with a step that stays there.
    const loss = (xv: ArrayLike<number>, Pv: ArrayLike<number>) => {
      const r = prototypeMatchRef(xv, Pv, d);
      return dot(gOut, r.out) + dot(gW, r.weights);
    };
    for (const [row, values, grad, f] of [
      [zeroRow, x, gradRef.dx, (v: Float64Array) => loss(v, P)],
      [tinyRow, x, gradRef.dx, (v: Float64Array) => loss(v, P)],
      [zeroProto, P, gradRef.dP, (v: Float64Array) => loss(x, v)],
      [tinyProto, P, gradRef.dP, (v: Float64Array) => loss(x, v)],
    ] as const) {
      const idx = Array.from({ length: d.D }, (_, i) => row * d.D + i);
      const fd = finiteDiff(f, values, 1e-10, idx);
      expect(maxRelError(idx.map((i) => grad[i]), idx.map((i) => fd[i]))).toBeLessThan(1e-5);
    }
    for (const t of [X, Pt, out, weights]) t.dispose();
  });

  it('rejects bad temperatures, shapes and oversized weights before any dispatch', () => {
    const g = gpu();
    const X = tensorFrom(g, randn(4 * 8, 1), [4, 8]);
    const P = tensorFrom(g, randn(3 * 8, 2), [3, 8]);
    const P6 = tensorFrom(g, randn(3 * 6, 3), [3, 6]);
    const P3d = tensorFrom(g, randn(3 * 8, 4), [1, 3, 8]);
    const P0 = tensorFrom(g, [], [0, 8]);
    // N x K weights past the storage binding; 3 N x K of backward scratch past it only with grad.
    const K = 1024;
    const nOver = Math.ceil(g.maxStorageBinding / (4 * K)) + 1;
    const nOverBwd = Math.ceil(g.maxStorageBinding / (3 * 4 * K)) + 1;
    const Xover = tensorFrom(g, new Float32Array(nOver), [nOver, 1]);
    const XoverBwd = tensorFrom(g, new Float32Array(nOverBwd), [nOverBwd, 1]);
    const Pwide = tensorFrom(g, randn(K, 5), [K, 1]).requireGrad();
    const before = g.dispatchCount;
    const codeOf = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(PantherError);
        return (e as PantherError).code;
      }
      return undefined;
    };
    expect(codeOf(() => prototypeMatch(X, P, { temperature: 0 }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: -1 }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: Number.NaN }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: 1e-40 }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: 1, similarity: 'l2' as 'dot' }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: 1, heads: 3 }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: 1, heads: 0 }))).toBe('E_ARGUMENT');
    expect(codeOf(() => prototypeMatch(X, P, { temperature: 1, values: P6 }))).toBe('E_SHAPE');
    expect(() => prototypeMatch(X, P, { temperature: 1, heads: 3 })).toThrowError(/divides D = 8/);
    expect(codeOf(() => prototypeMatch(X, P6, { temperature: 1 }))).toBe('E_SHAPE');
    expect(codeOf(() => prototypeMatch(X, P3d, { temperature: 1 }))).toBe('E_SHAPE');
    expect(codeOf(() => prototypeMatch(X, P0, { temperature: 1 }))).toBe('E_SHAPE');
    expect(codeOf(() => prototypeMatch(Xover, Pwide, { temperature: 1 }))).toBe('E_LIMIT');
    expect(codeOf(() => prototypeMatch(XoverBwd, Pwide, { temperature: 1 }))).toBe('E_LIMIT');
    expect(() => prototypeMatch(X, P6, { temperature: 1 })).toThrowError(/must end in D = 6/);
    expect(g.dispatchCount).toBe(before);
    // Without a gradient the same weights fit.
    Pwide.requireGrad(false);
    const { out, weights } = prototypeMatch(XoverBwd, Pwide, { temperature: 1 });
    expect(g.dispatchCount).toBeGreaterThan(before);
    for (const t of [X, P, P6, P3d, P0, Xover, XoverBwd, Pwide, out, weights]) t.dispose();
  });
});
