import type { Logger } from 'pino';
import { PantherError } from '../errors.js';
import { acceptHandshake, Channel, CLOSE, connectHandshake, listen, type Listener } from './channel.js';
import { bytesOf, ProtocolError, typedView, type Message } from './protocol.js';

/**
 * The ring between workers: every worker listens on a port of its own; for each ring
 * generation it receives only from its left neighbour and sends only to its right one,
 * both connections authenticated with the shared secret. Each worker opens the connection
 * it receives on (to its left neighbour's port), so tensor frames travel server to client:
 * WebSocket masks only client-to-server frames, and masking in JavaScript (without the
 * bufferutil addon) costs more than all the rest of an all-reduce. Messages carry (step,
 * attempt, op, round) so several buckets can be in flight at once.
 */

export interface RingMember {
  id: string;
  host: string;
  port: number;
}

export interface RingTag {
  step: number;
  attempt: number;
  /** Which collective of the step (0: the contrastive all-gather, 1..: gradient buckets). */
  op: number;
}

/** Thrown when the ring is torn down under a collective (abort, lost neighbour). */
export class RingAborted extends PantherError {
  constructor(reason: string, where: string) {
    super('E_CLUSTER', reason, where);
    this.name = 'RingAborted';
  }
}

interface Pending {
  channel: Channel;
  gen: number;
  identity: string;
}

/** The ring port of one worker: accepts its right neighbour (authenticated), for the current or a coming generation. */
export class PeerServer {
  private listener: Listener | null = null;
  private pending: Pending[] = [];
  private waiters: { gen: number; identity: string; resolve: (c: Channel) => void; reject: (e: Error) => void }[] = [];
  /** Generations below this are over or already linked: their connections are refused. */
  minGen = 0;

  constructor(private readonly o: { host: string; identity: string; secret: string; maxPayload: number; log: Logger; handshakeMs?: number; tls?: { cert: string; key: string } }) {}

  /** Whether neighbours reach this port over TLS. */
  get tls(): boolean {
    return this.o.tls !== undefined;
  }

  get port(): number {
    if (!this.listener) throw new PantherError('E_CLUSTER', 'the ring port is not listening', 'PeerServer');
    return this.listener.port;
  }

  async start(): Promise<number> {
    this.listener = await listen({ host: this.o.host, port: 0, maxPayload: this.o.maxPayload, tls: this.o.tls });
    this.listener.wss.on('connection', (ws, req) => {
      void this.admit(ws, `ring peer ${req.socket.remoteAddress}:${req.socket.remotePort}`);
    });
    return this.listener.port;
  }

  private async admit(ws: import('ws').WebSocket, label: string): Promise<void> {
    const accepted = await acceptHandshake(ws, {
      purpose: 'ring', identity: this.o.identity, secret: this.o.secret, log: this.o.log, label,
      accept: [], timeoutMs: this.o.handshakeMs ?? 10_000,
    });
    if (!accepted) return;
    const { channel, identity, gen } = accepted;
    const refuse = (reason: string) => {
      this.o.log.warn({ peer: channel.label, gen, reason }, 'ring connection refused');
      channel.send({ t: 'rejected', code: 'E_CLUSTER', reason });
      channel.close(CLOSE.rejected, reason);
    };
    if (gen < this.minGen) return refuse(`ring generation ${gen} is over or already linked (next: ${this.minGen})`);
    const waiter = this.waiters.find((w) => w.gen === gen);
    if (waiter && waiter.identity !== identity) return refuse(`generation ${gen} expects ${waiter.identity} as the right neighbour, not ${identity}`);
    if (this.pending.some((p) => p.gen === gen && p.identity === identity)) return refuse(`already connected for generation ${gen}`);
    channel.send({ t: 'peer-welcome', proof: accepted.proof });
    if (waiter) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve(channel);
      return;
    }
    this.pending.push({ channel, gen, identity });
    channel.onClose(() => { this.pending = this.pending.filter((p) => p.channel !== channel); });
    // Bounded: authenticated peers only, but never hold more than a few.
    while (this.pending.length > 8) this.pending.shift()!.channel.close(CLOSE.rejected, 'too many pending ring connections');
  }

  /**
   * The right neighbour's connection for generation `gen` (it may already be waiting).
   * Afterwards the generation is closed: later connections for it are refused.
   */
  takeRight(gen: number, identity: string, timeoutMs: number): Promise<Channel> {
    this.minGen = Math.max(this.minGen, gen);
    for (const p of this.pending.filter((x) => x.gen < gen || (x.gen === gen && x.identity !== identity))) {
      p.channel.close(CLOSE.rejected, `not the right neighbour of generation ${gen}`);
    }
    this.pending = this.pending.filter((x) => x.gen > gen || (x.gen === gen && x.identity === identity));
    const found = this.pending.find((p) => p.gen === gen);
    if (found) {
      this.pending.splice(this.pending.indexOf(found), 1);
      this.minGen = gen + 1;
      return Promise.resolve(found.channel);
    }
    return new Promise((resolve, reject) => {
      const w = {
        gen, identity, reject,
        resolve: (c: Channel) => {
          this.minGen = Math.max(this.minGen, gen + 1);
          resolve(c);
        },
      };
      this.waiters.push(w);
      setTimeout(() => {
        if (!this.waiters.includes(w)) return;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new RingAborted(`right neighbour ${identity} did not connect within ${timeoutMs} ms (generation ${gen})`, 'ring'));
      }, timeoutMs).unref();
    });
  }

  /** Fails the waits for generations before `gen`. */
  cancelBefore(gen: number, reason: string): void {
    for (const w of this.waiters.filter((x) => x.gen < gen)) w.reject(new RingAborted(reason, 'ring'));
    this.waiters = this.waiters.filter((x) => x.gen >= gen);
  }

  async close(): Promise<void> {
    for (const w of this.waiters) w.reject(new RingAborted('ring port closed', 'ring'));
    this.waiters = [];
    for (const p of this.pending) p.channel.terminate();
    this.pending = [];
    await this.listener?.close();
    this.listener = null;
  }
}

type RingData = Message<'ring-data'>;

export interface RingLinkOptions {
  gen: number;
  rank: number;
  members: readonly RingMember[];
  self: string;
  secret: string;
  maxPayload: number;
  log: Logger;
  server: PeerServer;
  /** Certificates to trust for neighbours' TLS ring ports (self-signed ones); the server's tls decides the scheme. */
  ca?: string | Buffer;
  timeoutMs?: number;
  /** Told when a neighbour breaks the protocol or disconnects while the ring is in use. */
  onBroken?: (peer: string, reason: string) => void;
}

const key = (s: number, a: number, op: number, round: number) => `${s}/${a}/${op}/${round}`;

/** One worker's place in one ring generation: a channel to the right (accepted), one from the left (opened). */
export class RingLink {
  readonly size: number;
  private right: Channel | null = null;
  private left: Channel | null = null;
  private readonly stash = new Map<string, RingData>();
  private stashBytes = 0;
  private readonly waits = new Map<string, { resolve: (m: RingData) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;
  private closing = false;
  bytesSent = 0;

  private constructor(private readonly o: RingLinkOptions) {
    this.size = o.members.length;
  }

  get gen(): number {
    return this.o.gen;
  }

  get rank(): number {
    return this.o.rank;
  }

  /** Bytes queued on the connection to the right neighbour. */
  get bufferedRight(): number {
    return this.right?.bufferedAmount ?? 0;
  }

  get leftId(): string {
    return this.o.members[(this.o.rank - 1 + this.size) % this.size].id;
  }

  get rightId(): string {
    return this.o.members[(this.o.rank + 1) % this.size].id;
  }

  /** Connects to the left neighbour (to receive) and takes the right one's connection (to send on). */
  static async open(o: RingLinkOptions): Promise<RingLink> {
    const link = new RingLink(o);
    if (link.size === 1) return link;
    const timeout = o.timeoutMs ?? 30_000;
    const left = o.members[(o.rank - 1 + link.size) % link.size];
    const rightPromise = o.server.takeRight(o.gen, link.rightId, timeout);
    try {
      const scheme = o.server.tls ? 'wss' : 'ws';
      const { channel } = await connectHandshake(`${scheme}://${left.host.includes(':') ? `[${left.host}]` : left.host}:${left.port}`, {
        purpose: 'ring', identity: o.self, gen: o.gen, secret: o.secret, server: left.id, maxPayload: o.maxPayload, ca: o.ca,
        log: o.log, label: `ring left ${left.id}`, accept: ['ring-data'], timeoutMs: timeout,
      });
      link.left = channel;
      link.right = await rightPromise;
    } catch (err) {
      rightPromise.then((c) => c.terminate(), () => undefined);
      link.close();
      throw err;
    }
    link.right.label = `ring right ${link.rightId}`;
    link.left.onMessage((m) => link.receive(m as RingData));
    for (const [side, ch, peer] of [['left', link.left, link.leftId], ['right', link.right, link.rightId]] as const) {
      ch.onClose((code, reason) => {
        if (!link.closing) link.broken(peer, `${side} neighbour ${peer} disconnected (${code}${reason ? `: ${reason}` : ''})`);
      });
    }
    return link;
  }

  private broken(peer: string, reason: string): void {
    if (this.failure) return;
    this.failure = new RingAborted(reason, `ring generation ${this.gen}`);
    for (const w of this.waits.values()) w.reject(this.failure);
    this.waits.clear();
    this.o.onBroken?.(peer, reason);
  }

  private receive(m: RingData): void {
    if (m.gen !== this.gen) throw new ProtocolError(`ring data for generation ${m.gen} on the link of generation ${this.gen}`, this.left!.label);
    const k = key(m.step, m.attempt, m.op, m.round);
    const w = this.waits.get(k);
    if (w) {
      this.waits.delete(k);
      w.resolve(m);
      return;
    }
    if (this.stash.has(k)) throw new ProtocolError(`duplicate ring data ${k}`, this.left!.label);
    this.stash.set(k, m);
    this.stashBytes += m.data.byteLength;
    if (this.stashBytes > 8 * this.o.maxPayload) throw new ProtocolError(`more than ${8 * this.o.maxPayload} bytes of ring data ahead of use`, this.left!.label);
  }

  /** Fault injection for tests: drops the connection to the right neighbour, as a network failure would. */
  dropRight(): void {
    this.right?.terminate();
  }

  /** Fault injection for tests: the next send of this (step, op, round) is cut to 12 bytes. */
  truncateNext: { step: number; op: number; round: number } | null = null;

  send(tag: RingTag, round: number, data: Uint8Array): void {
    if (this.failure) throw this.failure;
    const t = this.truncateNext;
    if (t && t.step === tag.step && t.op === tag.op && t.round === round) {
      this.truncateNext = null;
      data = data.subarray(0, 12);
    }
    this.right!.sendRingData({ t: 'ring-data', gen: this.gen, step: tag.step, attempt: tag.attempt, op: tag.op, round, data });
    this.bytesSent += data.byteLength;
  }

  /** The left neighbour's data for (tag, round), which must be exactly `expectBytes` long. */
  async recv(tag: RingTag, round: number, expectBytes: number): Promise<Uint8Array> {
    if (this.failure) throw this.failure;
    const k = key(tag.step, tag.attempt, tag.op, round);
    let m = this.stash.get(k);
    if (m) {
      this.stash.delete(k);
      this.stashBytes -= m.data.byteLength;
    } else {
      m = await new Promise<RingData>((resolve, reject) => this.waits.set(k, { resolve, reject }));
    }
    if (m.data.byteLength !== expectBytes) {
      const reason = `ring data ${k} has ${m.data.byteLength} bytes, expected ${expectBytes}`;
      this.left!.reject(reason);
      this.broken(this.leftId, reason);
      throw this.failure!;
    }
    return m.data;
  }

  /** Fails every collective in flight (the coordinator aborted the attempt). */
  abort(reason: string): void {
    if (this.failure) return;
    this.failure = new RingAborted(reason, `ring generation ${this.gen}`);
    for (const w of this.waits.values()) w.reject(this.failure);
    this.waits.clear();
  }

  close(): void {
    this.closing = true;
    this.abort('ring closed');
    this.right?.close(CLOSE.normal, 'ring generation over');
    this.left?.close(CLOSE.normal, 'ring generation over');
    this.stash.clear();
  }
}

/** [start, end) of chunk c when n elements are cut into `parts` nearly equal chunks. */
export function chunkRange(n: number, parts: number, c: number): [number, number] {
  return [Math.floor((c * n) / parts), Math.floor(((c + 1) * n) / parts)];
}

/**
 * data[offset + i] = partial[i] + data[offset + i]: the incoming partial sum comes first, so
 * chunk c is summed as x_c + x_c+1 + ... in ring order. (A function of its own, so it is
 * optimized apart from the async collective around it.)
 */
function addInto(data: Float32Array, offset: number, partial: Float32Array): void {
  for (let i = 0; i < partial.length; i++) data[offset + i] = partial[i] + data[offset + i];
}

/**
 * Sums `data` over the ring in place (reduce-scatter, then all-gather): each worker sends
 * and receives 2(N-1)/N of the buffer. The sum of chunk c always starts at worker c and
 * goes round the ring in rank order, so the result does not depend on timing, and the
 * all-gather copies the finished chunks, so every worker ends with the same bytes.
 */
export async function ringAllReduce(link: RingLink, data: Float32Array, tag: RingTag): Promise<void> {
  const N = link.size;
  if (N === 1) return;
  const r = link.rank;
  const mod = (x: number) => ((x % N) + N) % N;
  const range = (c: number) => chunkRange(data.length, N, c);
  for (let s = 0; s < N - 1; s++) {
    const [a0, a1] = range(mod(r - s));
    link.send(tag, s, bytesOf(data.subarray(a0, a1)));
    const c = mod(r - s - 1);
    const [b0, b1] = range(c);
    const got = typedView(await link.recv(tag, s, (b1 - b0) * 4), Float32Array, 'ring-data');
    addInto(data, b0, got);
  }
  for (let s = 0; s < N - 1; s++) {
    const [a0, a1] = range(mod(r + 1 - s));
    link.send(tag, N - 1 + s, bytesOf(data.subarray(a0, a1)));
    const [b0, b1] = range(mod(r - s));
    data.set(typedView(await link.recv(tag, N - 1 + s, (b1 - b0) * 4), Float32Array, 'ring-data'), b0);
  }
}

/**
 * Every worker's part, in rank order (parts may differ in length; `lengths` holds each
 * rank's element count, the same on every worker).
 */
export async function ringAllGather(link: RingLink, mine: Float32Array, lengths: readonly number[], tag: RingTag): Promise<Float32Array[]> {
  const N = link.size;
  const r = link.rank;
  if (lengths.length !== N) throw new PantherError('E_ARGUMENT', `${lengths.length} part lengths for a ring of ${N}`, 'ringAllGather');
  if (mine.length !== lengths[r]) throw new PantherError('E_SHAPE', `my part has ${mine.length} values, the plan says ${lengths[r]}`, 'ringAllGather');
  const parts: Float32Array[] = new Array(N);
  parts[r] = mine;
  const mod = (x: number) => ((x % N) + N) % N;
  for (let s = 0; s < N - 1; s++) {
    link.send(tag, s, bytesOf(parts[mod(r - s)]));
    const c = mod(r - s - 1);
    parts[c] = Float32Array.from(typedView(await link.recv(tag, s, lengths[c] * 4), Float32Array, 'ring-data'));
  }
  return parts;
}
