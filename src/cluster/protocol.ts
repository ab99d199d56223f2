import { endianness } from 'node:os';
import { Packr } from 'msgpackr';
import { z } from 'zod';
import { PantherError } from '../errors.js';

/**
 * The wire protocol between the coordinator and its workers, and between ring neighbours:
 * one msgpack map per binary WebSocket frame, `{ t: type, v: version, ...fields }`.
 * Tensors travel as `bin` fields holding the raw little-endian bytes of a typed array
 * (never per element, never base64). Every type has a version and a strict schema that is
 * checked on receipt; anything else is a ProtocolError and the sender is disconnected.
 */

if (endianness() !== 'LE') {
  // Tensors are sent as the host's typed-array bytes; the format says little-endian.
  throw new PantherError('E_PROTOCOL', 'this host is big-endian; the cluster protocol sends little-endian tensor bytes', 'cluster/protocol');
}

const bytes = z.custom<Uint8Array>((b) => b instanceof Uint8Array, 'must be binary (msgpack bin)');
const nonce = bytes.refine((b) => b.byteLength === 32, 'must be 32 bytes');
const id = z.string().min(1).max(128);
const count = z.int().min(0).max(2 ** 31 - 1);
const finite = z.number().refine(Number.isFinite, 'must be finite');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits');

function message<T extends string, S extends z.ZodRawShape>(type: T, version: number, shape: S) {
  return z.strictObject({ t: z.literal(type), v: z.literal(version), ...shape });
}

/** The setup a worker receives with its welcome (the config travels as validated JSON text). */
const Setup = z.strictObject({
  mode: z.enum(['train', 'bench']),
  config: z.string().max(1 << 20).nullable(),
  gpu: z.strictObject({ backend: z.string().max(32).optional(), adapter: z.string().max(256).optional() }).nullable(),
  dataKey: z.string().max(128).nullable(),
  baseDir: z.string().max(4096).nullable(),
  heartbeatMs: z.int().min(1).max(600_000),
  /** Silence from the coordinator (its heartbeats included) after which the worker gives up. */
  heartbeatTimeoutMs: z.int().min(1).max(3_600_000),
  /** Ring links between workers go over TLS (the coordinator's port does). */
  ringTls: z.boolean(),
  maxPayload: z.int().min(1024),
  bucketBytes: z.int().min(16),
});

const Evaluation = z.strictObject({
  role: z.enum(['valid', 'test']),
  count: count, hr1: finite, hr10: finite, hr50: finite, ndcg10: finite, mrr: finite,
  unknownTargets: count, withoutHistory: count,
});

const Manifest = z.array(z.strictObject({ name: z.string().min(1).max(256), shape: z.array(count).max(8) })).max(100_000);

export const MESSAGES = {
  // handshake (both channels)
  challenge: message('challenge', 1, { purpose: z.enum(['control', 'ring']), identity: id, nonce }),
  // v2: every later frame of the connection is sealed (auth.ts FrameSeal).
  auth: message('auth', 2, { identity: id, gen: count, nonce, proof: nonce }),
  welcome: message('welcome', 2, { proof: nonce, workerId: id, setup: Setup }),
  'peer-welcome': message('peer-welcome', 1, { proof: nonce }),
  rejected: message('rejected', 1, { code: z.string().max(64), reason: z.string().max(2000) }),
  // worker -> coordinator
  ready: message('ready', 1, {
    peer: z.strictObject({ host: z.string().min(1).max(256), port: z.int().min(1).max(65535) }),
    manifest: Manifest, checksum: hex64.nullable(), dataKey: z.string().max(128).nullable(),
    windows: count, adapter: z.string().max(512), pid: count,
  }),
  heartbeat: message('heartbeat', 1, { seq: count }),
  'ring-ready': message('ring-ready', 1, { gen: count }),
  reduced: message('reduced', 1, { step: count, attempt: count, next: finite, contrastive: finite.nullable(), rows: count }),
  applied: message('applied', 1, { step: count, attempt: count, gradNorm: finite.nullable(), checksum: hex64.nullable() }),
  'ring-broken': message('ring-broken', 1, { gen: count, peer: id, reason: z.string().max(2000) }),
  evaluation: message('evaluation', 1, { request: count, result: Evaluation }),
  'state-loaded': message('state-loaded', 1, { request: count, checksum: hex64 }),
  failed: message('failed', 1, { code: z.string().max(64), message: z.string().max(4000) }),
  'bench-result': message('bench-result', 1, { request: count, seconds: z.array(finite).max(10_000), bytes: count }),
  // coordinator -> worker
  ring: message('ring', 1, {
    gen: count, rank: count,
    members: z.array(z.strictObject({ id, host: z.string().min(1).max(256), port: z.int().min(1).max(65535) })).min(1).max(1024),
  }),
  step: message('step', 1, {
    step: count, attempt: count, gen: count, epoch: count, position: count, lr: finite, maxGradNorm: finite,
    /** Int32 indices into the training windows: the global batch in row order. */
    windows: bytes,
    /** Uint16 ring rank of every row of the global batch. */
    assignment: bytes,
    checksum: z.boolean(),
  }),
  commit: message('commit', 1, { step: count, attempt: count }),
  abort: message('abort', 1, { step: count, attempt: count, reason: z.string().max(2000) }),
  'get-state': message('get-state', 1, { request: count, optimizer: z.boolean() }),
  evaluate: message('evaluate', 1, { request: count, role: z.enum(['valid', 'test']), limit: count.nullable(), batchSize: z.int().min(1).max(1 << 16) }),
  bench: message('bench', 1, { request: count, kind: z.enum(['allreduce', 'raw', 'ring']), bytes: z.int().min(4).max(2 ** 30), reps: z.int().min(1).max(10_000) }),
  shutdown: message('shutdown', 1, { reason: z.string().max(2000) }),
  // state transfer, both directions: tensors in parts of at most maxPayload / 2 bytes
  'state-part': message('state-part', 1, {
    request: count, name: z.string().min(1).max(256), kind: z.enum(['param', 'm', 'v']),
    offset: count, total: count, data: bytes.refine((b) => b.byteLength % 4 === 0, 'must hold whole f32 values'),
  }),
  'state-end': message('state-end', 1, {
    request: count, parts: count, optimizerSteps: count.nullable(),
    /** Int32 per-parameter update counts in manifest order (with the optimizer). */
    paramSteps: bytes.nullable(), checksum: hex64,
  }),
  // ring neighbours
  'ring-data': message('ring-data', 1, {
    gen: count, step: count, attempt: count, op: count, round: count,
    /** Spaces that put `data` at a 4-byte boundary of the frame, so the receiver reads it as f32 in place. */
    pad: z.string().max(3).optional(),
    data: bytes,
  }),
} as const;

export type MessageType = keyof typeof MESSAGES;
export type Message<T extends MessageType = MessageType> = T extends MessageType ? z.infer<(typeof MESSAGES)[T]> : never;
/** A message as written by the sender: `v` is filled in from the catalogue. */
export type Outgoing<T extends MessageType = MessageType> = T extends MessageType ? Omit<Message<T>, 'v'> : never;

export const PROTOCOL_VERSIONS: Readonly<Record<MessageType, number>> = Object.fromEntries(
  Object.entries(MESSAGES).map(([k, s]) => [k, (s.shape.v as z.ZodLiteral<number>).value]),
) as Record<MessageType, number>;

/** What each side accepts, by channel role (anything else is rejected). */
export const ACCEPTS = {
  coordinatorHandshake: ['auth'],
  coordinator: ['ready', 'heartbeat', 'ring-ready', 'reduced', 'applied', 'ring-broken', 'evaluation', 'failed', 'bench-result', 'state-part', 'state-end', 'state-loaded'],
  workerHandshake: ['challenge', 'welcome', 'rejected'],
  worker: ['heartbeat', 'ring', 'step', 'commit', 'abort', 'get-state', 'evaluate', 'bench', 'shutdown', 'state-part', 'state-end'],
  ringServerHandshake: ['auth'],
  /** The ring port accepts the right neighbour, which sends nothing on it. */
  ringServer: [],
  ringClientHandshake: ['challenge', 'peer-welcome', 'rejected'],
  /** Data comes from the left neighbour, on the connection this side opened. */
  ringClient: ['ring-data'],
} as const satisfies Record<string, readonly MessageType[]>;

export class ProtocolError extends PantherError {
  constructor(message: string, where: string) {
    super('E_PROTOCOL', message, where);
    this.name = 'ProtocolError';
  }
}

// No record extension, maps as plain objects: standard msgpack any peer can read.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Encodes a message after checking it against its own schema (a bug here is ours, not the peer's). */
export function encodeMessage(msg: Outgoing): Buffer {
  const full = { ...msg, v: PROTOCOL_VERSIONS[msg.t] };
  const parsed = MESSAGES[msg.t].safeParse(full);
  if (!parsed.success) throw new ProtocolError(`outgoing message does not match its schema: ${issueText(parsed.error)}`, `message ${msg.t}`);
  return packr.pack(full);
}

const binHeader = (n: number) => (n < 256 ? 2 : n < 65536 ? 3 : 5);

function writeBinHeader(out: Buffer, at: number, n: number): void {
  if (n < 256) {
    out[at] = 0xc4;
    out[at + 1] = n;
  } else if (n < 65536) {
    out[at] = 0xc5;
    out.writeUInt16BE(n, at + 1);
  } else {
    out[at] = 0xc6;
    out.writeUInt32BE(n, at + 1);
  }
}

/** Where the empty `data` bin of a probe frame sits (msgpackr writes it as c4 00; only `v` follows it). */
function emptyBinAt(probe: Buffer): number {
  const at = probe.lastIndexOf(0xc4);
  if (at < 0 || probe[at + 1] !== 0) throw new ProtocolError('ring-data probe has no empty data field', 'encodeRingData');
  return at;
}

/**
 * A ring-data frame whose tensor bytes start at a multiple of 4 (the receiver gets the frame
 * in a buffer of its own, so it can view them as a Float32Array without a copy), followed by
 * `spare` unused bytes (room for the frame's seal), in a buffer from `alloc`. The fields are encoded (and checked)
 * around an empty `data`, and the tensor bytes copied once into the one buffer: a frame
 * costs one allocation and one copy of its data.
 */
export function encodeRingData(msg: Omit<Outgoing<'ring-data'>, 'pad'>, spare = 0, alloc: (bytes: number) => Buffer = Buffer.allocUnsafe): Buffer {
  // Field order is the encoding order: the pad goes before the data.
  const { data, ...head } = msg;
  const n = data.byteLength;
  const unpadded = encodeMessage({ ...head, pad: '', data: new Uint8Array(0) });
  const pad = ' '.repeat((4 - ((emptyBinAt(unpadded) + binHeader(n)) % 4)) % 4);
  const probe = pad ? encodeMessage({ ...head, pad, data: new Uint8Array(0) }) : unpadded;
  const at = emptyBinAt(probe);
  const offset = at + binHeader(n);
  const tail = probe.subarray(at + 2);
  const out = alloc(offset + n + tail.byteLength + spare);
  probe.copy(out, 0, 0, at);
  writeBinHeader(out, at, n);
  out.set(data, offset);
  tail.copy(out, offset + n);
  return out;
}

function issueText(err: z.ZodError): string {
  return err.issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`).join('; ');
}

/**
 * Decodes one frame and validates it: a msgpack map with a known type, the supported
 * version, a type this side accepts now, and fields matching the schema. Throws a
 * ProtocolError that says what was wrong and where.
 */
export function decodeMessage<T extends MessageType>(frame: Uint8Array, accept: readonly T[], from: string): Message<T> {
  if (frame.byteLength === 0) throw new ProtocolError('empty frame', from);
  let raw: unknown;
  try {
    raw = packr.unpack(frame);
  } catch (err) {
    throw new ProtocolError(`malformed msgpack (${(err as Error).message.slice(0, 200)})`, from);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array || raw instanceof Map) {
    throw new ProtocolError(`frame is not a msgpack map (${raw === null ? 'null' : Array.isArray(raw) ? 'array' : typeof raw})`, from);
  }
  const { t, v } = raw as { t?: unknown; v?: unknown };
  if (typeof t !== 'string') throw new ProtocolError('message has no type (field t)', from);
  const type = t.slice(0, 64);
  if (!Object.hasOwn(MESSAGES, t)) throw new ProtocolError(`unknown message type '${type}'`, from);
  const known = t as MessageType;
  if (v !== PROTOCOL_VERSIONS[known]) throw new ProtocolError(`message ${known} has version ${String(v).slice(0, 20)}, this side speaks ${PROTOCOL_VERSIONS[known]}`, from);
  if (!(accept as readonly string[]).includes(known)) throw new ProtocolError(`message ${known} is not expected here`, from);
  const parsed = MESSAGES[known].safeParse(raw);
  if (!parsed.success) throw new ProtocolError(`message ${known} is invalid: ${issueText(parsed.error)}`, from);
  return parsed.data as Message<T>;
}

/** The bytes of a typed array as a Uint8Array view (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

type TypedCtor<A> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): A; new (length: number): A; BYTES_PER_ELEMENT: number };

/** A typed array over received bytes; copies once when the bytes are not aligned for it. */
export function typedView<A extends Float32Array | Int32Array | Uint16Array>(b: Uint8Array, Ctor: TypedCtor<A>, what: string): A {
  const size = Ctor.BYTES_PER_ELEMENT;
  if (b.byteLength % size !== 0) throw new ProtocolError(`${b.byteLength} bytes are not whole ${size}-byte values`, what);
  if (b.byteOffset % size === 0) return new Ctor(b.buffer, b.byteOffset, b.byteLength / size);
  const out = new Ctor(b.byteLength / size);
  new Uint8Array(out.buffer).set(b);
  return out;
}
