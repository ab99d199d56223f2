import type { Logger } from 'pino';
import { PantherError } from '../errors.js';
import { acceptHandshake, CLOSE, listen, type Channel, type Listener } from './channel.js';
import { ACCEPTS, ProtocolError, type Message, type Outgoing } from './protocol.js';

/** A worker the coordinator has admitted and that reported ready. */
export interface Member {
  id: string;
  slot: number;
  channel: Channel;
  ready: Message<'ready'>;
  lastSeen: number;
  lost: boolean;
}

/** Raised to whoever waits on a member that was lost (died, stalled, broke the protocol). */
export class MemberLost extends PantherError {
  constructor(readonly member: Member, readonly reason: string) {
    super('E_CLUSTER', `worker ${member.id} (pid ${member.ready.pid}) lost: ${reason}`, 'coordinator');
    this.name = 'MemberLost';
  }
}

/** Returned by a request's `match` for a message that belongs to it but does not finish it (a state part). */
export const PENDING: unique symbol = Symbol('pending');

export type Setup = Extract<Message<'welcome'>, { t: 'welcome' }>['setup'];

export interface PoolOptions {
  host: string;
  port: number;
  tls?: { cert: string; key: string };
  secret: string;
  maxPayload: number;
  heartbeatTimeoutMs: number;
  /** How often the coordinator sends its own heartbeat to every member (workers watch for it). */
  heartbeatMs: number;
  /** How long a joining worker may take to set up (load data, build the replica). */
  readyTimeoutMs: number;
  capacity: number;
  log: Logger;
  setupFor(slot: number): Setup;
  /** A reason to refuse this worker (wrong data, model or initial checksum), or null. */
  checkReady(ready: Message<'ready'>, members: readonly Member[]): string | null;
  /** Messages no request is waiting for: true if harmless (late answers of an aborted attempt). */
  isStale(m: Message): boolean;
  /** Messages members send on their own (ring-broken, failed). */
  onUnsolicited(member: Member, m: Message): void;
  onJoin?(member: Member): void;
  onLost?(member: Member, reason: string): void;
}

interface Collector {
  remaining: Set<Member>;
  tolerateLoss: boolean;
  take(member: Member, m: Message): boolean;
  lost(member: Member, reason: string): void;
}

/**
 * The coordinator's side of membership: the listening socket, the authenticated
 * admission of workers, heartbeats, eviction, and requests that wait for an answer from
 * each of a set of members (failing, or carrying on without them, when one is lost).
 */
export class WorkerPool {
  readonly members: Member[] = [];
  private listener: Listener | null = null;
  private joining = 0;
  private readonly reserved = new Set<number>();
  private nextId = 1;
  private readonly collectors = new Set<Collector>();
  private watchdog: NodeJS.Timeout | null = null;
  private beat: NodeJS.Timeout | null = null;
  private beats = 0;
  private checkPeriod = 1000;
  private lastCheck = 0;
  private joinWaiters: (() => void)[] = [];
  closing = false;

  constructor(private readonly o: PoolOptions) {}

  get url(): string {
    if (!this.listener) throw new PantherError('E_CLUSTER', 'not listening', 'coordinator');
    return this.listener.url;
  }

  get port(): number {
    return this.listener?.port ?? 0;
  }

  live(): Member[] {
    return this.members.filter((m) => !m.lost);
  }

  async start(): Promise<string> {
    this.listener = await listen({ host: this.o.host, port: this.o.port, maxPayload: this.o.maxPayload, tls: this.o.tls });
    this.listener.wss.on('connection', (ws, req) => void this.admit(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
    this.checkPeriod = Math.max(50, Math.floor(this.o.heartbeatTimeoutMs / 4));
    this.lastCheck = Date.now();
    this.watchdog = setInterval(() => this.checkHeartbeats(), this.checkPeriod);
    this.beat = setInterval(() => {
      const seq = this.beats++ % 2 ** 31;
      for (const m of this.live()) m.channel.send({ t: 'heartbeat', seq });
    }, this.o.heartbeatMs);
    this.o.log.info({ url: this.listener.url }, 'coordinator listening');
    return this.listener.url;
  }

  private checkHeartbeats(): void {
    const now = Date.now();
    const gap = now - this.lastCheck;
    this.lastCheck = now;
    if (gap > 2 * this.checkPeriod) {
      // This process was blocked (a long synchronous write, say): the silence was ours, and
      // the members' frames are still queued. Start their clocks again.
      for (const m of this.live()) m.lastSeen = Math.max(m.lastSeen, now);
      return;
    }
    for (const m of this.live()) {
      const silent = now - m.lastSeen;
      if (silent > this.o.heartbeatTimeoutMs) this.evict(m, `no heartbeat for ${silent} ms (timeout ${this.o.heartbeatTimeoutMs} ms)`);
    }
  }

  private freeSlot(): number {
    const used = new Set([...this.live().map((m) => m.slot), ...this.reserved]);
    let s = 0;
    while (used.has(s)) s++;
    return s;
  }

  private async admit(ws: import('ws').WebSocket, address: string): Promise<void> {
    if (this.closing) return void ws.terminate();
    const accepted = await acceptHandshake(ws, {
      purpose: 'control', identity: 'coordinator', secret: this.o.secret, log: this.o.log, label: `worker at ${address}`,
      accept: ACCEPTS.coordinator, timeoutMs: 10_000,
    });
    if (!accepted) return;
    const { channel } = accepted;
    if (this.live().length + this.joining >= this.o.capacity || this.closing) {
      this.o.log.warn({ peer: channel.label }, 'refused a worker: the cluster is full');
      channel.send({ t: 'rejected', code: 'E_CLUSTER', reason: `the cluster is full (${this.o.capacity} workers)` });
      channel.close(CLOSE.rejected, 'cluster full');
      return;
    }
    this.joining++;
    const slot = this.freeSlot();
    this.reserved.add(slot);
    const id = `w${this.nextId++}`;
    channel.label = `worker ${id} at ${address}`;
    let ready: Message<'ready'>;
    try {
      channel.send({ t: 'welcome', proof: accepted.proof, workerId: id, setup: this.o.setupFor(slot) });
      ready = await this.awaitReady(channel);
    } catch (err) {
      this.joining--;
      this.reserved.delete(slot);
      this.o.log.warn({ peer: channel.label, err: (err as Error).message }, 'worker did not get ready');
      channel.close(CLOSE.rejected, 'not ready');
      return;
    }
    this.joining--;
    this.reserved.delete(slot);
    const reason = this.o.checkReady(ready, this.live());
    if (reason) {
      this.o.log.error({ peer: channel.label, reason }, 'refused a worker');
      channel.send({ t: 'rejected', code: 'E_CLUSTER', reason });
      channel.close(CLOSE.rejected, 'refused');
      return;
    }
    const member: Member = { id, slot, channel, ready, lastSeen: Date.now(), lost: false };
    this.members.push(member);
    channel.onMessage((m) => this.receive(member, m));
    channel.onClose((code, why) => this.evict(member, `connection closed (${code}${why ? `: ${why}` : ''})`));
    this.o.log.info({ id, slot, pid: ready.pid, adapter: ready.adapter, peer: `${ready.peer.host}:${ready.peer.port}` }, 'worker joined');
    this.o.onJoin?.(member);
    for (const w of this.joinWaiters.splice(0)) w();
  }

  /** The worker's `ready` (heartbeats may come first), within the set-up time. */
  private awaitReady(channel: Channel): Promise<Message<'ready'>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new PantherError('E_CLUSTER', `not ready within ${this.o.readyTimeoutMs} ms`, channel.label)), this.o.readyTimeoutMs);
      channel.onMessage((m) => {
        if (m.t === 'heartbeat') return;
        clearTimeout(timer);
        if (m.t === 'ready') return resolve(m);
        if (m.t === 'failed') return reject(new PantherError('E_CLUSTER', `set-up failed: ${m.code}: ${m.message}`, channel.label));
        throw new ProtocolError(`${m.t} before ready`, channel.label);
      });
      channel.onClose((code, why) => {
        clearTimeout(timer);
        reject(new PantherError('E_CLUSTER', `closed during set-up (${code}${why ? `: ${why}` : ''})`, channel.label));
      });
    });
  }

  /** Resolves once `n` members are live; fails after `timeoutMs`. */
  async waitForMembers(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.live().length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new PantherError('E_CLUSTER', `${this.live().length} of ${n} workers joined within ${timeoutMs} ms: start the missing workers with 'panther worker --coordinator ${this.url}' and the same secret`, 'coordinator');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.joinWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private receive(member: Member, m: Message): void {
    // Whatever an evicted member still had in flight no longer counts (two ends of a broken
    // ring link blame each other: the first report wins).
    if (member.lost) return;
    member.lastSeen = Date.now();
    if (m.t === 'heartbeat') return;
    if (m.t === 'ring-broken' || m.t === 'failed') return this.o.onUnsolicited(member, m);
    for (const c of this.collectors) {
      if (c.remaining.has(member) && c.take(member, m)) return;
    }
    if (this.o.isStale(m)) {
      this.o.log.debug({ id: member.id, type: m.t }, 'late answer ignored');
      return;
    }
    throw new ProtocolError(`${m.t} that nothing asked for`, member.channel.label);
  }

  /** Removes a member (idempotent): closes its connection, fails or trims the requests waiting on it. */
  evict(member: Member, reason: string): void {
    if (member.lost) return;
    member.lost = true;
    if (this.closing) return;
    this.o.log.warn({ id: member.id, pid: member.ready.pid, reason }, 'worker lost');
    member.channel.close(CLOSE.evicted, reason);
    setTimeout(() => member.channel.terminate(), 1000).unref();
    for (const c of [...this.collectors]) if (c.remaining.has(member)) c.lost(member, reason);
    if (!this.closing) this.o.onLost?.(member, reason);
  }

  /**
   * Sends each member its message and waits until every one answered (`match` returns the
   * answer). A lost member fails the request with MemberLost, unless `tolerateLoss`: then
   * the request completes with the answers of those still there.
   */
  request<T>(members: readonly Member[], message: (m: Member) => Outgoing | null, match: (member: Member, m: Message) => T | typeof PENDING | undefined, o: { tolerateLoss?: boolean; timeoutMs?: number; what?: string } = {}): Promise<Map<Member, T>> {
    return new Promise((resolve, reject) => {
      const answers = new Map<Member, T>();
      let timer: NodeJS.Timeout | null = null;
      const done = (err?: Error) => {
        this.collectors.delete(c);
        if (timer) clearTimeout(timer);
        if (err) reject(err);
        else resolve(answers);
      };
      const c: Collector = {
        remaining: new Set(members),
        tolerateLoss: Boolean(o.tolerateLoss),
        take: (member, m) => {
          const a = match(member, m);
          if (a === undefined) return false;
          if (a === PENDING) return true;
          answers.set(member, a);
          c.remaining.delete(member);
          if (c.remaining.size === 0) done();
          return true;
        },
        lost: (member, reason) => {
          c.remaining.delete(member);
          if (!c.tolerateLoss) done(new MemberLost(member, reason));
          else if (c.remaining.size === 0) done();
        },
      };
      const gone = members.find((m) => m.lost);
      if (gone && !o.tolerateLoss) return reject(new MemberLost(gone, 'lost before the request'));
      for (const m of members) if (m.lost) c.remaining.delete(m);
      this.collectors.add(c);
      if (o.timeoutMs) {
        timer = setTimeout(() => {
          const late = [...c.remaining];
          for (const m of late) this.evict(m, `no answer to ${o.what ?? 'a request'} within ${o.timeoutMs} ms`);
        }, o.timeoutMs);
      }
      for (const m of members) {
        if (m.lost) continue;
        const msg = message(m);
        if (msg) m.channel.send(msg);
      }
      if (c.remaining.size === 0) done();
    });
  }

  /** Tells every live member to shut down and waits (briefly) for them to close. */
  async shutdown(reason: string): Promise<void> {
    this.closing = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.beat) clearInterval(this.beat);
    const closed = this.live().map((m) => new Promise<void>((r) => {
      m.channel.onClose(() => r());
      setTimeout(r, 5000).unref();
    }));
    for (const m of this.live()) m.channel.send({ t: 'shutdown', reason });
    await Promise.all(closed);
    await this.listener?.close();
    this.listener = null;
  }
}
