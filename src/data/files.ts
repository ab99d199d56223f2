import { createHash } from 'node:crypto';
import { closeSync, createReadStream, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createGunzip, gunzipSync } from 'node:zlib';
import { PantherError } from '../errors.js';
import type { SourceFile } from './events.js';

/** The repository root (this file is src/data/files.ts). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Where the shared data sets live: `PANTHER_DATA_ROOT`, else `../shared/data` next to the
 * repository. Data are read from there, never copied into the repository.
 */
export function dataRoot(env: NodeJS.ProcessEnv = process.env, root = repoRoot): string {
  return env.PANTHER_DATA_ROOT ? path.resolve(env.PANTHER_DATA_ROOT) : path.resolve(root, '../shared/data');
}

function statOrFail(file: string): { size: number; mtimeMs: number } {
  try {
    return statSync(file);
  } catch (err) {
    throw new PantherError('E_DATA', `cannot read the input file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); is PANTHER_DATA_ROOT or the configured path right?`, file);
  }
}

// Hashes are memoized per process by (path, size, mtime): the cache key and the dataset
// metadata both need them, and hashing twice would only cost time.
const hashMemo = new Map<string, string>();

/** sha256 of a file's bytes (as stored, so of the compressed bytes for .gz), streamed. */
export async function sha256File(file: string): Promise<string> {
  const st = statOrFail(file);
  const memoKey = `${path.resolve(file)}\0${st.size}\0${st.mtimeMs}`;
  const known = hashMemo.get(memoKey);
  if (known) return known;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  const hex = hash.digest('hex');
  hashMemo.set(memoKey, hex);
  return hex;
}

export async function describeSource(file: string): Promise<SourceFile> {
  const st = statOrFail(file);
  return { path: path.resolve(file), bytes: st.size, sha256: await sha256File(file) };
}

/** One hash over several (the dataset's fingerprint); order matters. */
export function sha256Of(parts: readonly string[]): string {
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p).update('\0');
  return hash.digest('hex');
}

/** A byte stream of the file, gunzipped when the name ends in .gz. */
export function openInput(file: string): Readable {
  statOrFail(file);
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  if (!file.endsWith('.gz')) return raw;
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

/** Whole text file (small inputs), gunzipped when needed. */
export function readText(file: string, encoding: BufferEncoding = 'utf8'): string {
  statOrFail(file);
  const bytes = readFileSync(file);
  return (file.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString(encoding);
}

/** Lines with their 1-based numbers; streams, so large files are fine. */
export async function* readLines(file: string): AsyncGenerator<{ line: number; text: string }> {
  const input = openInput(file);
  input.setEncoding('utf8');
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) yield { line: ++line, text };
}

/**
 * Writes a file so that readers see either the old content or the whole new one: write a
 * temporary file next to it, fsync, rename over the target.
 */
export function writeFileAtomic(file: string, parts: string | Uint8Array | readonly (string | Uint8Array)[]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
  const fd = openSync(tmp, 'w');
  try {
    const list: readonly (string | Uint8Array)[] = typeof parts === 'string' || parts instanceof Uint8Array ? [parts] : parts;
    for (const part of list) {
      const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
}
