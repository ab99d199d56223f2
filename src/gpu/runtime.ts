import { PantherError } from '../errors.js';
import { BufferPool, sizeClass } from './buffers.js';
import { acquireDevice, type AcquiredDevice, type AdapterChoice, type AdapterDescription } from './device.js';
import { kernelSource, packParams, specKey, type KernelSpec } from './kernel.js';

/** Uniform slots are 256 bytes apart (minUniformBufferOffsetAlignment). */
const UNIFORM_SLOT = 256;
const UNIFORM_SLOTS = 4096;
const BIND_GROUP_CACHE_MAX = 8192;

export interface DispatchOptions {
  buffers: readonly GPUBuffer[];
  params: Readonly<Record<string, number>>;
  workgroups: readonly [number, number?, number?];
  constants?: Readonly<Record<string, number>>;
}

/**
 * Kernel variants and tile sizes chosen per adapter: GPUs want workgroup-memory tiles, CPU
 * adapters (lavapipe) want per-invocation register blocks and no barriers.
 */
export interface KernelTunables {
  /**
   * subgroup: 8-row blocks shared through subgroup broadcasts (CPU adapters with subgroups of
   * 8+ lanes); reg: register blocks without workgroup memory (other CPU adapters);
   * tiled: workgroup-memory tiles (GPUs).
   */
  matmul: 'subgroup' | 'reg' | 'tiled';
}

export function defaultTunables(description: AdapterDescription, features: Set<string>): KernelTunables {
  if (!description.isSoftware) return { matmul: 'tiled' };
  const subgroups = features.has('subgroups') && description.subgroupMinSize >= 8;
  return { matmul: subgroups ? 'subgroup' : 'reg' };
}

export interface GpuOptions extends AdapterChoice {
  tunables?: Partial<KernelTunables>;
  /** Log function for device loss and uncaptured errors. */
  onError?: (message: string) => void;
}

interface CompiledKernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  id: number;
}

/**
 * A device and everything bound to it: the buffer pool, compiled kernels, bind groups, and
 * the command encoder that collects dispatches until the next read or flush. It is passed
 * to whatever needs the GPU; there is no hidden global device.
 */
export class Gpu {
  readonly device: GPUDevice;
  readonly instance: GPU;
  readonly adapter: GPUAdapter;
  readonly description: AdapterDescription;
  readonly features: Set<string>;
  readonly limits: Record<string, number>;
  readonly pool: BufferPool;
  readonly hasTimestamps: boolean;
  readonly tunables: KernelTunables;

  private readonly pipelines = new Map<string, CompiledKernel>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private nextKernelId = 1;

  private readonly uniformBuffer: GPUBuffer;
  private readonly uniformStaging = new ArrayBuffer(UNIFORM_SLOT * UNIFORM_SLOTS);
  private readonly uniformView = new DataView(this.uniformStaging);
  private uniformUsed = 0;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  private readonly readbackPool: BufferPool;

  private profile: { querySet: GPUQuerySet; labels: string[]; capacity: number } | null = null;
  private lostReason: string | null = null;
  /** The first uncaptured GPU error: later work would only fail the same way, so it stops here. */
  private firstError: string | null = null;
  private destroyed = false;
  dispatchCount = 0;

  private constructor(acquired: AcquiredDevice, tunables: KernelTunables, private readonly onError: (m: string) => void) {
    this.device = acquired.device;
    this.instance = acquired.instance;
    this.adapter = acquired.adapter;
    this.description = acquired.description;
    this.features = acquired.features;
    this.limits = acquired.limits;
    this.hasTimestamps = acquired.features.has('timestamp-query');
    this.tunables = tunables;
    this.pool = new BufferPool(this.device, this.limits.maxStorageBufferBindingSize);
    this.readbackPool = new BufferPool(
      this.device,
      this.limits.maxBufferSize ?? this.limits.maxStorageBufferBindingSize,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    );
    this.uniformBuffer = this.device.createBuffer({
      size: UNIFORM_SLOT * UNIFORM_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: 'uniform-arena',
    });
    void this.device.lost.then((info) => {
      if (this.destroyed) return;
      this.lostReason = `${info.reason}: ${info.message}`;
      this.onError(`GPU device lost (${this.lostReason})`);
    });
    this.device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      if (this.firstError) return;
      this.firstError = ev.error.message;
      this.onError(`GPU error: ${ev.error.message}`);
    };
  }

  static async create(options: GpuOptions = {}): Promise<Gpu> {
    const acquired = await acquireDevice(options);
    const tunables = { ...defaultTunables(acquired.description, acquired.features), ...options.tunables };
    if (tunables.matmul === 'subgroup' && !(acquired.features.has('subgroups') && acquired.description.subgroupMinSize >= 8)) {
      acquired.device.destroy();
      throw new PantherError('E_CONFIG', `the subgroup matmul needs subgroups of at least 8 lanes; this adapter has ${acquired.description.subgroupMinSize || 'none'}`, 'gpu.matmul');
    }
    return new Gpu(acquired, tunables, options.onError ?? ((m) => process.stderr.write(`${m}\n`)));
  }

  get maxStorageBinding(): number {
    return this.limits.maxStorageBufferBindingSize;
  }

  private checkAlive(where: string): void {
    if (this.destroyed) throw new PantherError('E_DEVICE_LOST', 'the GPU device was destroyed', where);
    if (this.lostReason) throw new PantherError('E_DEVICE_LOST', `the GPU device was lost (${this.lostReason})`, where);
    if (this.firstError) throw new PantherError('E_KERNEL', `an earlier GPU command failed: ${this.firstError.split('\n')[0]}`, where);
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) this.bufferIds.set(b, (id = this.nextBufferId++));
    return id;
  }

  private layoutFor(spec: KernelSpec): GPUBindGroupLayout {
    const key = spec.storage.join(',');
    let layout = this.layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
        ...spec.storage.map((access, i) => ({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: access === 'read' ? ('read-only-storage' as const) : ('storage' as const) },
        })),
      ];
      layout = this.device.createBindGroupLayout({ entries, label: key });
      this.layouts.set(key, layout);
    }
    return layout;
  }

  /** Compiles (once) the pipeline of a spec with the given override constants. */
  kernel(spec: KernelSpec, constants?: Readonly<Record<string, number>>): CompiledKernel {
    const merged = { ...spec.constants, ...constants };
    const key = `${specKey(spec)}|${JSON.stringify(merged)}`;
    let compiled = this.pipelines.get(key);
    if (compiled) return compiled;
    const where = `kernels/${spec.file}.wgsl:${spec.entry}`;
    const module = this.device.createShaderModule({ code: kernelSource(spec.file), label: spec.file });
    const layout = this.layoutFor(spec);
    this.device.pushErrorScope('validation');
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entry, constants: merged },
      label: key,
    });
    void this.device.popErrorScope().then(async (err) => {
      if (!err) return;
      const info = await module.getCompilationInfo();
      const lines = info.messages.map((m) => `  ${spec.file}.wgsl:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
      this.onError(`pipeline ${where} failed: ${err.message}\n${lines.join('\n')}`);
    });
    compiled = { pipeline, layout, id: this.nextKernelId++ };
    this.pipelines.set(key, compiled);
    return compiled;
  }

  /** Compiles a kernel and reports WGSL errors as a PantherError (used by tests and warm-up). */
  async compile(spec: KernelSpec, constants?: Readonly<Record<string, number>>): Promise<void> {
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code: kernelSource(spec.file) });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    await this.device.popErrorScope();
    if (errors.length) {
      const text = errors.map((m) => `kernels/${spec.file}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`).join('\n');
      throw new PantherError('E_KERNEL', `WGSL does not compile:\n${text}`, spec.file);
    }
    this.device.pushErrorScope('validation');
    this.kernel(spec, constants);
    const err = await this.device.popErrorScope();
    if (err) throw new PantherError('E_KERNEL', err.message, `${spec.file}.${spec.entry}`);
  }

  private bindGroup(compiled: CompiledKernel, buffers: readonly GPUBuffer[]): GPUBindGroup {
    let key = `${compiled.id}`;
    for (const b of buffers) key += `,${this.bufferId(b)}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      if (this.bindGroups.size >= BIND_GROUP_CACHE_MAX) this.bindGroups.clear();
      group = this.device.createBindGroup({
        layout: compiled.layout,
        entries: [
          { binding: 0, resource: { buffer: this.uniformBuffer, size: UNIFORM_SLOT } },
          ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
      });
      this.bindGroups.set(key, group);
    }
    return group;
  }

  private ensurePass(timestampWrites?: GPUComputePassTimestampWrites): GPUComputePassEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass(timestampWrites ? { timestampWrites } : undefined);
    return this.pass;
  }

  /** Ends the open compute pass (if any) so commands outside a pass can be recorded. */
  private endPass(): GPUCommandEncoder {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  /** Records one dispatch; it runs at the next flush (or read). */
  dispatch(spec: KernelSpec, opts: DispatchOptions): void {
    const where = `${spec.file}.${spec.entry}`;
    this.checkAlive(where);
    if (opts.buffers.length !== spec.storage.length) {
      throw new PantherError('E_KERNEL', `expects ${spec.storage.length} buffers, got ${opts.buffers.length}`, where);
    }
    const [x, y = 1, z = 1] = opts.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new PantherError('E_LIMIT', `dispatch of ${x}x${y}x${z} workgroups exceeds ${maxWg} per dimension`, where);
    }
    if (this.uniformUsed >= UNIFORM_SLOTS * UNIFORM_SLOT) this.flush();
    const offset = this.uniformUsed;
    packParams(spec, opts.params, this.uniformView, offset);
    this.uniformUsed += UNIFORM_SLOT;
    const compiled = this.kernel(spec, opts.constants);
    let pass: GPUComputePassEncoder;
    const prof = this.profile;
    if (prof && prof.labels.length < prof.capacity) {
      // Profiling: one pass per dispatch, timestamped at its start and end.
      this.endPass();
      const i = prof.labels.length;
      prof.labels.push(where);
      pass = this.ensurePass({ querySet: prof.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 });
    } else {
      pass = this.ensurePass();
    }
    pass.setPipeline(compiled.pipeline);
    pass.setBindGroup(0, this.bindGroup(compiled, opts.buffers), [offset]);
    pass.dispatchWorkgroups(x, y, z);
    this.pendingDispatches++;
    this.dispatchCount++;
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.uniformUsed > 0) {
      this.device.queue.writeBuffer(this.uniformBuffer, 0, this.uniformStaging, 0, this.uniformUsed);
      this.uniformUsed = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.pendingDispatches = 0;
  }

  /** Writes host data into a buffer, after everything recorded so far. */
  write(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.checkAlive('write');
    if (this.pendingDispatches > 0) this.flush();
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copies `byteLength` bytes of a buffer back to the host once recorded work is done. */
  async read(buffer: GPUBuffer, byteLength: number, byteOffset = 0): Promise<ArrayBuffer> {
    this.checkAlive('read');
    const bytes = Math.ceil(byteLength / 4) * 4;
    const staging = this.readbackPool.acquire(bytes, 'readback');
    const encoder = this.endPass();
    encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, bytes);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ, 0, bytes);
    const out = staging.getMappedRange(0, bytes).slice(0, byteLength);
    staging.unmap();
    this.readbackPool.release(staging);
    return out;
  }

  /** Waits until the queue has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Runs `record` (which records dispatches) in a compute pass of its own and returns the
   * GPU time of that pass in milliseconds from timestamp queries, or null when the adapter
   * has none.
   */
  async timePass(record: () => void): Promise<number | null> {
    if (!this.hasTimestamps) {
      record();
      await this.sync();
      return null;
    }
    this.flush();
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: 2 });
    const resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    this.ensurePass({ querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 });
    record();
    this.endPass().resolveQuerySet(querySet, 0, 2, resolve, 0);
    const raw = await this.read(resolve, 16);
    querySet.destroy();
    resolve.destroy();
    const [t0, t1] = new BigUint64Array(raw);
    return Number(t1 - t0) / 1e6;
  }

  /**
   * Starts timing every dispatch (up to `capacity`) with timestamp queries; `stopProfile`
   * returns GPU milliseconds and counts per kernel entry point. Needs timestamp queries.
   */
  startProfile(capacity = 2048): void {
    if (!this.hasTimestamps) throw new PantherError('E_LIMIT', 'the adapter has no timestamp queries', 'profile');
    this.flush();
    this.profile = { querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * capacity }), labels: [], capacity };
  }

  async stopProfile(): Promise<{ kernel: string; count: number; ms: number }[]> {
    const prof = this.profile;
    if (!prof) return [];
    this.profile = null;
    const n = prof.labels.length;
    const out = new Map<string, { kernel: string; count: number; ms: number }>();
    if (n > 0) {
      const resolve = this.device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      this.endPass().resolveQuerySet(prof.querySet, 0, 2 * n, resolve, 0);
      const times = new BigUint64Array(await this.read(resolve, 16 * n));
      resolve.destroy();
      prof.labels.forEach((kernel, i) => {
        const e = out.get(kernel) ?? { kernel, count: 0, ms: 0 };
        e.count++;
        e.ms += Number(times[2 * i + 1] - times[2 * i]) / 1e6;
        out.set(kernel, e);
      });
    }
    prof.querySet.destroy();
    return [...out.values()].sort((a, b) => b.ms - a.ms);
  }

  /** Frees every buffer and the device, so the process can exit. */
  destroy(): void {
    if (this.destroyed) return;
    try {
      this.flush();
    } catch {
      // a lost device cannot submit; destroying is all that is left to do
    }
    this.destroyed = true;
    this.pool.destroyAll();
    this.readbackPool.destroyAll();
    this.uniformBuffer.destroy();
    this.bindGroups.clear();
    this.device.destroy();
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }
}

/** Workgroup counts for `n` invocations of `wg` lanes, folded into y past 65535 groups. */
export function grid1d(n: number, wg: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

export { sizeClass };
