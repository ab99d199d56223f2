import type { BehaviorEvent } from '../data/events.js';
import { Tokenizer } from '../data/tokenizer.js';
import { PantherError } from '../errors.js';
import { EVENT_FEATURES, eventFeatures } from '../fraud/features.js';
import { embeddingFeatureNames, type FraudModel } from '../fraud/model.js';
import { project } from '../fraud/projection.js';
import type { Population, UserEntry, VersionMeta } from './entry.js';
import { CachedPrior, DensePrior, type Deviation } from './prior.js';
import type { EmbeddingStore } from './store.js';

/**
 * Scoring one live event on the CPU: the event becomes a token with the version's own
 * tokenizer; its deviation from the user's cached prior (or from the population prior when
 * the user has no entry) and the projection of the cached state join the event's own
 * features in the discriminative model.
 */
export interface LiveEvent {
  /** Seconds since the epoch, or an ISO date-time; default now. */
  time?: number | string;
  amount?: number;
  item?: string;
  type?: string;
  category?: string;
  channel?: string;
  attrs?: Record<string, string>;
}

export interface ScoreRequest {
  user: string;
  event: LiveEvent;
  /** Features the caller's feature store has (customer_tx_7d, terminal_risk_30d, ...). */
  features?: Record<string, number>;
}

export interface ScoreAnswer {
  user: string;
  version: number;
  fraudProbability: number;
  /** True when the user has no cached entry and the population prior was used. */
  populationDefault: boolean;
  deviation: Deviation & { tokenName: string };
  prototype: { index: number; weight: number } | null;
  /** Model features the request did not carry, filled with their training medians. */
  imputed: string[];
}

/** A version as the scorer holds it in memory: tokenizer, head, population prior. */
export class LoadedVersion {
  readonly tokenizer: Tokenizer;
  readonly population: DensePrior;
  readonly defaultType: string;

  constructor(readonly meta: VersionMeta, readonly populationEntry: Population | null) {
    this.tokenizer = Tokenizer.fromJSON(JSON.parse(meta.tokenizer));
    this.population = new DensePrior(meta.populationLogProbs);
    const types = this.tokenizer.attributes[this.tokenizer.attributeIndex('type')].values;
    this.defaultType = types[3] ?? 'event';
  }

  get version(): number {
    return this.meta.version;
  }

  static async load(store: EmbeddingStore, version: number): Promise<LoadedVersion> {
    const meta = await store.readMeta(version);
    if (!meta) throw new PantherError('E_NO_VERSION', `version ${version} has no metadata (removed, or not finished)`, store.versionKey(version, 'meta'));
    return new LoadedVersion(meta, await store.readPopulation(version));
  }
}

export function eventTime(time: LiveEvent['time'], now = Date.now()): number {
  if (time === undefined) return Math.floor(now / 1000);
  if (typeof time === 'number') return time;
  const ms = Date.parse(time);
  if (!Number.isFinite(ms)) throw new PantherError('E_REQUEST', `not a date-time: ${JSON.stringify(time)}`, 'event.time');
  return ms / 1000;
}

export function scoreEvent(v: LoadedVersion, model: FraudModel, req: ScoreRequest, entry: UserEntry | null): ScoreAnswer {
  const time = eventTime(req.event.time);
  const e = req.event;
  const event: BehaviorEvent = {
    user: req.user, time, type: e.type ?? v.defaultType,
    ...(e.amount !== undefined ? { amount: e.amount } : {}),
    ...(e.item !== undefined ? { item: e.item } : {}),
    ...(e.category !== undefined ? { category: e.category } : {}),
    ...(e.channel !== undefined ? { channel: e.channel } : {}),
    ...(e.attrs ? { attrs: e.attrs } : {}),
  };
  // The previous event only sets the gap bucket of this one.
  const history = entry ? [{ ...event, time: Math.min(entry.lastTime, time) }, event] : [event];
  const token = v.tokenizer.encode(history).tokens[history.length - 1];
  const prior = entry ? new CachedPrior(entry.prior, entry.state, v.meta.head) : v.population;
  const dev = prior.deviation(token);
  const own = eventFeatures(time, e.amount ?? 0);
  const values = new Map<string, number>();
  EVENT_FEATURES.forEach((f, i) => values.set(f, own[i]));
  values.set('prior_nll', dev.nll);
  values.set('prior_log2_rank', Math.log2(Math.max(1, dev.rank)));
  values.set('prior_delta', dev.delta);
  values.set('prior_top_prob', dev.topProb);
  values.set('prior_missing', entry ? 0 : 1);
  const projection = model.projection;
  if (projection) {
    const names = embeddingFeatureNames(projection.components.length);
    if (entry && entry.state.length !== projection.mean.length) {
      throw new PantherError('E_CONFIG', `the fraud model projects ${projection.mean.length}-wide states, version ${v.version} has ${entry.state.length}`, 'scorer');
    }
    const p = entry ? project(projection, entry.state) : names.map(() => 0);
    names.forEach((n, i) => values.set(n, p[i]));
  }
  const { probability, imputed } = model.score((f) => values.get(f) ?? req.features?.[f]);
  return {
    user: req.user,
    version: v.version,
    fraudProbability: probability,
    populationDefault: entry === null,
    deviation: { ...dev, tokenName: v.tokenizer.tokenNames[token] },
    prototype: entry?.prototype ?? null,
    imputed,
  };
}
