import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { PantherError } from '../errors.js';
import type { FraudModel } from '../fraud/model.js';
import type { ServeConfig } from './config.js';
import type { UserEntry } from './entry.js';
import { ServeMetrics } from './metrics.js';
import { eventTime, LoadedVersion, scoreEvent, type ScoreAnswer, type ScoreRequest } from './scorer.js';
import { EmbeddingStore } from './store.js';

/**
 * The online scorer over HTTP (fastify): POST /v1/score, POST /v1/score/batch, GET /health,
 * GET /metrics. Requests are validated by JSON schemas (a malformed one gets 400 naming the
 * field); the user's entry is read from the current version in Redis (one round trip) or
 * from an in-memory LRU cache of that version (a finished version never changes, so an entry
 * cached once stays right until the pointer moves and the cache goes with the old version),
 * and the score computed on the CPU. While the Redis connection is down every request answers
 * 503, cached or not (the pointer may have moved meanwhile), and once Redis is back the same
 * client reconnects and requests succeed again.
 */
const eventSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    time: { anyOf: [{ type: 'number' }, { type: 'string', minLength: 1, maxLength: 64 }] },
    amount: { type: 'number', minimum: 0 },
    item: { type: 'string', minLength: 1, maxLength: 256 },
    type: { type: 'string', minLength: 1, maxLength: 128 },
    category: { type: 'string', minLength: 1, maxLength: 128 },
    channel: { type: 'string', minLength: 1, maxLength: 128 },
    attrs: { type: 'object', additionalProperties: { type: 'string', maxLength: 256 }, maxProperties: 32 },
  },
} as const;

const requestSchema = {
  type: 'object',
  required: ['user', 'event'],
  additionalProperties: false,
  properties: {
    user: { type: 'string', minLength: 1, maxLength: 256 },
    event: eventSchema,
    features: { type: 'object', additionalProperties: { type: 'number' }, maxProperties: 64 },
  },
} as const;

export interface ScoreServerOptions {
  redisUrl: string;
  keyPrefix: string;
  model: FraudModel;
  serve: ServeConfig;
  log?: Logger;
}

/** A user's entry in the served version, or `false`: the version has none for that user. */
type Cached = UserEntry | false;

/** A loaded version with the entries read from it so far. */
interface Served {
  version: LoadedVersion;
  entries: LRUCache<string, Cached> | null;
}

export class ScoreServer {
  readonly app: FastifyInstance;
  readonly metrics = new ServeMetrics();
  readonly redis: Redis;
  readonly store: EmbeddingStore;
  private loaded: Served | null = null;
  private loading: Promise<Served | null> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: ScoreServerOptions) {
    // No offline queue and no retries: while Redis is away a command fails at once (503)
    // instead of piling up; the client keeps reconnecting in the background.
    this.redis = new Redis(o.redisUrl, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: o.serve.redisTimeoutMs,
      retryStrategy: (times) => Math.min(50 * times, 500),
    });
    this.redis.on('error', (err) => o.log?.debug({ err: err.message }, 'redis'));
    this.store = new EmbeddingStore(this.redis, o.keyPrefix);
    this.app = Fastify({
      logger: false,
      bodyLimit: 4 * 1024 * 1024,
      ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    });
    this.routes();
  }

  /** The version in use, loading a newer one when the pointer moved. */
  private refresh(): Promise<Served | null> {
    this.loading ??= (async () => {
      try {
        const current = await this.store.current();
        if (current === null) return this.loaded;
        if (this.loaded?.version.version !== current) {
          const max = this.o.serve.cacheEntries;
          this.loaded = { version: await LoadedVersion.load(this.store, current), entries: max > 0 ? new LRUCache<string, Cached>({ max }) : null };
          this.metrics.version.set(current);
          this.o.log?.info({ version: current }, 'serving embedding version');
        }
        return this.loaded;
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  private async version(): Promise<Served> {
    if (this.redis.status !== 'ready') throw new PantherError('E_REDIS_UNAVAILABLE', `Redis is unavailable (connection ${this.redis.status}); retry shortly`, this.o.redisUrl);
    const v = this.loaded ?? (await this.refresh());
    if (!v) throw new PantherError('E_NO_VERSION', 'no embedding version has been finished yet: run panther embed', 'serve');
    return v;
  }

  /** The users' entries in the served version: from the cache, the rest in one Redis pipeline. */
  private async entries(v: Served, users: readonly string[]): Promise<(UserEntry | null)[]> {
    const out: (UserEntry | null)[] = new Array(users.length).fill(null);
    const missing: number[] = [];
    users.forEach((u, i) => {
      const hit = v.entries?.get(u);
      if (hit === undefined) missing.push(i);
      else out[i] = hit || null;
    });
    if (v.entries) {
      this.metrics.localHits.inc(users.length - missing.length);
      this.metrics.localMisses.inc(missing.length);
    }
    if (missing.length) {
      const meta = v.version.meta;
      const read = await this.store.readEntries(meta.version, meta.buckets, missing.map((i) => users[i]));
      missing.forEach((i, k) => {
        out[i] = read[k];
        v.entries?.set(users[i], read[k] ?? false);
      });
    }
    return out;
  }

  private score(v: LoadedVersion, req: ScoreRequest, entry: UserEntry | null): ScoreAnswer {
    if (entry) this.metrics.cacheHits.inc();
    else this.metrics.cacheMisses.inc();
    this.metrics.scored.inc();
    return scoreEvent(v, this.o.model, req, entry);
  }

  private routes(): void {
    const app = this.app;
    const m = this.metrics;
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unknown';
      m.requests.inc({ route, status: String(reply.statusCode) });
      m.latency.observe({ route }, reply.elapsedTime / 1000);
    });
    app.setErrorHandler((err: FastifyError & { code?: string }, _request, reply) => {
      if (err.validation?.length) {
        const v = err.validation[0];
        const params = v.params as Record<string, unknown>;
        const extra = (params.missingProperty ?? params.additionalProperty) as string | undefined;
        const path = [...v.instancePath.split('/').filter(Boolean), ...(extra ? [extra] : [])].join('.') || '(body)';
        return reply.code(400).send({ code: 'E_REQUEST', field: path, message: `${path}: ${params.additionalProperty ? 'is not a known field' : v.message}` });
      }
      if (err instanceof PantherError) {
        const status = err.code === 'E_REQUEST' ? 400 : err.code === 'E_NO_VERSION' || err.code === 'E_REDIS_UNAVAILABLE' ? 503 : 500;
        if (err.code === 'E_REDIS_UNAVAILABLE') m.redisErrors.inc();
        return reply.code(status).send({ code: err.code, ...(err.code === 'E_REQUEST' ? { field: err.where } : {}), message: err.message });
      }
      if (isRedisError(err)) {
        m.redisErrors.inc();
        return reply.code(503).send({ code: 'E_REDIS_UNAVAILABLE', message: `Redis is unavailable (${err.message}); retry shortly` });
      }
      if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ code: 'E_REQUEST', field: '(body)', message: err.message });
      this.o.log?.error({ err: err.message }, 'scoring failed');
      return reply.code(500).send({ code: 'E_INTERNAL', message: err.message });
    });

    app.post<{ Body: ScoreRequest }>('/v1/score', { schema: { body: requestSchema } }, async (request) => {
      eventTime(request.body.event.time); // a bad time is a 400 before any Redis work
      const v = await this.version();
      const [entry] = await this.entries(v, [request.body.user]);
      return this.score(v.version, request.body, entry);
    });

    app.post<{ Body: { events: ScoreRequest[] } }>('/v1/score/batch', {
      schema: { body: { type: 'object', required: ['events'], additionalProperties: false, properties: { events: { type: 'array', minItems: 1, maxItems: this.o.serve.maxBatch, items: requestSchema } } } },
    }, async (request) => {
      const events = request.body.events;
      events.forEach((e, i) => {
        try {
          eventTime(e.event.time);
        } catch (err) {
          if (err instanceof PantherError) throw new PantherError('E_REQUEST', err.message, `events.${i}.event.time`);
          throw err;
        }
      });
      const v = await this.version();
      const entries = await this.entries(v, events.map((e) => e.user));
      return { version: v.version.version, results: events.map((e, i) => this.score(v.version, e, entries[i])) };
    });

    app.get('/health', async (_request, reply) => {
      let redis = 'up';
      try {
        await this.redis.ping();
        await this.refresh();
      } catch {
        redis = 'down';
      }
      const ok = redis === 'up' && this.loaded !== null;
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', redis, version: this.loaded?.version.version ?? null, model: this.o.model.features.length });
    });

    app.get('/metrics', async (_request, reply) => {
      reply.header('content-type', m.registry.contentType);
      return m.registry.metrics();
    });
  }

  /** Connects to Redis, loads the current version (if any), starts polling the pointer, listens. */
  async listen(): Promise<string> {
    try {
      await this.redis.connect();
    } catch (err) {
      throw new PantherError('E_REDIS_UNAVAILABLE', `cannot reach Redis (${(err as Error).message})`, this.o.redisUrl);
    }
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.o.serve.pointerRefreshMs);
    this.timer.unref();
    return this.app.listen({ host: this.o.serve.host, port: this.o.serve.port });
  }

  get servedVersion(): number | null {
    return this.loaded?.version.version ?? null;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.app.close();
    this.redis.disconnect();
  }
}

function isRedisError(err: Error & { code?: string }): boolean {
  const text = `${err.name} ${err.message}`;
  return /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|Command timed out|MaxRetriesPerRequest|enableOfflineQueue|EPIPE/i.test(text) || err.code === 'ECONNREFUSED';
}
