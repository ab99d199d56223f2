import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { PantherError } from '../errors.js';

/**
 * The safetensors format (8-byte little-endian header length, a JSON header of
 * name -> {dtype, shape, data_offsets} plus string `__metadata__`, then the raw
 * little-endian tensor bytes), so checkpoints load in other tools.
 */
export type StDType = 'F32' | 'I32' | 'U32' | 'F64';
export type StArray = Float32Array | Int32Array | Uint32Array | Float64Array;

export interface StTensor {
  dtype: StDType;
  shape: number[];
  data: StArray;
}

const DTYPE_OF = (a: StArray): StDType =>
  a instanceof Float32Array ? 'F32' : a instanceof Int32Array ? 'I32' : a instanceof Uint32Array ? 'U32' : 'F64';

export function stTensor(data: StArray, shape?: number[]): StTensor {
  return { dtype: DTYPE_OF(data), shape: shape ?? [data.length], data };
}

export function encodeSafetensors(tensors: Map<string, StTensor>, metadata: Record<string, string> = {}): Buffer[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  // Sorted names: the same content always gives the same bytes.
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new PantherError('E_SHAPE', `shape [${t.shape}] does not hold ${t.data.length} values`, name);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so tensor data starts 8-byte aligned.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [head, Buffer.from(json), ...names.map((n) => {
    const d = tensors.get(n)!.data;
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  })];
}

/** Writes atomically: a temporary file, fsync, rename, then fsync of the directory. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let written = 0;
      while (written < c.byteLength) written += writeSync(fd, c, written);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  try {
    const dfd = openSync(dirname(path), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // some file systems do not allow fsync on directories
  }
}

export function saveSafetensors(path: string, tensors: Map<string, StTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface Safetensors {
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

export function decodeSafetensors(bytes: Uint8Array, where = 'safetensors'): Safetensors {
  const bad = (m: string) => new PantherError('E_ARGUMENT', m, where);
  if (bytes.byteLength < 8) throw bad('file is shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > bytes.byteLength - 8) throw bad(`header length ${headerLen} runs past the end of the file`);
  let header: Record<string, { dtype: StDType; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLen).toString('utf8'));
  } catch (err) {
    throw bad(`header is not JSON (${(err as Error).message})`);
  }
  const dataStart = 8 + headerLen;
  const tensors = new Map<string, StTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype: StDType; shape: number[]; data_offsets: [number, number] };
    const [start, end] = e.data_offsets ?? [];
    if (!Number.isInteger(start) || !Number.isInteger(end) || end < start || dataStart + end > bytes.byteLength) {
      throw bad(`tensor '${name}' has data offsets ${JSON.stringify(e.data_offsets)} outside the file`);
    }
    const ctor = { F32: Float32Array, I32: Int32Array, U32: Uint32Array, F64: Float64Array }[e.dtype];
    if (!ctor) throw bad(`tensor '${name}' has unsupported dtype ${e.dtype}`);
    const n = (end - start) / ctor.BYTES_PER_ELEMENT;
    if (n !== e.shape.reduce((a, b) => a * b, 1)) throw bad(`tensor '${name}' has ${n} values for shape [${e.shape}]`);
    // Copy out so the tensor does not depend on the alignment of the file buffer.
    const copy = new Uint8Array(end - start);
    copy.set(bytes.subarray(dataStart + start, dataStart + end));
    tensors.set(name, { dtype: e.dtype, shape: e.shape, data: new ctor(copy.buffer) });
  }
  return { tensors, metadata };
}

export function loadSafetensors(path: string): Safetensors {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new PantherError('E_ARGUMENT', `cannot read checkpoint (${(err as Error).message})`, path);
  }
  return decodeSafetensors(bytes, path);
}
