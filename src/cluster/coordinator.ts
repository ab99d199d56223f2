import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../config/schema.js';
import { loadPreparedData } from '../data/cache.js';
import { EpochSchedule, trainingWindows, type Window } from '../data/batching.js';
import type { PreparedData } from '../data/prepare.js';
import { PantherError } from '../errors.js';
import { checkpointPath, readCheckpoint, writeCheckpoint, type HostTrainingState, type LoadedCheckpoint, type TrainingState } from '../train/checkpoint.js';
import type { TrainConfig } from '../train/config.js';
import type { Evaluation } from '../train/evaluate.js';
import { plotCurves } from '../train/plot.js';
import { learningRate } from '../train/schedule.js';
import { modelShapeOf, noteValidation, trainingSchedule, warnWithoutValidation, type StepReport, type TrainSummary } from '../train/trainer.js';
import { workerSlots } from './config.js';
import { assignRows } from './plan.js';
import { MemberLost, PENDING, WorkerPool, type Member, type Setup } from './pool.js';
import { bytesOf, type Message } from './protocol.js';
import type { ManifestEntry } from './replica.js';
import { RunLog } from './run-log.js';
import { hostChecksum, sendState, StateAssembler } from './state.js';

export interface ClusterStepReport extends StepReport {
  /** Events in the global batch. */
  events: number;
  workers: number;
  attempts: number;
}

export interface CoordinatorHooks {
  onListening?(url: string): void;
  /** Before the step messages of an attempt go out (tests kill or stop workers here; awaited). */
  onStepStart?(info: { step: number; attempt: number; members: { id: string; pid: number }[] }): void | Promise<void>;
  onStep?(r: ClusterStepReport): void;
  onEvaluation?(e: Evaluation, step: number): void;
  onWorkerLost?(info: { id: string; pid: number; reason: string; step: number }): void;
}

export interface CoordinatorOptions {
  config: ClusterConfig;
  secret: string;
  log: Logger;
  /** Continue from last.safetensors in the checkpoint folder when present. */
  resume?: boolean;
  /** Evaluate on the test split at the end (default true). */
  test?: boolean;
  /** Relative data paths resolve against this folder on the workers too (default: cwd). */
  baseDir?: string;
  /** Overrides cluster.coordinator (local runs listen on a free port). */
  listen?: { host?: string; port?: number };
  /** Expected workers (default: cluster.workers). */
  workers?: number;
  hooks?: CoordinatorHooks;
}

export interface ClusterSummary extends TrainSummary {
  workers: number;
  /** Workers that joined over the run (replacements included). */
  joined: number;
  lost: { id: string; pid: number; reason: string; step: number }[];
  discardedAttempts: number;
  /** Seconds from each loss being detected to the next applied step. */
  recoverySeconds: number[];
}

const INITIAL_STATE: TrainingState = { step: 0, epoch: 0, position: 0, bestMetric: -1, bestStep: 0, sinceBest: 0, events: 0 };

/**
 * The coordinator of data-parallel pretraining: admits authenticated workers, forms the
 * ring, and drives each step exactly as the single-process Trainer would take it (same
 * global batch from seed, epoch and position, same schedule, same validation, early
 * stopping and checkpoints), with two-phase steps: workers compute and all-reduce, report
 * `reduced`, and apply the update only on `commit`. A worker lost before the commit
 * discards the attempt; it is redone, re-sharded, on the workers that remain (or with a
 * replacement that joined and received the state of a live replica).
 */
export class Coordinator {
  readonly pool: WorkerPool;
  readonly dir: string;
  private readonly train: TrainConfig;
  private readonly cluster: ClusterConfig['cluster'];
  private readonly expected: number;
  private data!: PreparedData;
  private windows: Window[] = [];
  private schedule: EpochSchedule | null = null;
  private dataKey = '';
  private batchesPerEpoch = 1;
  totalSteps = 1;
  private state: TrainingState = { ...INITIAL_STATE };
  private gen = 0;
  private ring: Member[] = [];
  private ringDirty = true;
  private manifest: ManifestEntry[] | null = null;
  private initChecksum: string | null = null;
  private nextRequest = 1;
  private inflight = { step: 0, attempt: 0 };
  private readonly runLog: RunLog;
  private readonly lost: ClusterSummary['lost'] = [];
  private lostAt: number[] = [];
  private readonly recoverySeconds: number[] = [];
  private discarded = 0;
  private joined = 0;
  private fatal: Error | null = null;

  constructor(private readonly o: CoordinatorOptions) {
    this.train = o.config.train;
    this.cluster = o.config.cluster;
    this.dir = this.train.checkpointDir;
    this.expected = o.workers ?? workerSlots(this.cluster).length;
    if (this.expected < 1) throw new PantherError('E_CONFIG', 'no workers expected: set cluster.workers to a count or a list', 'cluster.workers');
    if (this.train.batchSize < this.expected) {
      throw new PantherError('E_CONFIG', `train.batchSize ${this.train.batchSize} is smaller than the ${this.expected} workers: every worker needs rows`, 'train.batchSize');
    }
    this.runLog = new RunLog(this.dir);
    const slots = workerSlots(this.cluster);
    const tls = this.cluster.tls;
    this.pool = new WorkerPool({
      host: o.listen?.host ?? this.cluster.coordinator.host,
      port: o.listen?.port ?? this.cluster.coordinator.port,
      tls: tls ? { cert: tls.cert, key: tls.key } : undefined,
      secret: o.secret,
      maxPayload: this.cluster.maxPayload,
      heartbeatTimeoutMs: this.cluster.heartbeat.timeoutMs,
      heartbeatMs: this.cluster.heartbeat.intervalMs,
      readyTimeoutMs: this.cluster.joinTimeoutMs,
      capacity: this.expected,
      log: o.log,
      setupFor: (slot): Setup => ({
        mode: 'train',
        config: JSON.stringify(o.config),
        gpu: slots[slot] ? { backend: slots[slot].backend, adapter: slots[slot].adapter } : null,
        dataKey: this.dataKey,
        baseDir: o.baseDir ?? process.cwd(),
        heartbeatMs: this.cluster.heartbeat.intervalMs,
        // Workers give a frozen coordinator more slack than it gives them: it may pause to write a checkpoint.
        heartbeatTimeoutMs: Math.max(3 * this.cluster.heartbeat.timeoutMs, 30_000),
        maxPayload: this.cluster.maxPayload,
        bucketBytes: this.cluster.bucketBytes,
        ringTls: this.cluster.tls !== undefined,
      }),
      checkReady: (ready) => this.checkReady(ready),
      isStale: (m) => this.isStale(m),
      onUnsolicited: (member, m) => this.onUnsolicited(member, m),
      onJoin: (m) => {
        this.joined++;
        this.runLog.event('join', { id: m.id, pid: m.ready.pid, slot: m.slot, adapter: m.ready.adapter });
      },
      onLost: (m, reason) => {
        this.ringDirty = true;
        const info = { id: m.id, pid: m.ready.pid, reason, step: this.state.step };
        this.lost.push(info);
        this.lostAt.push(performance.now());
        this.runLog.event('lost', info);
        o.hooks?.onWorkerLost?.(info);
      },
    });
  }

  private get log(): Logger {
    return this.o.log;
  }

  /** Loads the data (as every worker will) and starts listening; returns the address. */
  async start(): Promise<string> {
    const prepared = await loadPreparedData(this.o.config.data, { baseDir: this.o.baseDir, log: (m) => this.log.warn(m) });
    this.data = prepared.data;
    this.dataKey = prepared.cache.key;
    warnWithoutValidation(this.data, this.log);
    this.windows = trainingWindows(this.data, this.o.config.data.maxLength, this.train.windowContext);
    this.schedule = new EpochSchedule(this.windows, { seed: this.train.seed, batchSize: this.train.batchSize, bucketBatches: this.train.lengthBuckets });
    ({ batchesPerEpoch: this.batchesPerEpoch, totalSteps: this.totalSteps } = trainingSchedule(this.windows.length, this.train));
    const url = await this.pool.start();
    this.o.hooks?.onListening?.(url);
    return url;
  }

  /** Workers must hold the same data, model and initial parameters as those already admitted. */
  private checkReady(ready: Message<'ready'>): string | null {
    if (ready.dataKey !== this.dataKey) return `its prepared data (key ${String(ready.dataKey).slice(0, 12)}) differ from the coordinator's (${this.dataKey.slice(0, 12)})`;
    if (ready.windows !== this.windows.length) return `it has ${ready.windows} training windows, the coordinator ${this.windows.length}`;
    if (this.manifest) {
      const a = JSON.stringify(ready.manifest);
      if (a !== JSON.stringify(this.manifest)) return 'its model parameters (names or shapes) differ from the other workers\'';
    }
    if (this.initChecksum && ready.checksum !== this.initChecksum) {
      return `its initial parameters differ from the other workers' (checksum ${String(ready.checksum).slice(0, 12)} vs ${this.initChecksum.slice(0, 12)}): same code, config and seed are needed`;
    }
    this.manifest ??= ready.manifest;
    this.initChecksum ??= ready.checksum;
    return null;
  }

  private isStale(m: Message): boolean {
    const { step, attempt } = this.inflight;
    switch (m.t) {
      case 'reduced':
      case 'applied':
        return m.step < step || (m.step === step && m.attempt <= attempt);
      case 'ring-ready':
        return m.gen < this.gen;
      case 'evaluation':
      case 'state-loaded':
      case 'state-part':
      case 'state-end':
        return m.request < this.nextRequest;
      default:
        return false;
    }
  }

  private onUnsolicited(member: Member, m: Message): void {
    if (m.t === 'failed') {
      this.pool.evict(member, `worker failed: ${m.code}: ${m.message}`);
    } else if (m.t === 'ring-broken') {
      if (m.gen !== this.gen) return;
      const peer = this.pool.live().find((x) => x.id === m.peer);
      this.log.warn({ reporter: member.id, peer: m.peer, reason: m.reason }, 'ring broken');
      if (peer) this.pool.evict(peer, `ring neighbour ${member.id} reports: ${m.reason}`);
    }
  }

  /** Sends every live member its place in a new ring generation and waits until all are linked. */
  private async formRing(): Promise<void> {
    for (;;) {
      const members = this.pool.live();
      if (members.length === 0) throw new PantherError('E_CLUSTER', `no workers left at step ${this.state.step}`, 'coordinator');
      const gen = ++this.gen;
      const layout = members.map((m) => ({ id: m.id, host: m.ready.peer.host, port: m.ready.peer.port }));
      try {
        await this.pool.request(members, (m) => ({ t: 'ring', gen, rank: members.indexOf(m), members: layout }),
          (_m, msg) => (msg.t === 'ring-ready' && msg.gen === gen ? true : undefined), { what: `ring generation ${gen}`, timeoutMs: 120_000 });
      } catch (err) {
        if (err instanceof MemberLost) continue;
        throw err;
      }
      this.ring = members;
      this.ringDirty = false;
      this.runLog.event('ring', { gen, members: members.map((m) => m.id) });
      this.log.info({ gen, workers: members.map((m) => m.id) }, 'ring formed');
      return;
    }
  }

  /** Gives workers that joined after the start the state of a live replica. */
  private async admitNewcomers(): Promise<void> {
    const newcomers = this.pool.live().filter((m) => !this.ring.includes(m));
    const current = this.ring.filter((m) => !m.lost);
    if (newcomers.length === 0 || current.length === 0) return;
    const host = await this.pullState(true);
    await this.pushState(host, newcomers);
    this.log.info({ workers: newcomers.map((m) => m.id), step: this.state.step }, 'replacement workers received the current state');
    this.runLog.event('state-sync', { to: newcomers.map((m) => m.id), step: this.state.step });
    this.ringDirty = true;
  }

  /** Parameters (and optimizer state) of one live replica, checked against the manifest. */
  private async pullState(withOptimizer: boolean): Promise<HostTrainingState> {
    for (;;) {
      const source = this.ring.find((m) => !m.lost) ?? this.pool.live()[0];
      if (!source) throw new PantherError('E_CLUSTER', 'no live replica to take the state from', 'coordinator');
      const request = this.nextRequest++;
      const assembler = new StateAssembler(request, this.manifest!, `state from ${source.id}`);
      try {
        const got = await this.pool.request([source], () => ({ t: 'get-state', request, optimizer: withOptimizer }), (_m, msg) => {
          if (msg.t === 'state-part' && msg.request === request) {
            assembler.add(msg);
            return PENDING;
          }
          return msg.t === 'state-end' && msg.request === request ? assembler.finish(msg) : undefined;
        }, { what: 'the state' });
        return got.get(source)!;
      } catch (err) {
        if (!(err instanceof MemberLost)) throw err;
      }
    }
  }

  /** Loads a state into the given members and checks they all hold exactly it. */
  private async pushState(host: HostTrainingState, members: Member[]): Promise<void> {
    const request = this.nextRequest++;
    const expected = hostChecksum(host, this.manifest!);
    const sums = await this.pool.request(members, (m) => {
      sendState(m.channel, request, host, this.manifest!, Math.floor(this.cluster.maxPayload / 2));
      return null;
    }, (_m, msg) => (msg.t === 'state-loaded' && msg.request === request ? msg.checksum : undefined), { what: 'loading the state', tolerateLoss: true });
    for (const [m, sum] of sums) {
      if (sum !== expected) throw new PantherError('E_DIVERGED', `worker ${m.id} holds checksum ${sum.slice(0, 12)} after loading state ${expected.slice(0, 12)}`, 'coordinator');
    }
  }

  private async evaluate(role: 'valid' | 'test', limit: number | null): Promise<Evaluation> {
    for (;;) {
      const m = this.ring.find((x) => !x.lost) ?? this.pool.live()[0];
      if (!m) throw new PantherError('E_CLUSTER', 'no worker left to evaluate on', 'coordinator');
      const request = this.nextRequest++;
      try {
        const got = await this.pool.request([m], () => ({ t: 'evaluate', request, role, limit, batchSize: Math.max(this.train.batchSize, 64) }),
          (_w, msg) => (msg.t === 'evaluation' && msg.request === request ? msg.result : undefined), { what: `${role} evaluation` });
        return got.get(m)!;
      } catch (err) {
        if (!(err instanceof MemberLost)) throw err;
      }
    }
  }

  private async checkpoint(name: 'last' | 'best'): Promise<string> {
    const path = checkpointPath(this.dir, name);
    const host = await this.pullState(name === 'last');
    writeCheckpoint(path, host, {
      state: this.state,
      model: JSON.stringify({ config: this.o.config.model, shape: modelShapeOf(this.data, this.o.config.data.maxLength) }),
      info: JSON.stringify({ workers: this.ring.filter((m) => !m.lost).length }),
    });
    this.runLog.event('checkpoint', { name, step: this.state.step });
    return path;
  }

  private async validate(): Promise<Evaluation> {
    const e = await this.evaluate('valid', this.train.evalUsers ?? null);
    this.runLog.record({ kind: 'eval', step: this.state.step, ...e });
    this.o.hooks?.onEvaluation?.(e, this.state.step);
    return e;
  }

  /** One step: attempts until one is committed; returns its report. */
  private async step(): Promise<ClusterStepReport> {
    const t = this.train;
    const L = this.o.config.data.maxLength;
    const indices = this.schedule!.indices(this.state.epoch, this.state.position);
    const lr = learningRate(this.state.step, { peak: t.lr, warmup: t.warmupSteps, total: this.totalSteps, minRatio: t.minLrRatio });
    const step = this.state.step + 1;
    const checksum = step % this.cluster.checksumEvery === 0;
    let tokens = 0;
    for (const i of indices) tokens += this.windows[i].end - this.windows[i].start;
    const t0 = performance.now();
    for (let attempt = 1; ; attempt++) {
      await this.admitNewcomers();
      if (this.ringDirty) await this.formRing();
      const members = this.ring;
      const assignment = assignRows(this.data, this.windows, indices, L, members.length);
      this.inflight = { step, attempt };
      await this.o.hooks?.onStepStart?.({ step, attempt, members: members.map((m) => ({ id: m.id, pid: m.ready.pid })) });
      let reduced: Map<Member, Message<'reduced'>>;
      try {
        reduced = await this.pool.request(members, () => ({
          t: 'step', step, attempt, gen: this.gen, epoch: this.state.epoch, position: this.state.position, lr, maxGradNorm: t.maxGradNorm,
          windows: bytesOf(indices), assignment: bytesOf(assignment), checksum,
        }), (_m, msg) => (msg.t === 'reduced' && msg.step === step && msg.attempt === attempt ? msg : undefined), { what: `step ${step}` });
      } catch (err) {
        if (!(err instanceof MemberLost)) throw err;
        for (const m of members) if (!m.lost) m.channel.send({ t: 'abort', step, attempt, reason: err.message });
        this.discarded++;
        this.ringDirty = true;
        this.runLog.event('abort', { step, attempt, workers: members.map((m) => m.id), reason: err.message });
        this.log.warn({ step, attempt, reason: err.message }, 'step discarded; redoing it on the remaining workers');
        continue;
      }
      const rows = [...reduced.values()].reduce((s, r) => s + r.rows, 0);
      if (rows !== indices.length) throw new PantherError('E_CLUSTER', `workers computed ${rows} rows of the ${indices.length}-row batch at step ${step}`, 'coordinator');
      const applied = await this.pool.request(members, () => ({ t: 'commit', step, attempt }),
        (_m, msg) => (msg.t === 'applied' && msg.step === step && msg.attempt === attempt ? msg : undefined), { tolerateLoss: true, what: `applying step ${step}` });
      if (applied.size === 0) {
        throw new PantherError('E_CLUSTER', `every worker was lost while applying step ${step}: resume from the last checkpoint (${checkpointPath(this.dir, 'last')})`, 'coordinator');
      }
      if (checksum) this.compareChecksums(step, applied);
      const seconds = (performance.now() - t0) / 1000;
      const inOrder = members.filter((m) => reduced.has(m)).map((m) => reduced.get(m)!);
      const next = inOrder.reduce((s, r) => s + r.next, 0);
      const contrastive = inOrder.find((r) => r.contrastive !== null)?.contrastive ?? null;
      const loss = contrastive === null ? next : next + this.o.config.model.profile.contrastiveWeight * contrastive;
      const first = members.find((m) => applied.has(m))!;
      this.runLog.event('commit', { step, attempt, workers: members.length });
      for (const at of this.lostAt.splice(0)) this.recoverySeconds.push((performance.now() - at) / 1000);
      this.state.step = step;
      this.state.events += tokens;
      this.state.position++;
      if (this.state.position >= this.batchesPerEpoch) {
        this.state.epoch++;
        this.state.position = 0;
      }
      return {
        step, totalSteps: this.totalSteps, epoch: this.state.epoch, loss, lossNext: next, lossContrastive: contrastive,
        lr, gradNorm: applied.get(first)!.gradNorm ?? 0, eventsPerSecond: tokens / seconds, events: tokens, workers: members.length, attempts: attempt,
      };
    }
  }

  private compareChecksums(step: number, applied: Map<Member, Message<'applied'>>): void {
    const sums = new Map<string, string[]>();
    for (const [m, a] of applied) {
      const key = a.checksum ?? 'none';
      sums.set(key, [...(sums.get(key) ?? []), m.id]);
    }
    if (sums.size > 1) {
      const detail = [...sums].map(([sum, ids]) => `${ids.join(', ')}: ${sum.slice(0, 12)}`).join('; ');
      throw new PantherError('E_DIVERGED', `replicas diverged at step ${step} (parameter checksums ${detail}); stopping the run`, 'coordinator');
    }
    this.runLog.event('checksum', { step, checksum: [...sums.keys()][0] });
  }

  /** A checkpoint's tensors as host arrays in manifest order, checked against the model. */
  private hostFromCheckpoint(ckpt: LoadedCheckpoint, path: string, withOptimizer: boolean): HostTrainingState {
    const host: HostTrainingState = { params: new Map(), optimizer: withOptimizer ? { stepCount: ckpt.optimizerSteps, states: new Map() } : null };
    for (const e of this.manifest!) {
      const size = e.shape.reduce((a, b) => a * b, 1);
      const get = (name: string) => {
        const t = ckpt.tensors.get(name);
        if (!t || !(t.data instanceof Float32Array) || t.data.length !== size) throw new PantherError('E_SHAPE', `tensor '${name}' is missing or does not match the model [${e.shape}]`, path);
        return t.data;
      };
      host.params.set(e.name, { data: get(e.name), shape: [...e.shape] });
      if (!withOptimizer) continue;
      const step = ckpt.tensors.get(`optimizer.step.${e.name}`);
      if (!step) throw new PantherError('E_ARGUMENT', `has no optimizer state for '${e.name}'`, path);
      host.optimizer!.states.set(e.name, { m: get(`optimizer.m.${e.name}`), v: get(`optimizer.v.${e.name}`), step: step.data[0] });
    }
    return host;
  }

  /** Waits for the workers, trains, checkpoints and evaluates; then shuts the workers down. */
  async run(): Promise<ClusterSummary> {
    mkdirSync(this.dir, { recursive: true });
    const last = checkpointPath(this.dir, 'last');
    const ckpt = this.o.resume && existsSync(last) ? readCheckpoint(last) : null;
    if (ckpt) {
      this.state = { ...ckpt.state };
      this.runLog.resumeAt(this.state.step);
      this.log.info({ step: this.state.step, epoch: this.state.epoch, path: last }, 'resuming from checkpoint');
    } else {
      this.runLog.start();
    }
    this.data.tokenizer.save(join(this.dir, 'tokenizer.json'));
    try {
      await this.pool.waitForMembers(this.expected, this.cluster.joinTimeoutMs);
      await this.formRing();
      if (ckpt) await this.pushState(this.hostFromCheckpoint(ckpt, last, true), this.ring);
      return await this.loop();
    } finally {
      await this.pool.shutdown(this.fatal ? `the run failed: ${this.fatal.message}` : 'the run is over');
    }
  }

  private async loop(): Promise<ClusterSummary> {
    const t = this.train;
    const started = performance.now();
    const eventsAtStart = this.state.events;
    let stoppedEarly = false;
    let lastEval: Evaluation | null = null;
    try {
      while (this.state.step < this.totalSteps) {
        const r = await this.step();
        if (!Number.isFinite(r.loss)) throw new PantherError('E_CLUSTER', `training diverged at step ${r.step}: loss ${r.loss}`, 'coordinator');
        this.runLog.record({
          kind: 'step', step: r.step, epoch: r.epoch, loss: r.loss, next: r.lossNext, contrastive: r.lossContrastive, lr: r.lr,
          gradNorm: r.gradNorm, eventsPerSecond: Math.round(r.eventsPerSecond), workers: r.workers, attempts: r.attempts,
        });
        this.o.hooks?.onStep?.(r);
        const atEnd = this.state.step >= this.totalSteps;
        if (this.state.step % t.evalEvery === 0 || atEnd) {
          lastEval = await this.validate();
          const v = noteValidation(this.state, lastEval, t.patience);
          if (v.best) await this.checkpoint('best');
          stoppedEarly = v.stop;
        }
        if (this.state.step % t.checkpointEvery === 0 || atEnd || stoppedEarly) await this.checkpoint('last');
        if (stoppedEarly) {
          this.log.info({ step: this.state.step, bestStep: this.state.bestStep }, 'early stop: validation NDCG@10 stopped improving');
          break;
        }
      }
    } catch (err) {
      this.fatal = err as Error;
      throw err;
    }
    const seconds = (performance.now() - started) / 1000;
    let curves: string | null = null;
    try {
      curves = (await plotCurves(this.runLog.curve, join(this.dir, 'curves'), `training ${this.dir} on ${this.ring.length} workers`)).png;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not draw the training curves');
    }
    // Report the best validated model (as the Trainer does): load it into the replica that evaluates.
    const best = checkpointPath(this.dir, 'best');
    if (existsSync(best) && this.state.bestStep !== this.state.step) {
      const evaluator = this.ring.find((m) => !m.lost) ?? this.pool.live()[0];
      if (evaluator) await this.pushState(this.hostFromCheckpoint(readCheckpoint(best), best, false), [evaluator]);
    }
    const valid = lastEval && this.state.bestStep === this.state.step ? lastEval : existsSync(best) ? await this.validate() : lastEval;
    const test = this.o.test === false ? null : await this.evaluate('test', null);
    const events = this.state.events - eventsAtStart;
    const summary: ClusterSummary = {
      steps: this.state.step,
      epochs: this.state.step / this.batchesPerEpoch,
      events,
      seconds,
      eventsPerSecond: events / Math.max(seconds, 1e-9),
      stoppedEarly,
      bestStep: this.state.bestStep,
      valid,
      test,
      parameters: this.manifest!.reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0),
      checkpoint: existsSync(best) ? best : checkpointPath(this.dir, 'last'),
      curves,
      workers: this.ring.filter((m) => !m.lost).length,
      joined: this.joined,
      lost: this.lost,
      discardedAttempts: this.discarded,
      recoverySeconds: this.recoverySeconds,
    };
    writeFileSync(join(this.dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  }

  /** Stops listening and tells any workers to leave (idempotent). */
  async close(): Promise<void> {
    if (!this.pool.closing) await this.pool.shutdown('coordinator closing');
  }
}
