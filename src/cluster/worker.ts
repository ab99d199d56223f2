import type { Logger } from 'pino';
import { ClusterConfigSchema, type ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { loadPreparedData } from '../data/cache.js';
import { PantherError } from '../errors.js';
import { Gpu } from '../gpu/runtime.js';
import { CLOSE, connectHandshake, type Channel } from './channel.js';
import { checkIndices, shardOf } from './plan.js';
import { ACCEPTS, ProtocolError, typedView, type Message, type Outgoing } from './protocol.js';
import { Replica } from './replica.js';
import { PeerServer, RingAborted, ringAllGather, ringAllReduce, RingLink } from './ring.js';
import { sendState, StateAssembler } from './state.js';

export interface WorkerOptions {
  /** ws:// or wss:// address of the coordinator. */
  url: string;
  secret: string;
  name?: string;
  /** Address the ring port listens on, and the one neighbours are told (default: the same). */
  listenHost?: string;
  advertiseHost?: string;
  /** PEM to trust for wss (a self-signed coordinator certificate, and the ring neighbours'). */
  ca?: string | Buffer;
  /** Certificate and key files of this worker's ring port, for clusters whose ring links use TLS. */
  tls?: { cert: string; key: string };
  log: Logger;
  /**
   * Test-only fault injection: `bad-chunk@STEP` sends a ring chunk of the wrong size at that
   * step; `drop-link@STEP` drops its connection to the right ring neighbour; `diverge@STEP`
   * perturbs a parameter after that step's update.
   */
  fault?: string;
}

type Decision = 'commit' | 'abort';

interface InFlight {
  step: number;
  attempt: number;
  decide: (d: Decision) => void;
  decision: Promise<Decision>;
}

/**
 * A worker process: authenticates to the coordinator, loads the same prepared data, builds
 * the replica, listens for its left ring neighbour, then serves the coordinator's requests
 * (ring, step, commit/abort, state, evaluation, bench) until told to shut down. It exits
 * when the coordinator goes away: a worker without a coordinator has nothing to do.
 */
export class WorkerNode {
  private channel!: Channel;
  private id = '';
  private server: PeerServer | null = null;
  private link: RingLink | null = null;
  private gpu: Gpu | null = null;
  private replica: Replica | null = null;
  private queue: Promise<void> = Promise.resolve();
  private inflight: InFlight | null = null;
  private readonly aborted = new Set<string>();
  private heartbeat: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private coordinatorSeen = 0;
  private assembler: StateAssembler | null = null;
  private shuttingDown = false;
  private finished!: Promise<void>;
  private finish!: (err?: Error) => void;
  private maxPayload = 64 * 1024 * 1024;
  private bucketBytes = 4 * 1024 * 1024;
  private config: ClusterConfig | null = null;

  constructor(private readonly o: WorkerOptions) {}

  private get log(): Logger {
    return this.o.log;
  }

  /** Runs until shutdown (resolves) or until the coordinator is lost or a fatal error (rejects). */
  async run(): Promise<void> {
    this.finished = new Promise<void>((resolve, reject) => {
      this.finish = (err) => (err ? reject(err) : resolve());
    });
    try {
      await this.join();
    } catch (err) {
      await this.cleanup();
      throw err;
    }
    try {
      await this.finished;
    } finally {
      await this.cleanup();
    }
  }

  private async join(): Promise<void> {
    const o = this.o;
    const { channel, welcome } = await connectHandshake(o.url, {
      purpose: 'control', identity: o.name ?? `worker-${process.pid}`, gen: 0, secret: o.secret, server: 'coordinator',
      maxPayload: 1024 * 1024 * 1024, ca: o.ca, log: o.log, label: 'coordinator', accept: ACCEPTS.worker, timeoutMs: 30_000,
    });
    if (welcome.t !== 'welcome') throw new PantherError('E_PROTOCOL', `expected welcome, got ${welcome.t}`, o.url);
    this.channel = channel;
    this.id = welcome.workerId;
    const setup = welcome.setup;
    this.maxPayload = setup.maxPayload;
    this.bucketBytes = setup.bucketBytes;
    this.log.info({ id: this.id, mode: setup.mode }, 'joined the coordinator');
    channel.onClose((code, reason) => {
      if (this.shuttingDown) return this.finish();
      this.finish(new PantherError('E_CLUSTER', `lost the coordinator connection (${code}${reason ? `: ${reason}` : ''})`, o.url));
    });
    let seq = 0;
    this.heartbeat = setInterval(() => channel.send({ t: 'heartbeat', seq: seq++ }), setup.heartbeatMs);
    channel.onMessage((m) => {
      this.coordinatorSeen = Date.now();
      this.onMessage(m);
    });
    try {
      await this.setUp(setup);
      this.watchCoordinator(setup.heartbeatTimeoutMs);
    } catch (err) {
      // Tell the coordinator why (it logs it), then leave.
      const e = err as Error;
      channel.send({ t: 'failed', code: err instanceof PantherError ? err.code : 'E_WORKER', message: e.message.slice(0, 4000) });
      this.shuttingDown = true;
      channel.close(CLOSE.normal, 'set-up failed');
      throw err;
    }
  }

  private async setUp(setup: Message<'welcome'>['setup']): Promise<void> {
    const o = this.o;
    const channel = this.channel;
    let manifest: { name: string; shape: number[] }[] = [];
    let checksum: string | null = null;
    let windows = 0;
    let adapter = 'none (bench)';
    let dataKey: string | null = null;
    if (setup.mode === 'train') {
      if (!setup.config) throw new PantherError('E_PROTOCOL', 'train setup without a config', 'welcome');
      this.config = ClusterConfigSchema.parse(JSON.parse(setup.config));
      const config = this.config;
      const prepared = await loadPreparedData(config.data, { baseDir: setup.baseDir ?? undefined, log: (m) => this.log.warn(m) });
      dataKey = prepared.cache.key;
      if (setup.dataKey && dataKey !== setup.dataKey) {
        throw new PantherError('E_DATA', `prepared data differ from the coordinator's (key ${dataKey.slice(0, 12)} vs ${setup.dataKey.slice(0, 12)}): same data files and options are needed on every worker`, 'worker');
      }
      const gpuConfig = { ...config.gpu, ...(setup.gpu ?? {}) } as ClusterConfig['gpu'];
      this.gpu = await Gpu.create({ ...gpuOptionsFrom(gpuConfig), onError: (m) => this.log.error(m) });
      adapter = `${this.gpu.description.vendor} ${this.gpu.description.device}`.trim();
      this.replica = new Replica(this.gpu, prepared.data, config.model, config.train, config.data.maxLength, setup.bucketBytes);
      windows = this.replica.windows.length;
      const few = Int32Array.from({ length: Math.min(windows, Math.max(2, Math.min(config.train.batchSize, 32))) }, (_, i) => i);
      await this.replica.warmUp(shardOf(prepared.data, this.replica.windows, few, new Uint16Array(few.length), 0, 1, config.data.maxLength));
      manifest = this.replica.manifest();
      checksum = await this.replica.checksum();
    }
    if (setup.ringTls && !o.tls) {
      throw new PantherError('E_CONFIG', 'this cluster runs its ring links over TLS (cluster.tls is set): start the worker with --tls-cert and --tls-key', 'worker');
    }
    this.server = new PeerServer({
      host: o.listenHost ?? '127.0.0.1', identity: this.id, secret: o.secret, maxPayload: this.maxPayload, log: this.log,
      tls: setup.ringTls ? o.tls : undefined,
    });
    const port = await this.server.start();
    channel.send({
      t: 'ready', peer: { host: o.advertiseHost ?? o.listenHost ?? '127.0.0.1', port }, manifest, checksum, dataKey, windows, adapter, pid: process.pid,
    });
    this.log.info({ id: this.id, port, adapter, windows }, 'ready');
  }

  /**
   * A coordinator that is frozen (not gone: its connection stays open) stops sending its
   * heartbeats; after `timeoutMs` of silence the worker leaves with an error instead of
   * waiting for ever. A pause of this process itself (a long pipeline compilation) does
   * not count: the clock restarts when the check itself ran late.
   */
  private watchCoordinator(timeoutMs: number): void {
    const period = Math.max(50, Math.floor(timeoutMs / 4));
    let last = Date.now();
    this.coordinatorSeen = last;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      const late = now - last > 2 * period;
      last = now;
      if (late) {
        this.coordinatorSeen = Math.max(this.coordinatorSeen, now);
        return;
      }
      const silent = now - this.coordinatorSeen;
      if (silent > timeoutMs && !this.shuttingDown) {
        this.log.error({ silentMs: silent, timeoutMs }, 'the coordinator stopped answering');
        this.finish(new PantherError('E_CLUSTER', `the coordinator has been silent for ${silent} ms (heartbeat timeout ${timeoutMs} ms)`, this.o.url));
      }
    }, period);
  }

  private onMessage(m: Message): void {
    switch (m.t) {
      case 'heartbeat':
        return;
      case 'commit':
      case 'abort': {
        const f = this.inflight;
        if (f && f.step === m.step && f.attempt === m.attempt) {
          if (m.t === 'abort') this.link?.abort(`coordinator aborted step ${m.step} attempt ${m.attempt}: ${m.reason}`);
          f.decide(m.t);
        } else if (m.t === 'abort') {
          this.aborted.add(`${m.step}/${m.attempt}`);
        } else {
          throw new ProtocolError(`commit for step ${m.step} attempt ${m.attempt}, which is not in flight`, 'coordinator');
        }
        return;
      }
      case 'shutdown':
        this.log.info({ reason: m.reason }, 'shutting down');
        this.shuttingDown = true;
        this.link?.close();
        this.channel.close(CLOSE.normal, 'shutdown');
        return;
      default:
        this.queue = this.queue.then(() => this.handle(m)).catch((err: Error) => this.fatal(err));
    }
  }

  private fatal(err: Error): void {
    const code = err instanceof PantherError ? err.code : 'E_WORKER';
    this.log.error({ err: err.stack }, 'worker failed');
    this.channel.send({ t: 'failed', code, message: err.message.slice(0, 4000) });
    this.shuttingDown = true;
    this.channel.close(CLOSE.normal, 'worker failed');
    this.finish(err);
  }

  /** Whether the test fault `kind@step` fires now (once: a redone attempt runs clean). */
  private faultAt(kind: string, step: number): boolean {
    if (this.o.fault !== `${kind}@${step}`) return false;
    this.o.fault = undefined;
    return true;
  }

  private need<T>(x: T | null, what: string): T {
    if (!x) throw new ProtocolError(`${what} requested from a worker that has none (bench mode or not set up)`, 'coordinator');
    return x;
  }

  private async handle(m: Message): Promise<void> {
    switch (m.t) {
      case 'ring':
        return this.setRing(m);
      case 'step':
        return this.step(m);
      case 'get-state': {
        const replica = this.need(this.replica, 'state');
        const host = await replica.exportState(m.optimizer);
        sendState(this.channel, m.request, host, replica.manifest(), Math.floor(this.maxPayload / 2));
        return;
      }
      case 'state-part': {
        const replica = this.need(this.replica, 'state');
        if (!this.assembler || this.assembler.request !== m.request) this.assembler = new StateAssembler(m.request, replica.manifest(), 'coordinator state transfer');
        this.assembler.add(m);
        return;
      }
      case 'state-end': {
        const replica = this.need(this.replica, 'state');
        if (!this.assembler || this.assembler.request !== m.request) this.assembler = new StateAssembler(m.request, replica.manifest(), 'coordinator state transfer');
        const host = this.assembler.finish(m);
        this.assembler = null;
        replica.importState(host);
        this.channel.send({ t: 'state-loaded', request: m.request, checksum: await replica.checksum() });
        return;
      }
      case 'evaluate': {
        const result = await this.need(this.replica, 'evaluation').evaluate(m.role, m.limit, m.batchSize);
        this.channel.send({ t: 'evaluation', request: m.request, result });
        return;
      }
      case 'bench':
        return this.bench(m);
      default:
        throw new ProtocolError(`unexpected ${m.t}`, 'coordinator');
    }
  }

  private async setRing(m: Message<'ring'>): Promise<void> {
    if (m.rank >= m.members.length || m.members[m.rank].id !== this.id) {
      throw new ProtocolError(`ring generation ${m.gen} puts ${m.members[m.rank]?.id ?? 'nobody'} at my rank ${m.rank}`, 'coordinator');
    }
    this.link?.close();
    this.link = null;
    const server = this.need(this.server, 'ring');
    server.cancelBefore(m.gen, `ring generation ${m.gen} replaces it`);
    try {
      this.link = await RingLink.open({
        gen: m.gen, rank: m.rank, members: m.members, self: this.id, secret: this.o.secret, maxPayload: this.maxPayload,
        log: this.log, server, ca: this.o.ca,
        onBroken: (peer, reason) => {
          this.log.warn({ gen: m.gen, peer, reason }, 'ring broken');
          this.channel.send({ t: 'ring-broken', gen: m.gen, peer, reason: reason.slice(0, 2000) });
        },
      });
    } catch (err) {
      const right = m.members[(m.rank + 1) % m.members.length].id;
      this.log.warn({ gen: m.gen, err: (err as Error).message }, 'could not set up the ring');
      this.channel.send({ t: 'ring-broken', gen: m.gen, peer: right, reason: (err as Error).message.slice(0, 2000) });
      return;
    }
    this.channel.send({ t: 'ring-ready', gen: m.gen });
  }

  private async step(m: Message<'step'>): Promise<void> {
    const replica = this.need(this.replica, 'a training step');
    const link = this.link;
    if (!link || link.gen !== m.gen) throw new ProtocolError(`step ${m.step} is for ring generation ${m.gen}, this worker is in ${link?.gen ?? 'none'}`, 'coordinator');
    let decide!: (d: Decision) => void;
    const decision = new Promise<Decision>((r) => (decide = r));
    const f: InFlight = { step: m.step, attempt: m.attempt, decide, decision };
    this.inflight = f;
    const key = `${m.step}/${m.attempt}`;
    if (this.aborted.delete(key)) {
      this.inflight = null;
      return;
    }
    try {
      const indices = typedView(m.windows, Int32Array, 'step.windows');
      checkIndices(indices, replica.windows.length, `step ${m.step}`);
      const assignment = typedView(m.assignment, Uint16Array, 'step.assignment');
      const config = this.config!;
      const shard = shardOf(replica.data, replica.windows, indices, assignment, link.rank, link.size, config.data.maxLength);
      let reduced: Outgoing<'reduced'> | null = null;
      try {
        if (this.faultAt('bad-chunk', m.step) && link.size > 1) {
          this.log.warn({ step: m.step }, 'fault injection: sending a ring chunk of the wrong size');
          link.truncateNext = { step: m.step, op: 1, round: 0 };
        }
        // Each bucket enters the ring as soon as backward has finished it (op 0 is the gather).
        const stream = replica.gradientStream((b, values) => ringAllReduce(link, values, { step: m.step, attempt: m.attempt, op: 1 + b }));
        const losses = await replica.computeShard(shard, (mine, lengths) => ringAllGather(link, mine, lengths, { step: m.step, attempt: m.attempt, op: 0 }), m.step - 1, stream);
        if (this.faultAt('drop-link', m.step) && link.size > 1) {
          this.log.warn({ step: m.step }, 'fault injection: dropping the connection to the right neighbour');
          link.dropRight();
        }
        const flat = await stream.finish();
        replica.setGradients(flat);
        reduced = { t: 'reduced', step: m.step, attempt: m.attempt, next: losses.next, contrastive: losses.contrastive, rows: shard.rows.length };
      } catch (err) {
        if (!(err instanceof RingAborted)) throw err;
        this.log.info({ step: m.step, attempt: m.attempt, reason: err.message }, 'step interrupted; waiting for the coordinator');
      }
      if (reduced) this.channel.send(reduced);
      const d = await f.decision;
      if (d === 'commit' && reduced) {
        const gradNorm = await replica.apply(m.lr, m.maxGradNorm);
        if (this.faultAt('diverge', m.step)) {
          this.log.warn({ step: m.step }, 'fault injection: perturbing a parameter after the update');
          const p = replica.params[0];
          const values = await p.readF32();
          values[0] += 1e-3;
          p.write(values);
        }
        this.channel.send({ t: 'applied', step: m.step, attempt: m.attempt, gradNorm, checksum: m.checksum ? await replica.checksum() : null });
      } else {
        replica.discard();
      }
    } finally {
      if (this.inflight === f) this.inflight = null;
    }
  }

  private async bench(m: Message<'bench'>): Promise<void> {
    const link = this.need(this.link, 'a ring');
    const n = Math.floor(m.bytes / 4);
    const seconds: number[] = [];
    if (m.kind === 'allreduce') {
      const data = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000);
      // In buckets, all in flight at once, as the gradients of a step are.
      const per = Math.max(1, Math.floor(this.bucketBytes / 4));
      for (let rep = 0; rep < m.reps; rep++) {
        const t0 = performance.now();
        const buckets: Promise<void>[] = [];
        for (let b = 0, start = 0; start < n; b++, start += per) {
          buckets.push(ringAllReduce(link, data.subarray(start, Math.min(n, start + per)), { step: rep, attempt: m.request, op: b }));
        }
        await Promise.all(buckets);
        seconds.push((performance.now() - t0) / 1000);
      }
    } else if (link.size > 1) {
      // 'raw': rank 0 streams to rank 1, nothing else moves. 'ring': every worker streams to
      // its right neighbour while receiving from its left, all at once (the all-reduce's
      // traffic without its arithmetic or its waits).
      const sends = m.kind === 'ring' || link.rank === 0;
      const receives = m.kind === 'ring' || link.rank === 1;
      const stream = async (): Promise<void> => {
        const payload = new Uint8Array(n * 4);
        for (let rep = 0; rep < m.reps; rep++) {
          link.send({ step: 0, attempt: m.request, op: rep }, 0, payload);
          // Let the socket drain so the frames are timed on the wire, not in our buffer.
          while (link.bufferedRight > 4 * payload.byteLength) await new Promise((r) => setImmediate(r));
        }
      };
      const drain = async (): Promise<void> => {
        let t0 = 0;
        for (let rep = 0; rep < m.reps; rep++) {
          await link.recv({ step: 0, attempt: m.request, op: rep }, 0, n * 4);
          if (rep === 0) t0 = performance.now();
        }
        if (m.reps > 1) seconds.push((performance.now() - t0) / 1000);
      };
      await Promise.all([sends ? stream() : null, receives ? drain() : null]);
    }
    this.channel.send({ t: 'bench-result', request: m.request, seconds, bytes: n * 4 });
  }

  private async cleanup(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.watchdog) clearInterval(this.watchdog);
    this.link?.close();
    await this.server?.close();
    this.replica?.dispose();
    this.gpu?.destroy();
    if (this.channel && !this.channel.closed) this.channel.close(CLOSE.normal, 'worker exiting');
  }
}

/** Runs one worker until the coordinator shuts it down. */
export async function runWorker(o: WorkerOptions): Promise<void> {
  await new WorkerNode(o).run();
}
