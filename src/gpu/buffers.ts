import { PantherError } from '../errors.js';

/**
 * Size classes of 2^k x {1, 1.25, 1.5, 1.75} (at least 256 bytes): at most 25% waste, and a
 * training step that asks for the same shapes every time is served from the free lists
 * after its first pass, with no createBuffer calls.
 */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  for (const f of [1, 1.25, 1.5, 1.75, 2]) {
    const size = pow * f;
    if (size >= bytes) return size;
  }
  return pow * 2;
}

export interface PoolStats {
  created: number;
  reused: number;
  live: number;
  free: number;
  bytesAllocated: number;
}

export const STORAGE_USAGE = () =>
  GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Storage buffers recycled by size class. */
export class BufferPool {
  private readonly freeLists = new Map<number, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private readonly live = new Set<GPUBuffer>();
  private created = 0;
  private reused = 0;
  private bytesAllocated = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBindingSize: number,
    private readonly usage: number = STORAGE_USAGE(),
  ) {}

  acquire(bytes: number, what = 'buffer'): GPUBuffer {
    if (bytes > this.maxBindingSize) {
      throw new PantherError(
        'E_BUFFER_TOO_LARGE',
        `needs ${bytes} bytes, over the adapter's maxStorageBufferBindingSize of ${this.maxBindingSize}; use a smaller batch or sequence length`,
        what,
      );
    }
    const size = Math.min(sizeClass(Math.max(bytes, 4)), Math.max(this.maxBindingSize, 256));
    const list = this.freeLists.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.reused++;
    } else {
      buffer = this.device.createBuffer({ size, usage: this.usage, label: what });
      this.sizes.set(buffer, size);
      this.created++;
      this.bytesAllocated += size;
    }
    this.live.add(buffer);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    if (!this.live.delete(buffer)) return;
    const size = this.sizes.get(buffer)!;
    let list = this.freeLists.get(size);
    if (!list) this.freeLists.set(size, (list = []));
    list.push(buffer);
  }

  /** Destroy every free buffer (after a phase that will not recur). */
  trim(): void {
    for (const list of this.freeLists.values()) {
      for (const b of list) {
        this.bytesAllocated -= this.sizes.get(b)!;
        b.destroy();
      }
    }
    this.freeLists.clear();
  }

  stats(): PoolStats {
    let free = 0;
    for (const list of this.freeLists.values()) free += list.length;
    return { created: this.created, reused: this.reused, live: this.live.size, free, bytesAllocated: this.bytesAllocated };
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.live) b.destroy();
    this.live.clear();
  }
}
