import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The scorer's Prometheus metrics, in a registry of its own (one per server). */
export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'panther_requests_total', help: 'HTTP requests by route and status code', labelNames: ['route', 'status'] as const, registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'panther_request_duration_seconds',
    help: 'time from request to response, by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({ name: 'panther_cache_hits_total', help: 'scored events whose user had a cached embedding and prior', registers: [this.registry] });
  readonly cacheMisses = new Counter({ name: 'panther_cache_misses_total', help: 'scored events whose user had none (population default)', registers: [this.registry] });
  readonly localHits = new Counter({ name: 'panther_local_cache_hits_total', help: 'user entries found in the in-memory cache of the served version', registers: [this.registry] });
  readonly localMisses = new Counter({ name: 'panther_local_cache_misses_total', help: 'user entries read from Redis (then cached)', registers: [this.registry] });
  readonly redisErrors = new Counter({ name: 'panther_redis_errors_total', help: 'requests answered 503 because Redis failed', registers: [this.registry] });
  readonly version = new Gauge({ name: 'panther_embedding_version', help: 'the embedding version being served (0: none yet)', registers: [this.registry] });
  readonly scored = new Counter({ name: 'panther_events_scored_total', help: 'events scored (single and batch)', registers: [this.registry] });
}
