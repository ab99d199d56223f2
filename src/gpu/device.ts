import { create, globals } from 'webgpu';
import { PantherError } from '../errors.js';

export type Backend = 'auto' | 'vulkan' | 'metal' | 'd3d12' | 'd3d11' | 'opengl' | 'opengles' | 'null';

export interface AdapterChoice {
  /** Dawn backend to use; `auto` lets Dawn pick the platform's default. */
  backend?: Backend;
  /** Substring of the adapter name (as Dawn lists it) that must match. */
  adapter?: string;
  powerPreference?: GPUPowerPreference;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** True for CPU implementations (lavapipe, SwiftShader): picks kernel variants tuned for SIMD lanes. */
  isSoftware: boolean;
  /** Subgroup sizes the adapter may use (0 when it does not say). */
  subgroupMinSize: number;
  subgroupMaxSize: number;
}

export interface AcquiredDevice {
  /**
   * Dawn's instance. It must stay referenced for the device's whole life: once it is
   * garbage-collected, Dawn's event processing runs on freed memory and the process aborts.
   */
  instance: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  description: AdapterDescription;
  features: Set<string>;
  limits: Record<string, number>;
}

let globalsInstalled = false;
/** Dawn's constants (GPUBufferUsage, GPUMapMode, ...) must exist as globals before use. */
export function installWebGpuGlobals(): void {
  if (globalsInstalled) return;
  Object.assign(globalThis, globals);
  globalsInstalled = true;
}

/** Flags understood by Dawn's node bindings (`backend=`, `adapter=`). */
export function dawnFlags(choice: AdapterChoice): string[] {
  const flags: string[] = [];
  if (choice.backend && choice.backend !== 'auto') flags.push(`backend=${choice.backend}`);
  if (choice.adapter) flags.push(`adapter=${choice.adapter}`);
  return flags;
}

export function createGpu(choice: AdapterChoice = {}): GPU {
  installWebGpuGlobals();
  return create(dawnFlags(choice));
}

const INSTALL_HINT =
  'install a Vulkan driver; on a machine without a GPU install Mesa lavapipe >= 25 ' +
  "(Debian 12: add the bookworm-backports suite, then 'apt-get install -t bookworm-backports " +
  "mesa-vulkan-drivers libvulkan1'), or run 'bash scripts/setup.sh'";

export function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info = adapter.info;
  const isFallbackAdapter = Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  const isSoftware =
    isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|software/.test(text);
  const sizes = info as { subgroupMinSize?: number; subgroupMaxSize?: number };
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    isFallbackAdapter,
    isSoftware,
    subgroupMinSize: sizes.subgroupMinSize ?? 0,
    subgroupMaxSize: sizes.subgroupMaxSize ?? 0,
  };
}

export function limitsOf(adapter: GPUAdapter | GPUDevice): Record<string, number> {
  const out: Record<string, number> = {};
  const limits = adapter.limits as unknown as Record<string, number>;
  // Limits are prototype getters on Dawn's objects, so walk the prototype.
  for (const key of Object.keys(Object.getPrototypeOf(limits))) {
    const value = limits[key];
    if (typeof value === 'number') out[key] = value;
  }
  return out;
}

/** Features we use when the adapter has them. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ['timestamp-query', 'shader-f16', 'subgroups' as GPUFeatureName];

/**
 * Acquire an adapter and device as chosen. Requests the adapter's own maxima for the
 * limits our kernels depend on (storage buffer size, workgroup storage, invocations).
 */
export async function acquireDevice(choice: AdapterChoice = {}): Promise<AcquiredDevice> {
  let gpu: GPU;
  let adapter: GPUAdapter | null;
  try {
    gpu = createGpu(choice);
    adapter = await gpu.requestAdapter(
      choice.powerPreference ? { powerPreference: choice.powerPreference } : undefined,
    );
  } catch (err) {
    const detail = err instanceof Error ? err.message.split('\n').join('; ') : String(err);
    throw new PantherError('E_NO_ADAPTER', `no WebGPU adapter matched ${JSON.stringify(choice)} (${detail}); ${INSTALL_HINT}`, 'gpu');
  }
  if (!adapter) {
    throw new PantherError('E_NO_ADAPTER', `no WebGPU adapter is available; ${INSTALL_HINT}`, 'gpu');
  }
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const adapterLimits = limitsOf(adapter);
  const requiredLimits: Record<string, number> = {};
  for (const key of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxStorageBuffersPerShaderStage',
  ]) {
    if (adapterLimits[key] !== undefined) requiredLimits[key] = adapterLimits[key];
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  return {
    instance: gpu,
    adapter,
    device,
    description: describeAdapter(adapter),
    features: new Set(features),
    limits: limitsOf(device),
  };
}
