import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { PantherError } from '../errors.js';
import { clientProof, frameSeal, newNonce, proofMatches, serverProof, TAG_BYTES, type FrameSeal, type ProofContext } from './auth.js';
import { decodeMessage, encodeMessage, encodeRingData, ProtocolError, type Message, type MessageType, type Outgoing } from './protocol.js';

/** Close codes we use (4000-4999 are for applications). */
export const CLOSE = { normal: 1000, violation: 4002, auth: 4003, rejected: 4004, evicted: 4005, shutdown: 4006 } as const;

/** Frames rejected by this process, for logs, tests and the fuzz report. */
export const rejections = { count: 0, reasons: new Map<string, number>() };

function countRejection(reason: string): void {
  rejections.count++;
  // Group by the reason's shape, not its numbers.
  const key = reason.replace(/\d+/g, 'N').slice(0, 120);
  rejections.reasons.set(key, (rejections.reasons.get(key) ?? 0) + 1);
}

export interface ChannelOptions {
  /** Who the other end is, for logs and errors. */
  label: string;
  log: Logger;
  accept: readonly MessageType[];
}

/**
 * Large send buffers kept for reuse, by exact size: a training step sends the same frame
 * sizes every time, and fresh buffers of megabytes each make V8 collect the whole heap
 * every few of them (external memory pressure). Bounded; small frames are not pooled.
 */
export class FramePool {
  private readonly free = new Map<number, Buffer[]>();
  private bytes = 0;

  constructor(readonly minBytes = 64 * 1024, readonly maxBytes = 64 * 1024 * 1024) {}

  get pooledBytes(): number {
    return this.bytes;
  }

  take(n: number): Buffer {
    const b = n >= this.minBytes ? this.free.get(n)?.pop() : undefined;
    if (!b) return Buffer.allocUnsafe(n);
    this.bytes -= n;
    return b;
  }

  /** Returns a buffer no one reads or writes any more. */
  give(b: Buffer): void {
    const n = b.byteLength;
    if (n < this.minBytes || b.byteOffset !== 0 || b.buffer.byteLength !== n || this.bytes + n > this.maxBytes) return;
    const list = this.free.get(n) ?? [];
    if (list.includes(b)) return;
    list.push(b);
    this.free.set(n, list);
    this.bytes += n;
  }
}

/**
 * One WebSocket with the protocol on top: typed sends, and receipt that decodes and
 * validates every frame against the types this side accepts right now. A frame that fails
 * is logged with its reason, answered with `rejected`, and the connection is closed; the
 * rest of the process is not affected.
 */
export class Channel {
  label: string;
  private accepting: readonly MessageType[];
  private handler: ((m: Message) => void) | null = null;
  private closeHandlers: ((code: number, reason: string) => void)[] = [];
  private violated = false;
  /** Set once the handshake has authenticated both ends: every frame is sealed and checked. */
  private sealed: FrameSeal | null = null;
  private readonly frames = new FramePool();
  closed = false;

  constructor(readonly ws: WebSocket, private readonly o: ChannelOptions) {
    this.label = o.label;
    this.accepting = o.accept;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.reject(`frame larger than maxPayload (${err.message})`, false);
      else if (err.code?.startsWith('WS_ERR')) this.reject(`invalid WebSocket frame (${err.message})`, false);
      else this.o.log.debug({ peer: this.label, err: err.message }, 'connection error');
    });
    ws.on('close', (code, reason) => {
      this.closed = true;
      const text = reason.toString();
      for (const h of this.closeHandlers.splice(0)) h(code, text);
    });
  }

  /** From now on frames are sealed on sending and must carry a valid tag on receipt. */
  protect(seal: FrameSeal): void {
    this.sealed = seal;
  }

  setAccept(types: readonly MessageType[]): void {
    this.accepting = types;
  }

  onMessage(handler: (m: Message) => void): void {
    this.handler = handler;
  }

  onClose(handler: (code: number, reason: string) => void): void {
    if (this.closed) handler(1006, 'already closed');
    else this.closeHandlers.push(handler);
  }

  /** Sends one message; false when the connection is already closed. */
  send(msg: Outgoing): boolean {
    return this.sendFrame(encodeMessage(msg));
  }

  /** Sends an encoded frame. */
  private sendFrame(frame: Buffer): boolean {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(this.sealed ? this.sealed.seal(frame) : frame, { binary: true });
    return true;
  }

  /**
   * Sends tensor bytes to a ring neighbour: encoded and sealed in one buffer, the data copied
   * once. The buffer comes back to the channel's pool once the socket has taken it, so the
   * same frames of every step reuse the same memory.
   */
  sendRingData(msg: Omit<Outgoing<'ring-data'>, 'pad'>): boolean {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    const frame = encodeRingData(msg, this.sealed ? TAG_BYTES : 0, (n) => this.frames.take(n));
    this.ws.send(this.sealed ? this.sealed.sealInPlace(frame) : frame, { binary: true }, () => this.frames.give(frame));
    return true;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  close(code: number = CLOSE.normal, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    // Close reasons are limited to 123 bytes.
    this.ws.close(code, Buffer.from(reason).subarray(0, 120).toString());
    // A peer that does not answer the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  terminate(): void {
    this.closed = true;
    this.ws.terminate();
  }

  /** Logs the reason, tells the peer, disconnects it. */
  reject(reason: string, tell = true): void {
    if (this.violated) return;
    this.violated = true;
    countRejection(reason);
    this.o.log.warn({ peer: this.label, reason }, 'rejected frame; disconnecting the sender');
    if (tell) this.send({ t: 'rejected', code: 'E_PROTOCOL', reason: reason.slice(0, 2000) });
    this.close(CLOSE.violation, reason);
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.violated || this.closed) return;
    if (!isBinary) return this.reject('text frame (the protocol is binary msgpack)');
    const frame = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    // A peer may always say why it is hanging up on us; unsealed, only that: a listener that
    // refused our proof has no key to seal with (and whoever could inject it could as well cut
    // the connection). Any other frame without a valid tag was altered, injected, replayed or
    // reordered.
    const opened = this.sealed ? this.sealed.open(frame) : frame;
    let msg: Message;
    try {
      msg = decodeMessage(opened ?? frame, opened ? [...this.accepting, 'rejected'] : ['rejected'], this.label);
    } catch (err) {
      return this.reject(opened ? (err as Error).message : 'frame authentication failed: its tag does not match (altered, injected, replayed or reordered)');
    }
    if (msg.t === 'rejected' && !this.accepting.includes('rejected')) {
      this.o.log.warn({ peer: this.label, code: msg.code, reason: msg.reason }, 'the peer rejected us');
      this.close(CLOSE.normal, 'rejected by the peer');
      return;
    }
    try {
      this.handler?.(msg);
    } catch (err) {
      if (err instanceof ProtocolError) return this.reject(err.message);
      this.o.log.error({ peer: this.label, err: (err as Error).stack }, `failed handling message ${msg.t}`);
      this.close(1011, 'internal error');
    }
  }

  /** The next message (handshakes): rejects on close or timeout. */
  next(timeoutMs: number): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.handler = null;
        reject(new PantherError('E_PROTOCOL', `no answer within ${timeoutMs} ms`, this.label));
      }, timeoutMs);
      this.handler = (m) => {
        clearTimeout(timer);
        this.handler = null;
        resolve(m);
      };
      this.onClose((code, reason) => {
        clearTimeout(timer);
        reject(new PantherError('E_PROTOCOL', `connection closed (${code}${reason ? `: ${reason}` : ''})`, this.label));
      });
    });
  }
}

export interface ListenOptions {
  host: string;
  port: number;
  maxPayload: number;
  tls?: { cert: string; key: string };
}

export interface Listener {
  wss: WebSocketServer;
  server: HttpServer;
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** A WebSocket server (wss with the configured certificate and key) on host:port. */
export async function listen(o: ListenOptions): Promise<Listener> {
  let server: HttpServer;
  if (o.tls) {
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readFileSync(o.tls.cert);
      key = readFileSync(o.tls.key);
    } catch (err) {
      throw new PantherError('E_CONFIG', `cannot read the TLS certificate or key (${(err as Error).message})`, 'cluster.tls');
    }
    server = createHttpsServer({ cert, key });
  } else {
    server = createHttpServer();
  }
  server.on('request', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('panther cluster: WebSocket only\n');
  });
  const wss = new WebSocketServer({ server, maxPayload: o.maxPayload, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new PantherError('E_CLUSTER', `cannot listen on ${o.host}:${o.port} (${err.message})`, 'cluster.coordinator')));
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const scheme = o.tls ? 'wss' : 'ws';
  return {
    wss, server, host: o.host, port,
    url: `${scheme}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => server.close(() => resolve()));
      server.closeAllConnections?.();
    }),
  };
}

export interface ConnectOptions {
  maxPayload: number;
  /** PEM of the certificate authority to trust for wss (a self-signed certificate itself). */
  ca?: string | Buffer;
  timeoutMs?: number;
}

/**
 * Starts a WebSocket connection; `opened` settles when it is open. Attach message handlers
 * before awaiting it: the listener's first frame can arrive with the upgrade response.
 */
export function openSocket(url: string, o: ConnectOptions): { ws: WebSocket; opened: Promise<void> } {
  const ws = new WebSocket(url, { maxPayload: o.maxPayload, perMessageDeflate: false, ca: o.ca, handshakeTimeout: o.timeoutMs ?? 10_000 });
  const opened = new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(new PantherError('E_CLUSTER', `cannot connect (${err.message})`, url));
    ws.once('error', fail);
    ws.once('open', () => {
      ws.off('error', fail);
      resolve();
    });
  });
  return { ws, opened };
}

export interface AcceptOptions {
  purpose: 'control' | 'ring';
  /** This side's identity (in the challenge and the proofs). */
  identity: string;
  secret: string;
  log: Logger;
  label: string;
  accept: readonly MessageType[];
  timeoutMs: number;
}

export interface Accepted {
  channel: Channel;
  identity: string;
  gen: number;
  /** The proof that this side holds the secret, to put in the welcome. */
  proof: Buffer;
}

/**
 * The listening side of the handshake: challenge, check the proof. Resolves with the
 * authenticated channel (switched to `accept`), or null after rejecting and closing it.
 */
export async function acceptHandshake(ws: WebSocket, o: AcceptOptions): Promise<Accepted | null> {
  const channel = new Channel(ws, { label: o.label, log: o.log, accept: ['auth'] });
  const serverNonce = newNonce();
  channel.send({ t: 'challenge', purpose: o.purpose, identity: o.identity, nonce: serverNonce });
  let msg: Message;
  try {
    msg = await channel.next(o.timeoutMs);
  } catch (err) {
    o.log.info({ peer: o.label, reason: (err as Error).message }, 'handshake did not complete');
    channel.terminate();
    return null;
  }
  if (msg.t !== 'auth') return null;
  const ctx: ProofContext = { purpose: o.purpose, server: o.identity, client: msg.identity, gen: msg.gen, serverNonce, clientNonce: msg.nonce };
  if (!proofMatches(clientProof(o.secret, ctx), msg.proof)) {
    countRejection('authentication failed');
    o.log.warn({ peer: o.label, claimed: msg.identity.slice(0, 64) }, 'authentication failed (wrong secret); disconnecting');
    channel.send({ t: 'rejected', code: 'E_AUTH', reason: 'authentication failed: the shared secret does not match' });
    channel.close(CLOSE.auth, 'authentication failed');
    return null;
  }
  channel.protect(frameSeal(o.secret, 'server', ctx));
  channel.setAccept(o.accept);
  channel.label = `${o.label} (${msg.identity})`;
  return { channel, identity: msg.identity, gen: msg.gen, proof: serverProof(o.secret, ctx) };
}

export interface ConnectHandshakeOptions extends ConnectOptions {
  purpose: 'control' | 'ring';
  identity: string;
  gen: number;
  secret: string;
  /** The identity the listener must have (checked in its challenge and proof). */
  server?: string;
  log: Logger;
  label: string;
  accept: readonly MessageType[];
}

/**
 * The connecting side: answer the challenge, then check the listener's proof. Resolves with
 * the channel and the welcome message; throws E_AUTH when either side's proof fails.
 */
export async function connectHandshake(url: string, o: ConnectHandshakeOptions): Promise<{ channel: Channel; welcome: Message<'welcome' | 'peer-welcome'> }> {
  const { ws, opened } = openSocket(url, o);
  const channel = new Channel(ws, { label: o.label, log: o.log, accept: ['challenge', 'welcome', 'peer-welcome', 'rejected'] });
  const timeout = o.timeoutMs ?? 10_000;
  const first = channel.next(timeout);
  try {
    await opened;
  } catch (err) {
    first.catch(() => undefined);
    channel.terminate();
    throw err;
  }
  try {
    const challenge = await first;
    if (challenge.t !== 'challenge' || challenge.purpose !== o.purpose || (o.server && challenge.identity !== o.server)) {
      throw new PantherError('E_AUTH', `unexpected handshake from the listener (${challenge.t}${challenge.t === 'challenge' ? ` ${challenge.purpose} ${challenge.identity}` : ''})`, url);
    }
    const clientNonce = newNonce();
    const ctx: ProofContext = { purpose: o.purpose, server: challenge.identity, client: o.identity, gen: o.gen, serverNonce: challenge.nonce, clientNonce };
    channel.send({ t: 'auth', identity: o.identity, gen: o.gen, nonce: clientNonce, proof: clientProof(o.secret, ctx) });
    channel.protect(frameSeal(o.secret, 'client', ctx));
    const answer = await channel.next(timeout);
    if (answer.t === 'rejected') throw new PantherError(answer.code === 'E_AUTH' ? 'E_AUTH' : 'E_CLUSTER', `rejected by ${challenge.identity}: ${answer.reason}`, url);
    if (answer.t !== 'welcome' && answer.t !== 'peer-welcome') throw new PantherError('E_PROTOCOL', `expected a welcome, got ${answer.t}`, url);
    if (!proofMatches(serverProof(o.secret, ctx), answer.proof)) {
      throw new PantherError('E_AUTH', `${challenge.identity} does not hold the shared secret (its proof does not match)`, url);
    }
    channel.setAccept(o.accept);
    return { channel, welcome: answer };
  } catch (err) {
    channel.terminate();
    throw err;
  }
}
