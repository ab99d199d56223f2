import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, loadSafetensors, saveSafetensors, stTensor, type StTensor } from '../../src/train/safetensors.js';
import { tempDir } from '../support/tmp.js';

describe('safetensors', () => {
  const dir = tempDir('panther-st');

  it('round-trips tensors and metadata byte-exactly, in the published layout', () => {
    const tensors = new Map<string, StTensor>([
      ['b.weight', stTensor(Float32Array.from([1.5, -2, 3.25, 0, 7, 8]), [2, 3])],
      ['a.steps', stTensor(Int32Array.from([42]))],
      ['rng', stTensor(Uint32Array.from([1, 2, 3, 4]))],
    ]);
    const path = join(dir, 'm.safetensors');
    saveSafetensors(path, tensors, { format: 'pt', step: '12' });
    const bytes = readFileSync(path);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLen) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString());
    expect(header['b.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [4, 28] });
    expect(header.__metadata__).toEqual({ format: 'pt', step: '12' });
    const back = loadSafetensors(path);
    expect(back.metadata.step).toBe('12');
    expect(Array.from(back.tensors.get('b.weight')!.data)).toEqual([1.5, -2, 3.25, 0, 7, 8]);
    expect(Array.from(back.tensors.get('rng')!.data)).toEqual([1, 2, 3, 4]);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('rejects truncated and corrupt files with the reason', () => {
    const path = join(dir, 'bad.safetensors');
    saveSafetensors(path, new Map([['x', stTensor(new Float32Array(16))]]));
    const bytes = readFileSync(path);
    expect(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4), 'bad')).toThrowError(/outside the file/);
    expect(() => decodeSafetensors(bytes.subarray(0, 5), 'bad')).toThrowError(/shorter than/);
    const garbled = Buffer.from(bytes);
    garbled[10] = 0x7b;
    garbled[11] = 0x7b;
    writeFileSync(path, garbled);
    expect(() => loadSafetensors(path)).toThrowError(/header is not JSON/);
  });
});
