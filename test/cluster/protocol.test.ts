import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { clientProof, proofMatches, readSecret, serverProof, type ProofContext } from '../../src/cluster/auth.js';
import { ClusterSchema, workerSlots } from '../../src/cluster/config.js';
import { bytesOf, decodeMessage, encodeMessage, encodeRingData, MESSAGES, PROTOCOL_VERSIONS, typedView } from '../../src/cluster/protocol.js';
import { parseClusterConfig } from '../../src/config/load.js';

describe('cluster protocol', () => {
  it('round-trips every message type, tensors as raw little-endian bytes', () => {
    const grads = Float32Array.of(1.5, -2.25, 3e-8, 0);
    const frame = encodeMessage({ t: 'ring-data', gen: 3, step: 7, attempt: 2, op: 1, round: 0, data: bytesOf(grads) });
    // The f32 bytes appear verbatim in the frame (no per-element encoding, no base64).
    expect(frame.includes(Buffer.from(grads.buffer))).toBe(true);
    const m = decodeMessage(frame, ['ring-data'], 'test');
    expect(m).toMatchObject({ t: 'ring-data', v: 1, gen: 3, step: 7, attempt: 2, op: 1, round: 0 });
    expect(Array.from(typedView(m.data, Float32Array, 'test'))).toEqual(Array.from(grads));
    expect(Object.keys(MESSAGES).length).toBeGreaterThan(20);
    // welcome is at version 2 (the set-up carries the coordinator's heartbeat timeout), auth at
    // 2 (the frames after it are sealed); the rest at 1.
    for (const t of Object.keys(MESSAGES)) expect(PROTOCOL_VERSIONS[t as keyof typeof MESSAGES]).toBe(t === 'welcome' || t === 'auth' ? 2 : 1);
    const old = pack({ t: 'welcome', v: 1, proof: new Uint8Array(32), workerId: 'w1', setup: {} });
    expect(() => decodeMessage(old, ['welcome'], 'test')).toThrow(/welcome has version 1, this side speaks 2/);
  });

  it('puts ring tensor bytes at a 4-byte boundary so they are read in place', () => {
    for (const step of [1, 196, 70_000]) {
      for (const n of [0, 12, 4096, 70_000]) {
        const frame = Buffer.from(encodeRingData({ t: 'ring-data', gen: 1, step, attempt: 1, op: 2, round: 1, data: new Uint8Array(n).fill(7) }));
        const m = decodeMessage(frame, ['ring-data'], 'test');
        expect(m.data.byteLength).toBe(n);
        expect((m.data.byteOffset - frame.byteOffset) % 4).toBe(0);
      }
    }
  });

  it('builds a ring frame in one buffer from the allocator, with spare room after it', () => {
    const data = bytesOf(Float32Array.from({ length: 5000 }, (_, i) => i / 7));
    const plain = encodeRingData({ t: 'ring-data', gen: 2, step: 9, attempt: 1, op: 3, round: 2, data });
    const sizes: number[] = [];
    const roomy = encodeRingData({ t: 'ring-data', gen: 2, step: 9, attempt: 1, op: 3, round: 2, data }, 16, (n) => {
      sizes.push(n);
      return Buffer.alloc(n, 0xee);
    });
    expect(sizes).toEqual([plain.byteLength + 16]);
    expect(roomy.subarray(0, plain.byteLength)).toEqual(plain);
    expect(roomy.subarray(plain.byteLength).every((b) => b === 0xee)).toBe(true);
    // The same bytes msgpackr writes for the whole message (the frame is spliced around the data).
    expect(plain.equals(encodeMessage({ t: 'ring-data', gen: 2, step: 9, attempt: 1, op: 3, round: 2, pad: decodeMessage(plain, ['ring-data'], 'test').pad, data }))).toBe(true);
    const m = decodeMessage(roomy.subarray(0, plain.byteLength), ['ring-data'], 'test');
    expect(Array.from(typedView(m.data, Float32Array, 'test'))).toEqual(Array.from(new Float32Array(data.buffer)));
  });

  const reject = (frame: Uint8Array, accept: Parameters<typeof decodeMessage>[1] = ['heartbeat', 'ring-data', 'state-part']) => {
    try {
      decodeMessage(frame, accept, 'peer 1.2.3.4');
    } catch (err) {
      expect((err as { code?: string }).code).toBe('E_PROTOCOL');
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('rejects malformed, unknown, wrong-version, unexpected and invalid messages with the reason', () => {
    expect(reject(new Uint8Array(0))).toMatch(/empty frame/);
    expect(reject(Uint8Array.of(0xc1))).toMatch(/not a msgpack map|malformed|no type/);
    expect(reject(Uint8Array.of(0x92, 0x01))).toMatch(/malformed msgpack/);
    expect(reject(pack([1, 2]))).toMatch(/not a msgpack map \(array\)/);
    expect(reject(pack({ v: 1 }))).toMatch(/no type/);
    expect(reject(pack({ t: 'launch-missiles', v: 1 }))).toMatch(/unknown message type 'launch-missiles'/);
    expect(reject(pack({ t: 'heartbeat', v: 2, seq: 1 }))).toMatch(/heartbeat has version 2, this side speaks 1/);
    expect(reject(pack({ t: 'shutdown', v: 1, reason: 'x' }))).toMatch(/shutdown is not expected here/);
    expect(reject(pack({ t: 'heartbeat', v: 1, seq: -1 }))).toMatch(/heartbeat is invalid: seq/);
    expect(reject(pack({ t: 'heartbeat', v: 1, seq: 1, extra: true }))).toMatch(/heartbeat is invalid/);
    expect(reject(pack({ t: 'ring-data', v: 1, gen: 1, step: 1, attempt: 1, op: 0, round: 0, data: 'AAAA' }))).toMatch(/data: must be binary/);
    expect(reject(pack({ t: 'state-part', v: 1, request: 1, name: 'x', kind: 'param', offset: 0, total: 1, data: Buffer.alloc(3) }))).toMatch(/whole f32 values/);
    expect(() => encodeMessage({ t: 'heartbeat', seq: 1.5 })).toThrow(/outgoing message does not match its schema/);
  });
});

describe('cluster authentication', () => {
  const ctx: ProofContext = { purpose: 'control', server: 'coordinator', client: 'w1', gen: 0, serverNonce: Buffer.alloc(32, 1), clientNonce: Buffer.alloc(32, 2) };
  const secret = 'correct horse battery staple';

  it('binds proofs to the secret, both nonces, the purpose, the identities and the generation', () => {
    const p = clientProof(secret, ctx);
    expect(proofMatches(p, clientProof(secret, { ...ctx }))).toBe(true);
    for (const other of [
      clientProof('another secret of some length', ctx),
      clientProof(secret, { ...ctx, serverNonce: Buffer.alloc(32, 3) }),
      clientProof(secret, { ...ctx, clientNonce: Buffer.alloc(32, 3) }),
      clientProof(secret, { ...ctx, purpose: 'ring' }),
      clientProof(secret, { ...ctx, client: 'w2' }),
      clientProof(secret, { ...ctx, gen: 1 }),
      serverProof(secret, ctx),
    ]) expect(proofMatches(p, other)).toBe(false);
    expect(proofMatches(p, p.subarray(0, 16))).toBe(false);
  });

  it('reads the secret from the named environment variable and says what to do when it is missing', () => {
    expect(readSecret('S', { S: 'sixteen-chars-ok' })).toBe('sixteen-chars-ok');
    expect(() => readSecret('S', {})).toThrow(/export S=/);
    expect(() => readSecret('S', { S: 'short' })).toThrow(/at least 16/);
  });
});

describe('cluster section of cluster.yaml', () => {
  it('defaults to loopback, no workers (single process), secret by environment variable', () => {
    const c = ClusterSchema.parse(undefined);
    expect(c.coordinator).toEqual({ host: '127.0.0.1', port: 7420 });
    expect(c.workers).toBeUndefined();
    expect(workerSlots(c)).toEqual([]);
    expect(c.secretEnv).toBe('PANTHER_CLUSTER_SECRET');
    expect(workerSlots(ClusterSchema.parse({ workers: 3 }))).toHaveLength(3);
    expect(workerSlots(ClusterSchema.parse({ workers: [{ adapter: 'llvmpipe' }, { backend: 'vulkan', name: 'gpu1' }] }))[0]).toEqual({ adapter: 'llvmpipe' });
  });

  it('names the file, line and field of a bad value', () => {
    const yaml = ['cluster:', '  workers: 0', '  heartbeat: { intervalMs: 1000, timeoutMs: 1500 }', '  secret: hunter2', ''].join('\n');
    let message = '';
    try {
      parseClusterConfig(yaml, 'c.yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/c\.yaml:2: cluster\.workers/);
    expect(message).toMatch(/cluster\.heartbeat: timeoutMs must exceed two heartbeat intervals/);
    // The secret itself has no place in the file.
    expect(message).toMatch(/c\.yaml:\d+: cluster: Unrecognized key: "secret"/);
  });
});
