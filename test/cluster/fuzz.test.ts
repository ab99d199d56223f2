import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { newNonce } from '../../src/cluster/auth.js';
import { connectHandshake, rejections } from '../../src/cluster/channel.js';
import { encodeMessage, MESSAGES, type Outgoing } from '../../src/cluster/protocol.js';
import { Random } from '../../src/data/random.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { events, memoryLogger, runCluster, SECRET, stepLines, tinyConfig, type StepLine } from './support.js';
import { tempDir } from '../support/tmp.js';

const MAX_PAYLOAD = 1024 * 1024;

/** Sends one frame on a fresh connection and waits for the server to hang up (its close code). */
function fuzzOnce(url: string, frame: Buffer | string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`the server did not disconnect after a fuzz frame of ${frame.length} bytes`));
    }, 30_000);
    ws.on('error', () => undefined);
    ws.once('message', () => ws.send(frame, { binary: typeof frame !== 'string' }));
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Valid frames of every kind, to mutate. */
function validFrames(rng: Random): Buffer[] {
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));
  const msgs: Outgoing[] = [
    { t: 'auth', identity: 'fuzzer', gen: 0, nonce: newNonce(), proof: newNonce() },
    { t: 'auth', identity: 'w1', gen: 1, nonce: newNonce(), proof: newNonce() },
    { t: 'ready', peer: { host: '127.0.0.1', port: 4000 }, manifest: [{ name: 'head.weight', shape: [16, 40] }], checksum: 'a'.repeat(64), dataKey: 'k', windows: 299, adapter: 'x', pid: 1 },
    { t: 'heartbeat', seq: 3 },
    { t: 'reduced', step: 1, attempt: 1, next: 2.5, contrastive: null, rows: 8 },
    { t: 'applied', step: 1, attempt: 1, gradNorm: 0.5, checksum: null },
    { t: 'state-part', request: 1, name: 'head.weight', kind: 'param', offset: 0, total: 640, data: bytes(64) },
    { t: 'ring-data', gen: 1, step: 1, attempt: 1, op: 1, round: 0, data: bytes(256) },
    { t: 'step', step: 1, attempt: 1, gen: 1, epoch: 0, position: 0, lr: 1e-3, maxGradNorm: 1, windows: bytes(64), assignment: bytes(32), checksum: false },
  ];
  return msgs.map((m) => encodeMessage(m));
}

function mutate(frame: Buffer, rng: Random): Buffer {
  const out = Buffer.from(frame);
  switch (rng.int(5)) {
    case 0: // flip bytes
      for (let k = 1 + rng.int(8); k > 0; k--) out[rng.int(out.length)] ^= 1 + rng.int(255);
      return out;
    case 1: // truncate
      return out.subarray(0, rng.int(out.length));
    case 2: // trailing garbage
      return Buffer.concat([out, Buffer.from(Array.from({ length: 1 + rng.int(64) }, () => rng.int(256)))]);
    case 3: { // duplicate a slice in place
      const a = rng.int(out.length);
      const b = Math.min(out.length, a + 1 + rng.int(32));
      return Buffer.concat([out.subarray(0, b), out.subarray(a, b), out.subarray(b)]);
    }
    default: // one byte set to a msgpack marker
      out[rng.int(out.length)] = rng.pick([0xc1, 0xc4, 0xc5, 0xc6, 0xd4, 0xd8, 0xde, 0xdf, 0xdc, 0xdd, 0xc7, 0xc9, 0xff, 0x00]);
      return out;
  }
}

/** Random msgpack values, mostly maps shaped like messages with wrong types, versions or fields. */
function randomValue(rng: Random, depth = 0): unknown {
  const types = Object.keys(MESSAGES);
  switch (rng.int(depth > 2 ? 4 : 7)) {
    case 0: return rng.int(1 << 30) - (1 << 29);
    case 1: return rng.next() * 1e6;
    case 2: return rng.pick(['', 'x'.repeat(rng.int(100)), 'auth', '__proto__', 'constructor']);
    case 3: return rng.chance(0.5) ? null : Buffer.from(Array.from({ length: rng.int(40) }, () => rng.int(256)));
    case 4: return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = { t: rng.chance(0.8) ? rng.pick(types) : randomValue(rng, depth + 1), v: rng.pick([1, 2, 0, '1', null, 1.5]) };
      for (let k = rng.int(6); k > 0; k--) {
        // defineProperty: an own '__proto__' key, as a hostile peer can send.
        Object.defineProperty(o, rng.pick(['step', 'gen', 'data', 'nonce', 'proof', 'identity', 'request', 'extra', '__proto__']), { value: randomValue(rng, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
  }
}

interface Campaign {
  sent: number;
  codes: Map<number, number>;
}

/** Thousands of random and mutated frames, 16 connections at a time; `progress.done` counts answered ones. */
async function campaign(url: string, frames: (Buffer | string)[], progress: { done: number; total: number }): Promise<Campaign> {
  const codes = new Map<number, number>();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < frames.length) {
      const code = await fuzzOnce(url, frames[next++]);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      progress.done++;
    }
  }));
  return { sent: frames.length, codes };
}

function fuzzFrames(rng: Random, counts: { random: number; msgpack: number; mutated: number }): (Buffer | string)[] {
  const valid = validFrames(rng);
  const frames: (Buffer | string)[] = [];
  for (let i = 0; i < counts.random; i++) frames.push(Buffer.from(Array.from({ length: rng.chance(0.1) ? rng.int(4096) : rng.int(200) }, () => rng.int(256))));
  for (let i = 0; i < counts.msgpack; i++) frames.push(pack(randomValue(rng)));
  for (let i = 0; i < counts.mutated; i++) frames.push(mutate(rng.pick(valid), rng));
  frames.push(...valid, Buffer.alloc(0), 'a text frame', '{"t":"auth","v":1}');
  for (let i = 0; i < 3; i++) frames.push(Buffer.alloc(MAX_PAYLOAD + 1 + rng.int(1000), 0x90));
  return new Random(7, 'order').shuffle(frames);
}

/**
 * Random and mutated frames at the coordinator's port and at a worker's ring port while a
 * 2-worker run trains: every frame is rejected with a logged reason and its sender
 * disconnected, and the run ends bit-for-bit where the same run without them ends.
 */
describe('fuzzing the coordinator and a ring port during a run', () => {
  const root = tempDir('panther-fuzz');
  const cluster = { maxPayload: MAX_PAYLOAD, bucketBytes: MAX_PAYLOAD / 4 };

  it('rejects and logs every bad frame; the run result is unchanged', async () => {
    const cleanConfig = tinyConfig(root, 'clean', { cluster });
    await runCluster(cleanConfig, 2);

    const config = tinyConfig(root, 'fuzzed', { cluster });
    const rng = new Random(42, 'fuzz');
    const atCoordinator = fuzzFrames(rng, { random: 1500, msgpack: 600, mutated: 1200 });
    const atRing = fuzzFrames(rng, { random: 400, msgpack: 200, mutated: 400 });
    const before = rejections.count;
    let fuzzing: Promise<[Campaign, Campaign, string[]]> | null = null;
    const progress = { done: 0, total: atCoordinator.length + atRing.length };
    const { log } = memoryLogger();
    const run = await runCluster(config, 2, {
      hooks: (ctx) => ({
        onStepStart: async ({ step, attempt }) => {
          if (step === 2 && attempt === 1) {
            const worker = ctx.coordinator.pool.live()[0].ready.peer;
            const ringUrl = `ws://${worker.host}:${worker.port}`;
            // Holders of the secret who are not the expected neighbour: a stale generation, a future one sending data early.
            const intruders = async () => {
              const out: string[] = [];
              for (const gen of [0, 1, 7]) {
                try {
                  const { channel } = await connectHandshake(ringUrl, { purpose: 'ring', identity: 'intruder', gen, secret: SECRET, maxPayload: MAX_PAYLOAD, log, label: 'intruder', accept: [] });
                  const closed = new Promise<string>((r) => channel.onClose((code, reason) => r(`${code} ${reason}`)));
                  channel.send({ t: 'ring-data', gen, step: 2, attempt: 1, op: 1, round: 0, data: new Uint8Array(64) });
                  out.push(`accepted then ${await closed}`);
                } catch (err) {
                  out.push((err as Error).message);
                }
              }
              return out;
            };
            fuzzing = Promise.all([campaign(ctx.url, atCoordinator, progress), campaign(ringUrl, atRing, progress), intruders()]);
            fuzzing.catch(() => undefined);
          }
          // Spread the fuzzing over steps 2-14 (each step waits for its share), and end it before step 15.
          if (step > 2 && step <= 15 && attempt === 1) {
            while (fuzzing && progress.done < (progress.total * (step - 2)) / 13) await new Promise((r) => setTimeout(r, 20));
            if (step === 15) await fuzzing;
          }
        },
      }),
    });
    const [coord, ring, intruded] = await fuzzing!;

    // Every connection was closed by the listener: violations (4002), failed authentication
    // (4003), refused ring connections (4004), oversized frames (1009).
    const closedBy = (c: Campaign) => [...c.codes].filter(([code]) => [4002, 4003, 4004, 1009].includes(code)).reduce((s, [, n]) => s + n, 0);
    expect(closedBy(coord), JSON.stringify([...coord.codes])).toBe(coord.sent);
    expect(closedBy(ring), JSON.stringify([...ring.codes])).toBe(ring.sent);
    expect(coord.sent).toBeGreaterThan(3000);
    // Each was rejected once with its reason in the coordinator's log.
    expect(rejections.count - before).toBe(coord.sent);
    const warnings = run.logs.filter((l) => l.msg === 'rejected frame; disconnecting the sender' || String(l.msg).startsWith('authentication failed'));
    expect(warnings.length).toBe(coord.sent);
    const reasons = new Set(warnings.map((w) => String(w.reason ?? 'authentication failed').replace(/\d+/g, 'N').slice(0, 40)));
    expect(reasons.size).toBeGreaterThan(8);
    for (const r of ['malformed msgpack', 'unknown message type', 'frame larger than maxPayload', 'text frame']) {
      expect([...warnings].some((w) => String(w.reason ?? '').includes(r)), r).toBe(true);
    }
    // ... and in the ring port's worker log.
    const fuzzedWorker = run.workers.find((w) => readFileSync(w.log!, 'utf8').includes('ring connection refused'))!;
    const workerLog = readFileSync(fuzzedWorker.log!, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const ringRejections = workerLog.filter((l) => l.msg === 'rejected frame; disconnecting the sender' || String(l.msg).startsWith('authentication failed'));
    expect(ringRejections.length).toBe(ring.sent + 1);
    expect(intruded[0]).toMatch(/rejected by w\d: ring generation 0 is over/);
    expect(intruded[1]).toMatch(/rejected by w\d: ring generation 1 is over or already linked/);
    expect(intruded[2]).toMatch(/^accepted then 4002 .*message ring-data is not expected here/);

    // The run did not notice: no worker lost, no step redone, same bytes as without fuzzing.
    expect(run.summary.lost).toEqual([]);
    expect(run.summary.discardedAttempts).toBe(0);
    expect(events(config.train.checkpointDir).filter((e) => e.kind === 'commit')).toHaveLength(20);
    const strip = (l: StepLine) => ({ ...l, eventsPerSecond: 0 });
    expect(stepLines(config.train.checkpointDir).map(strip)).toEqual(stepLines(cleanConfig.train.checkpointDir).map(strip));
    const a = readCheckpoint(join(cleanConfig.train.checkpointDir, 'last.safetensors'));
    const b = readCheckpoint(join(config.train.checkpointDir, 'last.safetensors'));
    for (const [name, t] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
    process.stderr.write(`fuzz: ${coord.sent} frames at the coordinator, ${ring.sent} at a ring port; close codes ${JSON.stringify([...coord.codes])} / ${JSON.stringify([...ring.codes])}\n`);
  }, 600_000);
});
