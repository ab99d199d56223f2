import { PantherError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import type { TapeNode } from './tape.js';

export type DType = 'f32' | 'i32' | 'u32';
export type HostArray = Float32Array | Int32Array | Uint32Array;

let nextTensorId = 1;

/** Per-device bookkeeping shared by tensors and the tape (not a global: one per Gpu). */
export interface TensorContext {
  scopes: Set<Tensor>[];
  tape: TapeNode[];
  gradEnabled: boolean;
}

const contexts = new WeakMap<Gpu, TensorContext>();
export function contextOf(gpu: Gpu): TensorContext {
  let ctx = contexts.get(gpu);
  if (!ctx) contexts.set(gpu, (ctx = { scopes: [], tape: [], gradEnabled: true }));
  return ctx;
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new PantherError('E_SHAPE', `invalid dimension ${d} in shape [${shape}]`);
    n *= d;
  }
  return n;
}

/**
 * An n-dimensional array in a pooled GPU buffer. Row-major; the last dimension is
 * contiguous. A tensor made while a scope is open belongs to that scope and is disposed
 * when it closes unless it is returned or kept.
 */
export class Tensor {
  readonly id = nextTensorId++;
  readonly size: number;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** Set by the op that produced this tensor while recording; leaves have none. */
  producer: TapeNode | null = null;
  private buf: GPUBuffer | null;
  /** For a view: the tensor whose buffer it shares. */
  private readonly base: Tensor | null;
  private liveViews = 0;
  private disposed = false;

  constructor(
    readonly gpu: Gpu,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
    viewOf?: Tensor,
    readonly name?: string,
  ) {
    this.size = shapeSize(shape);
    if (viewOf) {
      if (viewOf.size !== this.size) throw new PantherError('E_SHAPE', `a view of [${shape}] cannot share ${viewOf.describe()}`);
      this.base = viewOf.base ?? viewOf;
      this.base.liveViews++;
      this.buf = viewOf.buffer;
    } else {
      this.base = null;
      this.buf = gpu.pool.acquire(this.size * 4, name ?? `tensor[${shape}]`);
    }
    const scopes = contextOf(gpu).scopes;
    if (scopes.length) scopes[scopes.length - 1].add(this);
  }

  get buffer(): GPUBuffer {
    if (this.disposed || !this.buf) throw new PantherError('E_DISPOSED', 'tensor was already disposed', this.describe());
    return this.buf;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  get byteLength(): number {
    return this.size * 4;
  }

  describe(): string {
    return `${this.name ?? 'tensor'}#${this.id}[${this.shape.join('x')}] ${this.dtype}`;
  }

  /**
   * Frees the tensor. A buffer shared by views goes back to the pool once the base and
   * every view of it are disposed.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    if (this.base) {
      this.base.liveViews--;
      this.base.releaseIfUnused();
      this.buf = null;
    } else {
      this.releaseIfUnused();
    }
  }

  private releaseIfUnused(): void {
    if (this.disposed && this.liveViews === 0 && this.buf) {
      this.gpu.pool.release(this.buf);
      this.buf = null;
    }
  }

  /** The same elements under another shape, sharing the buffer (no tape: see `reshape`). */
  view(shape: readonly number[]): Tensor {
    return new Tensor(this.gpu, shape, this.dtype, this);
  }

  /** Removes this tensor from the open scopes, so closing them leaves it alive. */
  keep(): this {
    for (const scope of contextOf(this.gpu).scopes) scope.delete(this);
    return this;
  }

  requireGrad(flag = true): this {
    if (flag && this.dtype !== 'f32') throw new PantherError('E_DTYPE', 'only f32 tensors take gradients', this.describe());
    this.requiresGrad = flag;
    return this;
  }

  async read(): Promise<HostArray> {
    const raw = await this.gpu.read(this.buffer, this.byteLength);
    if (this.dtype === 'f32') return new Float32Array(raw);
    if (this.dtype === 'i32') return new Int32Array(raw);
    return new Uint32Array(raw);
  }

  async readF32(): Promise<Float32Array> {
    if (this.dtype !== 'f32') throw new PantherError('E_DTYPE', `expected f32, is ${this.dtype}`, this.describe());
    return (await this.read()) as Float32Array;
  }

  /** Overwrites the contents from the host (same size). */
  write(data: ArrayLike<number>): this {
    if (data.length !== this.size) {
      throw new PantherError('E_SHAPE', `got ${data.length} values for ${this.size} elements`, this.describe());
    }
    this.gpu.write(this.buffer, toHost(data, this.dtype));
    return this;
  }
}

export function toHost(data: ArrayLike<number>, dtype: DType): HostArray {
  if (dtype === 'f32') return data instanceof Float32Array ? data : Float32Array.from(data);
  if (dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data);
  return data instanceof Uint32Array ? data : Uint32Array.from(data);
}

export function tensorFrom(gpu: Gpu, data: ArrayLike<number>, shape: readonly number[], dtype: DType = 'f32', name?: string): Tensor {
  const size = shapeSize(shape);
  if (data.length !== size) {
    throw new PantherError('E_SHAPE', `got ${data.length} values for shape [${shape}] (${size} elements)`, name ?? 'tensorFrom');
  }
  const t = new Tensor(gpu, shape, dtype, undefined, name);
  gpu.write(t.buffer, toHost(data, dtype));
  return t;
}

export function empty(gpu: Gpu, shape: readonly number[], dtype: DType = 'f32', name?: string): Tensor {
  return new Tensor(gpu, shape, dtype, undefined, name);
}

/**
 * Runs `fn` in a scope: every tensor made inside and not returned (anywhere in the returned
 * value) or kept is disposed at the end.
 */
export function tidy<T>(gpu: Gpu, fn: () => T): T {
  const ctx = contextOf(gpu);
  const scope = new Set<Tensor>();
  ctx.scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    ctx.scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  const parent = ctx.scopes[ctx.scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    into.add(value);
    return;
  }
  const items = Array.isArray(value) ? value : value instanceof Map ? [...value.values()] : Object.values(value);
  for (const v of items) collectTensors(v, into, depth + 1);
}
