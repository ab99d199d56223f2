import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { gradientLayout } from '../../src/cluster/replica.js';
import { chunkRange, PeerServer, ringAllGather, ringAllReduce, RingLink } from '../../src/cluster/ring.js';
import { Random } from '../../src/data/random.js';

const SECRET = 'ring-test-secret-0123456789';
const log = pino({ level: 'silent' });

/** N ring members in this process, each with its own ring port on loopback (real sockets). */
async function ring(N: number, gen = 1): Promise<{ links: RingLink[]; servers: PeerServer[] }> {
  const servers = Array.from({ length: N }, (_, i) => new PeerServer({ host: '127.0.0.1', identity: `w${i}`, secret: SECRET, maxPayload: 64 << 20, log }));
  const ports = await Promise.all(servers.map((s) => s.start()));
  const members = ports.map((port, i) => ({ id: `w${i}`, host: '127.0.0.1', port }));
  const links = await Promise.all(servers.map((server, rank) => RingLink.open({ gen, rank, members, self: `w${rank}`, secret: SECRET, maxPayload: 64 << 20, log, server })));
  return { links, servers };
}

let open: { links: RingLink[]; servers: PeerServer[] }[] = [];
afterEach(async () => {
  for (const r of open) {
    for (const l of r.links) l.close();
    await Promise.all(r.servers.map((s) => s.close()));
  }
  open = [];
});

const f32 = (n: number, rng: Random) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 10 ** rng.int(6));

describe('ring all-reduce', () => {
  it.each([2, 3, 4, 5])('sums over %i members in a fixed order: every member gets the same bytes, whatever the timing', async (N) => {
    const r = await ring(N);
    open.push(r);
    const rng = new Random(N, 'allreduce');
    const n = 1000 + N * 37 + 3;
    const inputs = Array.from({ length: N }, () => f32(n, rng));
    // Reference: chunk c is summed from member c round the ring, in float32 at each hop.
    const expected = new Float32Array(n);
    for (let c = 0; c < N; c++) {
      const [a, b] = chunkRange(n, N, c);
      for (let i = a; i < b; i++) {
        let acc = inputs[c][i];
        for (let k = 1; k < N; k++) acc = Math.fround(inputs[(c + k) % N][i] + acc);
        expected[i] = acc;
      }
    }
    for (const trial of [0, 1]) {
      const data = inputs.map((x) => Float32Array.from(x));
      // Trial 1 starts the members at random times: the result must not change.
      await Promise.all(r.links.map(async (link, k) => {
        if (trial) await new Promise((res) => setTimeout(res, rng.int(30)));
        await ringAllReduce(link, data[k], { step: trial, attempt: 1, op: 0 });
      }));
      for (const d of data) expect(Buffer.from(d.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
  });

  it('runs several buckets at once over the same links', async () => {
    const r = await ring(3);
    open.push(r);
    const rng = new Random(1, 'buckets');
    const data = r.links.map(() => f32(5000, rng));
    const sum = Float32Array.from(data[0], (_, i) => data[0][i] + data[1][i] + data[2][i]);
    const layout = gradientLayout([1000, 1500, 700, 1800], 4000 * 4);
    // Parameters are never split; the 4 "has a gradient" flags are the last bucket.
    expect(layout.buckets.map((b) => [b.start, b.end])).toEqual([[0, 3200], [3200, 5000], [5000, 5004]]);
    await Promise.all(r.links.map((link, k) => Promise.all(layout.buckets.slice(0, 2).map(({ start, end }, op) => ringAllReduce(link, data[k].subarray(start, end), { step: 1, attempt: 1, op })))));
    for (const d of data) d.forEach((v, i) => expect(Math.abs(v - sum[i])).toBeLessThanOrEqual(1e-3 * Math.abs(sum[i]) + 1e-3));
    expect(Buffer.from(data[0].buffer).equals(Buffer.from(data[2].buffer))).toBe(true);
  });

  it('all-gathers parts of different lengths, empty ones included, in rank order', async () => {
    const r = await ring(4);
    open.push(r);
    const lengths = [6, 0, 9, 3];
    const parts = lengths.map((n, k) => Float32Array.from({ length: n }, (_, i) => k * 100 + i));
    const got = await Promise.all(r.links.map((link, k) => ringAllGather(link, parts[k], lengths, { step: 1, attempt: 1, op: 0 })));
    for (const g of got) expect(g.map((p) => Array.from(p))).toEqual(parts.map((p) => Array.from(p)));
  });

  it('fails the collective in flight when a neighbour goes away, and names it', async () => {
    const r = await ring(3);
    open.push(r);
    const broken: string[] = [];
    const data = new Float32Array(1000);
    const pending = ringAllReduce(r.links[1], data, { step: 1, attempt: 1, op: 0 });
    const rejected = expect(pending).rejects.toThrow(/left neighbour w0 disconnected|ring closed/);
    r.links[0].close();
    await rejected;
    void broken;
  });

  it('refuses a wrong secret and a stranger on the ring port', async () => {
    const server = new PeerServer({ host: '127.0.0.1', identity: 'w0', secret: SECRET, maxPayload: 1 << 20, log });
    const port = await server.start();
    const other = new PeerServer({ host: '127.0.0.1', identity: 'w1', secret: 'a-different-secret-0123456', maxPayload: 1 << 20, log });
    await other.start();
    const members = [{ id: 'w0', host: '127.0.0.1', port }, { id: 'w1', host: '127.0.0.1', port: other.port }];
    await expect(RingLink.open({ gen: 1, rank: 1, members, self: 'w1', secret: 'a-different-secret-0123456', maxPayload: 1 << 20, log, server: other, timeoutMs: 3000 }))
      .rejects.toThrow(/authentication failed: the shared secret does not match/);
    await server.close();
    await other.close();
  });
});
