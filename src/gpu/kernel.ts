import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { PantherError } from '../errors.js';

export type ParamType = 'u32' | 'i32' | 'f32';
export type StorageAccess = 'read' | 'rw';

/**
 * One compute entry point of a `kernels/*.wgsl` file, declared in one place: its uniform
 * parameters (binding 0, a struct of 4-byte scalars in this order), its storage bindings
 * (1..n, in this order), and its override constants with their defaults.
 */
export interface KernelSpec {
  file: string;
  entry: string;
  params: Readonly<Record<string, ParamType>>;
  storage: readonly StorageAccess[];
  constants?: Readonly<Record<string, number>>;
}

export const KERNELS_DIR = fileURLToPath(new URL('../../kernels/', import.meta.url));

const sourceCache = new Map<string, string>();
export function kernelSource(file: string): string {
  let code = sourceCache.get(file);
  if (code === undefined) {
    try {
      code = readFileSync(join(KERNELS_DIR, `${file}.wgsl`), 'utf8');
    } catch {
      throw new PantherError('E_KERNEL', `kernel file kernels/${file}.wgsl not found`, file);
    }
    sourceCache.set(file, code);
  }
  return code;
}

/** Packs a spec's params in declaration order; the uniform slot is padded by the caller. */
export function packParams(spec: KernelSpec, values: Readonly<Record<string, number>>, into: DataView, offset: number): void {
  let i = 0;
  for (const [name, type] of Object.entries(spec.params)) {
    const v = values[name];
    if (v === undefined || Number.isNaN(v)) {
      throw new PantherError('E_KERNEL', `parameter '${name}' is missing`, `${spec.file}.${spec.entry}`);
    }
    const at = offset + 4 * i++;
    if (type === 'f32') into.setFloat32(at, v, true);
    else if (type === 'i32') into.setInt32(at, v, true);
    else into.setUint32(at, v >>> 0, true);
  }
}

export function specKey(spec: KernelSpec): string {
  return `${spec.file}:${spec.entry}`;
}
