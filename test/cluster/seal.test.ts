import { afterAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { frameSeal, TAG_BYTES, type ProofContext } from '../../src/cluster/auth.js';
import { acceptHandshake, connectHandshake, FramePool, listen, type Channel, type Listener } from '../../src/cluster/channel.js';
import type { Message } from '../../src/cluster/protocol.js';
import { memoryLogger, SECRET } from './support.js';

const ctx: ProofContext = { purpose: 'ring', server: 'w1', client: 'w2', gen: 3, serverNonce: Buffer.alloc(32, 1), clientNonce: Buffer.alloc(32, 2) };

describe('frame seal', () => {
  it('opens what the other end sealed, once and in order; any change fails', () => {
    const client = frameSeal(SECRET, 'client', ctx);
    const server = frameSeal(SECRET, 'server', ctx);
    const frames = [Buffer.from('first frame'), Buffer.alloc(0), Buffer.alloc(70_000, 7)];
    const sealed = frames.map((f) => client.seal(f));
    expect(sealed[0].byteLength).toBe(frames[0].byteLength + TAG_BYTES);
    // Out of order, then in order.
    expect(server.open(sealed[1])).toBeNull();
    sealed.forEach((s, i) => expect(server.open(s)).toEqual(frames[i]));
    // Replayed.
    expect(server.open(sealed[2])).toBeNull();
    // Altered, or sealed by a client of another connection, another secret or the other direction.
    const next = client.seal(Buffer.from('fourth'));
    const flipped = Buffer.from(next);
    flipped[2] ^= 1;
    expect(server.open(flipped)).toBeNull();
    expect(server.open(next.subarray(0, TAG_BYTES - 1))).toBeNull();
    expect(server.open(frameSeal(SECRET, 'client', { ...ctx, clientNonce: Buffer.alloc(32, 9) }).seal(Buffer.from('fourth')))).toBeNull();
    expect(server.open(frameSeal('another secret of some length', 'client', ctx).seal(Buffer.from('fourth')))).toBeNull();
    expect(server.open(frameSeal(SECRET, 'server', ctx).seal(Buffer.from('fourth')))).toBeNull();
    // A failed check consumes nothing: the genuine frame still opens.
    expect(server.open(next)).toEqual(Buffer.from('fourth'));
  });

  it('seals in place a frame built with room for its tag, the same tag as a copying seal', () => {
    const a = frameSeal(SECRET, 'client', ctx);
    const b = frameSeal(SECRET, 'client', ctx);
    const server = frameSeal(SECRET, 'server', ctx);
    for (const n of [0, 5, 70_000]) {
      const frame = Buffer.alloc(n, n % 251);
      const roomy = Buffer.alloc(n + TAG_BYTES);
      frame.copy(roomy);
      const sealed = a.sealInPlace(roomy);
      expect(sealed).toBe(roomy);
      expect(sealed).toEqual(b.seal(frame));
      expect(server.open(sealed)).toEqual(frame);
    }
    expect(() => a.sealInPlace(Buffer.alloc(TAG_BYTES - 1))).toThrow(/no room/);
  });
});

describe('frame pool', () => {
  it('hands a given-back buffer out again for the same size only, within its bound', () => {
    const pool = new FramePool(1024, 8192);
    const a = pool.take(4096);
    expect(a.byteLength).toBe(4096);
    pool.give(a);
    pool.give(a);
    expect(pool.pooledBytes).toBe(4096);
    expect(pool.take(2048)).not.toBe(a);
    expect(pool.take(4096)).toBe(a);
    expect(pool.take(4096)).not.toBe(a);
    // Small frames and views into other memory are not kept; nothing beyond the bound.
    pool.give(Buffer.allocUnsafeSlow(512));
    pool.give(Buffer.allocUnsafeSlow(8192).subarray(0, 4096));
    expect(pool.pooledBytes).toBe(0);
    pool.give(Buffer.allocUnsafeSlow(4096));
    pool.give(Buffer.allocUnsafeSlow(4096));
    pool.give(Buffer.allocUnsafeSlow(4096));
    expect(pool.pooledBytes).toBe(8192);
  });
});

describe('sealed connections', () => {
  let listener: Listener;
  const { log, lines } = memoryLogger();
  const received: Message[] = [];
  const closes: number[] = [];
  afterAll(async () => listener?.close());

  async function connect(): Promise<{ channel: Channel; raw: Buffer[] }> {
    const { channel } = await connectHandshake(listener.url, { purpose: 'ring', identity: 'w2', gen: 1, secret: SECRET, server: 'w1', maxPayload: 1 << 20, log, label: 'w1', accept: [] });
    channel.onClose((code) => closes.push(code));
    // Keep what goes on the wire, to replay and alter it below.
    const raw: Buffer[] = [];
    const send = channel.ws.send.bind(channel.ws);
    channel.ws.send = ((data: Buffer, opts: object) => {
      raw.push(Buffer.from(data));
      send(data, opts);
    }) as WebSocket['send'];
    return { channel, raw };
  }

  const waitFor = async (what: () => boolean) => {
    for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(what()).toBe(true);
  };

  it('delivers sealed frames; a replayed or altered one is rejected with the reason and the sender cut off', async () => {
    listener = await listen({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20 });
    listener.wss.on('connection', async (ws) => {
      const a = await acceptHandshake(ws, { purpose: 'ring', identity: 'w1', secret: SECRET, log, label: 'peer', accept: ['heartbeat'], timeoutMs: 5000 });
      if (!a) return;
      a.channel.onMessage((m) => received.push(m));
      a.channel.send({ t: 'peer-welcome', proof: a.proof });
    });

    const first = await connect();
    first.channel.send({ t: 'heartbeat', seq: 1 });
    first.channel.send({ t: 'heartbeat', seq: 2 });
    await waitFor(() => received.length === 2);
    expect(received.map((m) => (m as Message<'heartbeat'>).seq)).toEqual([1, 2]);
    // The bytes on the wire carry the tag.
    expect(first.raw[0].byteLength).toBeGreaterThan(TAG_BYTES);
    first.channel.ws.send(first.raw[1]);
    await waitFor(() => closes.length === 1);
    expect(closes[0]).toBe(4002);

    const second = await connect();
    second.channel.send({ t: 'heartbeat', seq: 3 });
    await waitFor(() => received.length === 3);
    expect(second.channel.send({ t: 'heartbeat', seq: 4 })).toBe(true);
    const altered = second.raw.at(-1)!;
    await waitFor(() => received.length === 4);
    const forged = Buffer.from(altered);
    forged[forged.byteLength - TAG_BYTES - 1] ^= 1;
    second.channel.ws.send(forged);
    await waitFor(() => closes.length === 2);
    expect(received).toHaveLength(4);
    const reasons = lines().filter((l) => l.msg === 'rejected frame; disconnecting the sender').map((l) => String(l.reason));
    expect(reasons).toHaveLength(2);
    for (const r of reasons) expect(r).toMatch(/frame authentication failed/);
  });
});
