import { describe, expect, it } from 'vitest';
import { PantherError } from '../../src/errors.js';
import { dilatedConvBackwardRef, dilatedConvRef, type ConvRefDims } from '../../src/reference/conv.js';
import { backward } from '../../src/tensor/autograd.js';
import { dilatedConv } from '../../src/tensor/ops/conv.js';
import { tensorFrom } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { dot, finiteDiff, maxRelError, randn } from '../support/numeric.js';

interface ConvCase {
  B: number;
  L: number;
  Cin: number;
  Cout: number;
  K: number;
  dil: number;
  bias: boolean;
}

const cases: ConvCase[] = [
  { B: 2, L: 13, Cin: 3, Cout: 5, K: 2, dil: 1, bias: true },
  { B: 1, L: 50, Cin: 24, Cout: 33, K: 3, dil: 2, bias: false },
  { B: 2, L: 13, Cin: 33, Cout: 24, K: 5, dil: 4, bias: true },
  // receptive field 6 * 16 + 1 = 97 > L
  { B: 1, L: 50, Cin: 3, Cout: 24, K: 7, dil: 16, bias: true },
  // every tap but the last looks before t = 0
  { B: 3, L: 13, Cin: 24, Cout: 3, K: 3, dil: 16, bias: false },
  { B: 2, L: 1, Cin: 33, Cout: 33, K: 5, dil: 1, bias: true },
  // 300 and 520 rows: dW is reduced over 2 and 3 chunks
  { B: 6, L: 50, Cin: 24, Cout: 24, K: 7, dil: 2, bias: true },
  { B: 4, L: 130, Cin: 33, Cout: 3, K: 2, dil: 4, bias: false },
  { B: 3, L: 50, Cin: 3, Cout: 3, K: 3, dil: 1, bias: true },
];

function dimsOf(c: ConvCase, depthwise: boolean): ConvRefDims {
  return { B: c.B, L: c.L, Cin: c.Cin, Cout: depthwise ? c.Cin : c.Cout, K: c.K, dilation: c.dil, depthwise };
}

function weightShape(d: ConvRefDims): number[] {
  return d.depthwise ? [d.K, d.Cin] : [d.K, d.Cin, d.Cout];
}

const gpu = useGpu();

for (const depthwise of [false, true]) {
  describe(`dilatedConv (${depthwise ? 'depthwise' : 'full'})`, () => {
    for (const c of cases) {
      const d = dimsOf(c, depthwise);
      const label = `B${d.B} L${d.L} Cin${d.Cin} Cout${d.Cout} K${d.K} dil${d.dilation}${c.bias ? ' bias' : ''}`;
      it(`forward and backward match the reference: ${label}`, async () => {
        const g = gpu();
        const seed = d.B * 1000 + d.L * 10 + d.K;
        const x = randn(d.B * d.L * d.Cin, seed);
        const w = randn(weightShape(d).reduce((a, b) => a * b, 1), seed + 1, 0.5);
        const bias = c.bias ? randn(d.Cout, seed + 2) : null;
        const cot = randn(d.B * d.L * d.Cout, seed + 3);
        const X = tensorFrom(g, x, [d.B, d.L, d.Cin]).requireGrad();
        const W = tensorFrom(g, w, weightShape(d)).requireGrad();
        const Bias = bias ? tensorFrom(g, bias, [d.Cout]).requireGrad() : null;
        const Y = dilatedConv(X, W, Bias, { kernelSize: d.K, dilation: d.dilation, depthwise });
        expect(Y.shape).toEqual([d.B, d.L, d.Cout]);
        expect(maxRelError(await Y.readF32(), dilatedConvRef(x, w, bias, d))).toBeLessThan(1e-4);

        backward(Y, tensorFrom(g, cot, Y.shape));
        const ref = dilatedConvBackwardRef(x, w, cot, d);
        expect(X.grad!.shape).toEqual(X.shape);
        expect(W.grad!.shape).toEqual(W.shape);
        expect(maxRelError(await X.grad!.readF32(), ref.dx)).toBeLessThan(1e-4);
        expect(maxRelError(await W.grad!.readF32(), ref.dw)).toBeLessThan(1e-4);
        if (Bias) expect(maxRelError(await Bias.grad!.readF32(), ref.dbias)).toBeLessThan(1e-4);
        for (const t of [X, W, Bias, Y]) t?.dispose();
      });
    }

    it('reference backward matches finite differences of the reference forward', () => {
      for (const c of [cases[0], cases[2], cases[3]]) {
        const d = dimsOf(c, depthwise);
        const x = randn(d.B * d.L * d.Cin, 21);
        const w = randn(weightShape(d).reduce((a, b) => a * b, 1), 22, 0.5);
        const bias = randn(d.Cout, 23);
        const cot = randn(d.B * d.L * d.Cout, 24);
        const ref = dilatedConvBackwardRef(x, w, cot, d);
        const pick = (n: number) => Array.from({ length: Math.min(n, 60) }, (_, i) => (i * 7919) % n);
        const ix = pick(x.length);
        const iw = pick(w.length);
        const fdx = finiteDiff((v) => dot(cot, dilatedConvRef(v, w, bias, d)), x, 1e-6, ix);
        const fdw = finiteDiff((v) => dot(cot, dilatedConvRef(x, v, bias, d)), w, 1e-6, iw);
        const fdb = finiteDiff((v) => dot(cot, dilatedConvRef(x, w, v, d)), bias, 1e-6);
        expect(maxRelError(ix.map((i) => ref.dx[i]), ix.map((i) => fdx[i]))).toBeLessThan(1e-6);
        expect(maxRelError(iw.map((i) => ref.dw[i]), iw.map((i) => fdw[i]))).toBeLessThan(1e-6);
        expect(maxRelError(ref.dbias, fdb)).toBeLessThan(1e-6);
      }
    });
  });
}

describe('dilatedConv determinism', () => {
  it('repeats forward and backward bit for bit (multi-chunk dW)', async () => {
    const g = gpu();
    const d = dimsOf(cases[7], false);
    const x = randn(d.B * d.L * d.Cin, 51);
    const w = randn(d.K * d.Cin * d.Cout, 52);
    const cot = randn(d.B * d.L * d.Cout, 53);
    const once = async () => {
      const X = tensorFrom(g, x, [d.B, d.L, d.Cin]).requireGrad();
      const W = tensorFrom(g, w, weightShape(d)).requireGrad();
      const Y = dilatedConv(X, W, null, { kernelSize: d.K, dilation: d.dilation, depthwise: false });
      backward(Y, tensorFrom(g, cot, Y.shape));
      const result = [await Y.readF32(), await X.grad!.readF32(), await W.grad!.readF32()];
      for (const t of [X, W, Y]) t.dispose();
      return result;
    };
    const [a, b] = [await once(), await once()];
    for (let i = 0; i < a.length; i++) expect(Buffer.from(b[i].buffer).equals(Buffer.from(a[i].buffer))).toBe(true);
  });
});

describe('dilatedConv input checks', () => {
  it('rejects unsupported kernel sizes, dilations and mismatched shapes before any dispatch', () => {
    const g = gpu();
    const X = tensorFrom(g, randn(2 * 9 * 4, 1), [2, 9, 4]);
    const W3 = tensorFrom(g, randn(3 * 4 * 5, 2), [3, 4, 5]);
    const W8 = tensorFrom(g, randn(8 * 4 * 5, 3), [8, 4, 5]);
    const Wdw = tensorFrom(g, randn(3 * 4, 4), [3, 4]);
    const b5 = tensorFrom(g, randn(5, 5), [5]);
    const before = g.dispatchCount;
    const expectError = (f: () => unknown, code: string, message: RegExp) => {
      let caught: unknown;
      try {
        f();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(PantherError);
      expect((caught as PantherError).code).toBe(code);
      expect((caught as PantherError).message).toMatch(message);
    };
    expectError(() => dilatedConv(X, W8, null, { kernelSize: 8, dilation: 1, depthwise: false }), 'E_LIMIT', /kernelSize 8/);
    expectError(() => dilatedConv(X, W3, null, { kernelSize: 3, dilation: 17, depthwise: false }), 'E_LIMIT', /dilation 17/);
    expectError(() => dilatedConv(X, W3, null, { kernelSize: 2, dilation: 1, depthwise: false }), 'E_SHAPE', /weight must be \[K=2, Cin=4, Cout\]/);
    expectError(() => dilatedConv(X, W3, b5, { kernelSize: 3, dilation: 1, depthwise: true }), 'E_SHAPE', /depthwise weight/);
    expectError(() => dilatedConv(X, Wdw, b5, { kernelSize: 3, dilation: 1, depthwise: true }), 'E_SHAPE', /bias must be \[Cout=4\]/);
    expectError(() => dilatedConv(W3, W3, null, { kernelSize: 3, dilation: 1, depthwise: false }), 'E_SHAPE', /weight must be/);
    expectError(() => dilatedConv(Wdw, Wdw, null, { kernelSize: 3, dilation: 1, depthwise: true }), 'E_SHAPE', /x must be \[B, L, Cin\]/);
    expect(g.dispatchCount).toBe(before);
    for (const t of [X, W3, W8, Wdw, b5]) t.dispose();
  });
});
