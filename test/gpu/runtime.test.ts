import { describe, expect, it } from 'vitest';
import { sizeClass } from '../../src/gpu/buffers.js';
import { Gpu, grid1d } from '../../src/gpu/runtime.js';
import { PantherError } from '../../src/errors.js';
import { backward, zeroGrad } from '../../src/tensor/autograd.js';
import { add, mul, reshape, scale } from '../../src/tensor/ops/elementwise.js';
import { matmul } from '../../src/tensor/ops/matmul.js';
import { empty, tensorFrom, tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';

describe('buffer size classes', () => {
  it('rounds up by at most 25% and never below the request', () => {
    for (const n of [1, 255, 256, 257, 1000, 4096, 5000, 123457, 1 << 24]) {
      const s = sizeClass(n);
      expect(s).toBeGreaterThanOrEqual(n);
      if (n > 256) expect(s / n).toBeLessThanOrEqual(1.25 + 1e-9);
    }
  });

  it('folds big 1-D grids into y', () => {
    expect(grid1d(100, 64)).toEqual([2, 1]);
    const [x, y] = grid1d(64 * 70000, 64);
    expect(x).toBeLessThanOrEqual(65535);
    expect(x * y).toBeGreaterThanOrEqual(70000);
  });
});

describe('gpu runtime', () => {
  const gpu = useGpu();

  it('describes the adapter', () => {
    const g = gpu();
    expect(g.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(typeof g.description.isSoftware).toBe('boolean');
  });

  it('reuses buffers across steps: a repeated step creates none', async () => {
    const g = gpu();
    const W = tensorFrom(g, new Float32Array(64 * 32).fill(0.01), [64, 32]).requireGrad();
    const step = async () => {
      tidy(g, () => {
        const x = tensorFrom(g, new Float32Array(16 * 64).fill(1), [16, 64]);
        const y = matmul(x, W);
        backward(mul(y, y));
      });
      await W.grad!.read();
      zeroGrad([W]);
    };
    await step();
    const before = g.pool.stats();
    for (let i = 0; i < 3; i++) await step();
    const after = g.pool.stats();
    expect(after.created).toBe(before.created);
    expect(after.reused).toBeGreaterThan(before.reused);
  });

  it('tidy frees what it made and keeps what it returns', () => {
    const g = gpu();
    const a = tensorFrom(g, [1, 2, 3], [3]);
    let inner: ReturnType<typeof scale> | undefined;
    const out = tidy(g, () => {
      inner = scale(a, 2);
      return add(inner, a);
    });
    expect(inner!.isDisposed).toBe(true);
    expect(out.isDisposed).toBe(false);
    expect(a.isDisposed).toBe(false);
  });

  it('sums gradients of a tensor used twice', async () => {
    const g = gpu();
    const x = tensorFrom(g, [1, 2, 3], [3]).requireGrad();
    // d/dx sum(x*x + 3x) = 2x + 3
    const y = add(mul(x, x), scale(x, 3));
    backward(y);
    expect(Array.from(await x.grad!.read())).toEqual([5, 7, 9]);
  });

  it('hands a passed-through gradient over once, copies it for the next taker, and frees every intermediate', async () => {
    const g = gpu();
    const a = tensorFrom(g, [1, 2, 3], [3]).requireGrad();
    const b = tensorFrom(g, [4, 5, 6], [3]).requireGrad();
    const c = tensorFrom(g, [7, 8, 9], [3]).requireGrad();
    const live = g.pool.stats().live;
    // add passes its gradient to both inputs; scale by 1 passes it on again; add(c, c) sums.
    tidy(g, () => backward(add(add(a, scale(b, 1)), mul(add(c, c), tensorFrom(g, [1, 10, 100], [3]))), tensorFrom(g, [1, 2, 3], [3])));
    const [ga, gb, gc] = [a.grad!, b.grad!, c.grad!];
    expect(new Set([ga.buffer, gb.buffer, gc.buffer]).size).toBe(3);
    expect(Array.from(await ga.read())).toEqual([1, 2, 3]);
    expect(Array.from(await gb.read())).toEqual([1, 2, 3]);
    expect(Array.from(await gc.read())).toEqual([2, 40, 600]);
    // Each leaf owns its gradient: changing one leaves the others as they were.
    ga.write(new Float32Array([0, 0, 0]));
    expect(Array.from(await gb.read())).toEqual([1, 2, 3]);
    zeroGrad([a, b, c]);
    expect(g.pool.stats().live).toBe(live);
    // add(a, b): a takes the seed over, b gets the one copy, nothing else runs.
    const y = add(a, b);
    const seed = tensorFrom(g, [1, 1, 1], [3]);
    const before = g.dispatchCount;
    backward(y, seed);
    expect(g.dispatchCount - before).toBe(1);
    expect(a.grad!.buffer).toBe(seed.buffer);
    zeroGrad([a, b]);
    y.dispose();
  });

  it('reports each leaf once, as soon as its gradient is final, before the rest of backward', async () => {
    const g = gpu();
    const a = tensorFrom(g, [1, 2], [2]).requireGrad();
    const b = tensorFrom(g, [3, 4], [2]).requireGrad();
    const c = tensorFrom(g, [5, 6], [2]).requireGrad();
    const unused = tensorFrom(g, [7, 8], [2]).requireGrad();
    // a is read first and last; b and c only by the last ops: they are final before a.
    const h = mul(a, a);
    const y = add(mul(add(h, b), c), a);
    const seen: { leaf: string; grad: number[] | null }[] = [];
    const names = new Map([[a, 'a'], [b, 'b'], [c, 'c'], [unused, 'unused']]);
    const reads: Promise<void>[] = [];
    backward(y, undefined, (leaf) => {
      const entry = { leaf: names.get(leaf)!, grad: null as number[] | null };
      seen.push(entry);
      // Read right away: the value must already be the final one.
      reads.push(leaf.grad!.readF32().then((v) => { entry.grad = Array.from(v); }));
    });
    await Promise.all(reads);
    expect(seen.map((e) => e.leaf).sort()).toEqual(['a', 'b', 'c']);
    expect(seen[seen.length - 1].leaf).toBe('a');
    const byName = Object.fromEntries(seen.map((e) => [e.leaf, e.grad]));
    // y = (a^2 + b) c + a: dy/da = 2ac + 1, dy/db = c, dy/dc = a^2 + b.
    expect(byName.a).toEqual([11, 25]);
    expect(byName.b).toEqual([5, 6]);
    expect(byName.c).toEqual([4, 8]);
    expect(unused.grad).toBeNull();
  });

  it('refuses buffers over maxStorageBufferBindingSize before allocating', () => {
    const g = gpu();
    const n = Math.floor(g.maxStorageBinding / 4) + 1;
    expect(() => empty(g, [n])).toThrowError(PantherError);
    expect(() => empty(g, [n])).toThrowError(/maxStorageBufferBindingSize/);
  });

  it('throws a clear error when used after destroy', async () => {
    const g2 = await Gpu.create();
    g2.destroy();
    expect(() => g2.write(g2.pool.acquire(16), new Float32Array(4))).toThrow();
  });

  it('reports GPU time of a pass when the adapter has timestamps', async () => {
    const g = gpu();
    const a = tensorFrom(g, new Float32Array(256 * 256).fill(1), [256, 256]);
    const ms = await g.timePass(() => tidy(g, () => { matmul(a, a); }));
    if (g.hasTimestamps) expect(ms).toBeGreaterThan(0);
    else expect(ms).toBeNull();
  });
});

describe('views', () => {
  const gpu = useGpu();

  it('share the buffer, and return it to the pool only when base and views are all disposed', async () => {
    const g = gpu();
    const base = tensorFrom(g, [1, 2, 3, 4, 5, 6], [2, 3]);
    const v = base.view([3, 2]);
    expect(v.buffer).toBe(base.buffer);
    const liveBefore = g.pool.stats().live;
    base.dispose();
    expect(g.pool.stats().live).toBe(liveBefore);
    expect(Array.from(await v.read())).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(g.pool.stats().live).toBe(liveBefore - 1);
  });

  it('reshape passes gradients through', async () => {
    const g = gpu();
    const x = tensorFrom(g, [1, 2, 3, 4], [2, 2]).requireGrad();
    const y = mul(reshape(x, [4]), tensorFrom(g, [10, 20, 30, 40], [4]));
    backward(y);
    expect(x.grad!.shape).toEqual([2, 2]);
    expect(Array.from(await x.grad!.read())).toEqual([10, 20, 30, 40]);
  });
});

describe('adapter choice', () => {
  it('explains what to install when no adapter matches', async () => {
    const err = await Gpu.create({ adapter: 'no-such-adapter-anywhere' }).catch((e) => e);
    expect(err).toBeInstanceOf(PantherError);
    expect(err.code).toBe('E_NO_ADAPTER');
    expect(err.message).toMatch(/mesa-vulkan-drivers/);
  });

  it('takes an explicit backend and adapter name (lavapipe, which the set-up installs)', async () => {
    const g = await Gpu.create({ backend: 'vulkan', adapter: 'llvmpipe' });
    expect(g.description.device).toMatch(/llvmpipe/);
    expect(g.description.isSoftware).toBe(true);
    g.destroy();
  });
});
