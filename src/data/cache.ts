import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { PantherError } from '../errors.js';
import { DataSchema, type DataConfig, type DataSource } from './config.js';
import { sha256File, sha256Of, writeFileAtomic } from './files.js';
import { inputFiles, loadDataset, type LoadOptions } from './load.js';
import { prepareDataset, type PreparedData } from './prepare.js';
import { GENERATOR_VERSION } from './synthetic.js';
import { Tokenizer } from './tokenizer.js';

/**
 * The preprocessing cache: a prepared (split, tokenized) dataset stored as one file,
 * `<cacheDir>/<name>-<key>.bin`, so that a second run starts in about a second.
 *
 * The key is a sha256 over the cache format, the options that shape the result (source
 * options, split, tokenizer, bad-row policy) and the full sha256 of every input file's
 * content. Hashing whole files (not size + mtime) costs ~0.1 s for the largest input here
 * (29 MB) against seconds of parsing, survives copies that keep size and mtime, and lets the
 * same data at another path (another machine's data root) hit the same entry. Paths are
 * left out of the key for that reason. Bump CACHE_FORMAT when the readers, tokenizer or
 * this layout change what a given input produces.
 *
 * File layout: 8-byte magic, u32 header length, JSON header (metadata, tokenizer, users,
 * array directory), padding to 8 bytes, then the typed arrays back to back (8-aligned).
 * Written atomically (temporary file + rename); an unreadable entry is rebuilt.
 */
export const CACHE_FORMAT = 2;
const MAGIC = 'PNTHRDC1';

export interface CacheOptions extends LoadOptions {
  /** Default: config.cacheDir, resolved against baseDir (or cwd). */
  cacheDir?: string;
  /** false: always rebuild (and still write the entry). */
  useCache?: boolean;
  log?: (message: string) => void;
}

export interface PreparedResult {
  data: PreparedData;
  cache: { hit: boolean; file: string; key: string };
  seconds: number;
}

function keyedSource(source: DataSource): Record<string, unknown> {
  // Where the files are does not matter, what they contain does (hashed separately).
  const { ...rest } = source as Record<string, unknown>;
  delete rest.dir;
  delete rest.path;
  if (source.kind === 'events' && source.profile) rest.profile = { ...source.profile, path: undefined };
  if (source.kind === 'synthetic') rest.generatorVersion = GENERATOR_VERSION;
  return rest;
}

export async function cacheKey(config: DataConfig, options: LoadOptions = {}): Promise<string> {
  const files = inputFiles(config.source, options);
  const hashes = await Promise.all(files.map((f) => sha256File(f)));
  const onBadRow = config.source.kind === 'events' ? (config.source.onBadRow ?? config.onBadRow) : undefined;
  const shape = { format: CACHE_FORMAT, source: keyedSource(config.source), split: config.split, tokenizer: config.tokenizer, onBadRow };
  return sha256Of([JSON.stringify(shape), ...hashes]);
}

/** Loads the prepared dataset from the cache, or builds it (read, split, fit, encode) and caches it. */
export async function loadPreparedData(input: z.input<typeof DataSchema> | DataConfig, options: CacheOptions = {}): Promise<PreparedResult> {
  const t0 = performance.now();
  const config = DataSchema.parse(input);
  const load: LoadOptions = { dataRoot: options.dataRoot ?? config.dataRoot, baseDir: options.baseDir, onBadRow: config.onBadRow };
  const key = await cacheKey(config, load);
  const dir = path.resolve(options.baseDir ?? process.cwd(), options.cacheDir ?? config.cacheDir);
  const file = path.join(dir, `${config.source.kind}-${key.slice(0, 24)}.bin`);

  if (options.useCache !== false && existsSync(file)) {
    try {
      const data = readPreparedData(file);
      // Same content may have been cached from another place: report where it is now.
      const files = inputFiles(config.source, load);
      if (files.length === data.meta.sources.length) data.meta.sources = data.meta.sources.map((s, i) => ({ ...s, path: files[i] }));
      return { data, cache: { hit: true, file, key }, seconds: (performance.now() - t0) / 1000 };
    } catch (err) {
      options.log?.(`cache entry ${file} is unreadable (${(err as Error).message}); rebuilding it`);
    }
  }
  const dataset = await loadDataset(config.source, load);
  const data = prepareDataset(dataset, { split: config.split, tokenizer: config.tokenizer });
  writePreparedData(file, data, key);
  return { data, cache: { hit: false, file, key }, seconds: (performance.now() - t0) / 1000 };
}

type ArrayName = 'offsets' | 'fitLength' | 'role' | 'time' | 'tokens' | 'levels' | 'amountLog' | 'gapLog' | 'label' | 'scenario' | 'profileIds' | `attribute:${number}`;
type Typed = Int32Array | Uint8Array | Int8Array | Float32Array | Float64Array;
const DTYPES = { i32: Int32Array, u8: Uint8Array, i8: Int8Array, f32: Float32Array, f64: Float64Array } as const;
type DType = keyof typeof DTYPES;

function dtypeOf(a: Typed): DType {
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof Uint8Array) return 'u8';
  if (a instanceof Int8Array) return 'i8';
  if (a instanceof Float32Array) return 'f32';
  return 'f64';
}

interface Header {
  format: number;
  key: string;
  meta: PreparedData['meta'];
  tokenizer: unknown;
  split: PreparedData['split'];
  users: string[];
  profile: { fields: string[]; values: string[][] };
  stats: PreparedData['stats'];
  arrays: { name: ArrayName; dtype: DType; offset: number; length: number }[];
}

export function writePreparedData(file: string, data: PreparedData, key: string): void {
  const arrays: [ArrayName, Typed][] = [
    ['offsets', data.offsets],
    ['fitLength', data.fitLength],
    ['role', data.role],
    ['time', data.time],
    ['tokens', data.tokens],
    ['levels', data.levels],
    ['amountLog', data.amountLog],
    ['gapLog', data.gapLog],
    ['label', data.label],
    ['scenario', data.scenario],
    ['profileIds', data.profile.ids],
    ...data.attributes.map((a, i): [ArrayName, Typed] => [`attribute:${i}`, a]),
  ];
  let offset = 0;
  const directory: Header['arrays'] = arrays.map(([name, a]) => {
    const entry = { name, dtype: dtypeOf(a), offset, length: a.length };
    offset += align8(a.byteLength);
    return entry;
  });
  const header: Header = {
    format: CACHE_FORMAT,
    key,
    meta: data.meta,
    tokenizer: data.tokenizer.toJSON(),
    split: data.split,
    users: data.users,
    profile: { fields: data.profile.fields, values: data.profile.values },
    stats: data.stats,
    arrays: directory,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(align8(12 + json.length));
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);
  json.copy(prefix, 12);
  const parts: Uint8Array[] = [prefix];
  for (const [, a] of arrays) {
    parts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const pad = align8(a.byteLength) - a.byteLength;
    if (pad) parts.push(new Uint8Array(pad));
  }
  writeFileAtomic(file, parts);
}

export function readPreparedData(file: string): PreparedData {
  const bytes = readFileSync(file);
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) throw new PantherError('E_DATA', 'not a panther data cache file', file);
  const headerLength = bytes.readUInt32LE(8);
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength)) as Header;
  if (header.format !== CACHE_FORMAT) throw new PantherError('E_DATA', `cache format ${header.format}, expected ${CACHE_FORMAT}`, file);
  // Typed-array views need aligned offsets; a Buffer from readFileSync may sit at any offset in its pool.
  const base = bytes.byteOffset % 8 === 0 ? bytes : Buffer.from(bytes);
  const start = align8(12 + headerLength);
  const arrays = new Map<string, Typed>();
  for (const a of header.arrays) {
    const Ctor = DTYPES[a.dtype];
    const byteOffset = base.byteOffset + start + a.offset;
    if (start + a.offset + a.length * Ctor.BYTES_PER_ELEMENT > base.length) throw new PantherError('E_DATA', `truncated (array ${a.name})`, file);
    arrays.set(a.name, new Ctor(base.buffer, byteOffset, a.length));
  }
  const get = <T extends Typed>(name: ArrayName): T => {
    const a = arrays.get(name);
    if (!a) throw new PantherError('E_DATA', `missing array ${name}`, file);
    return a as T;
  };
  const tokenizer = Tokenizer.fromJSON(header.tokenizer);
  return {
    meta: header.meta,
    tokenizer,
    split: header.split,
    users: header.users,
    offsets: get('offsets'),
    fitLength: get('fitLength'),
    role: get('role'),
    time: get('time'),
    tokens: get('tokens'),
    levels: get('levels'),
    attributes: tokenizer.attributes.map((_, i) => get<Int32Array>(`attribute:${i}`)),
    amountLog: get('amountLog'),
    gapLog: get('gapLog'),
    label: get('label'),
    scenario: get('scenario'),
    profile: { ...header.profile, ids: get('profileIds') },
    stats: header.stats,
  };
}

function align8(n: number): number {
  return (n + 7) & ~7;
}
