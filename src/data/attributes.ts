import type { BehaviorEvent, Clock } from './events.js';

/**
 * Attribute discretization and vocabularies, the first half of structured tokenization:
 * each event attribute becomes a small integer (its embedding row). Every vocabulary starts
 * with the same three specials so that 0 is always padding.
 */
export const ATTR_PAD = 0;
export const ATTR_UNK = 1; // a value too rare (or unseen in training)
export const ATTR_NONE = 2; // the event has no such attribute
export const ATTRIBUTE_SPECIALS = ['<pad>', '<unk>', '<none>'] as const;
const FIRST = ATTRIBUTE_SPECIALS.length;

export const HOUR_BUCKETS = ['night', 'morning', 'afternoon', 'evening'] as const; // 0-6, 6-12, 12-18, 18-24
export const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;
export const WEEKPARTS = ['weekday', 'weekend'] as const;
export const GAP_BUCKETS = ['first', '<1m', '<1h', '<1d', '<1w', '>=1w'] as const;
const GAP_LIMITS = [60, 3600, 86_400, 7 * 86_400];

/** The fields every event can have; free attributes join them as `extra:<name>`. */
export const BASE_FIELDS = ['type', 'category', 'channel', 'item', 'amount', 'hour', 'weekday', 'gap'] as const;
export type BaseField = (typeof BASE_FIELDS)[number];
const BUCKETED: ReadonlySet<string> = new Set(['amount', 'hour', 'weekday', 'gap']);

export const EXTRA_PREFIX = 'extra:';

/** Human labels of the amount buckets for these edges: '0', '<1', '1-2', ..., '>=10000'. */
export function amountBucketLabels(edges: readonly number[]): string[] {
  const labels = ['0', `<${edges[0]}`];
  for (let i = 1; i < edges.length; i++) labels.push(`${edges[i - 1]}-${edges[i]}`);
  labels.push(`>=${edges[edges.length - 1]}`);
  return labels;
}

/** Index into `amountBucketLabels(edges)`. */
export function amountBucket(amount: number, edges: readonly number[]): number {
  if (amount <= 0) return 0;
  let i = 0;
  while (i < edges.length && amount >= edges[i]) i++;
  return i + 1;
}

export function gapBucket(gapSeconds: number | undefined): number {
  if (gapSeconds === undefined) return 0;
  let i = 0;
  while (i < GAP_LIMITS.length && gapSeconds >= GAP_LIMITS[i]) i++;
  return i + 1;
}

export interface AttributeVocab {
  name: string;
  /** Including the specials at 0, 1, 2. */
  values: string[];
  index: Map<string, number>;
}

export function vocabFrom(name: string, values: readonly string[]): AttributeVocab {
  const all = [...ATTRIBUTE_SPECIALS, ...values];
  return { name, values: all, index: new Map(all.map((v, i) => [v, i])) };
}

/** Most frequent first (ties by value, code-unit order), values seen fewer than minCount times dropped. */
export function categoricalVocab(name: string, counts: Map<string, number>, minCount: number, maxSize: number): AttributeVocab {
  const kept = [...counts]
    .filter(([, c]) => c >= minCount)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, Math.max(0, maxSize - FIRST))
    .map(([v]) => v);
  return vocabFrom(name, kept);
}

export function bucketVocab(name: string, amountEdges: readonly number[]): AttributeVocab {
  switch (name) {
    case 'amount':
      return vocabFrom(name, amountBucketLabels(amountEdges));
    case 'hour':
      return vocabFrom(name, HOUR_BUCKETS);
    case 'weekday':
      return vocabFrom(name, WEEKDAYS);
    case 'gap':
      return vocabFrom(name, GAP_BUCKETS);
    default:
      throw new Error(`not a bucketed field: ${name}`);
  }
}

export function isBucketed(field: string): boolean {
  return BUCKETED.has(field);
}

/** Reads a categorical field's raw value (undefined when the event has none); one closure per field, as this is the hot path. */
export function categoricalAccessor(field: string): (e: BehaviorEvent) => string | undefined {
  switch (field) {
    case 'type':
      return (e) => e.type;
    case 'category':
      return (e) => e.category;
    case 'channel':
      return (e) => e.channel;
    case 'item':
      return (e) => e.item;
    default: {
      if (!field.startsWith(EXTRA_PREFIX)) throw new Error(`not a categorical field: ${field}`);
      const key = field.slice(EXTRA_PREFIX.length);
      return (e) => e.attrs?.[key];
    }
  }
}

const DAY = 86_400;
const AMOUNT = BASE_FIELDS.indexOf('amount');
const HOUR = BASE_FIELDS.indexOf('hour');
const WEEKDAY = BASE_FIELDS.indexOf('weekday');
const GAP = BASE_FIELDS.indexOf('gap');

/**
 * Reads an event's attribute ids. The vocabularies must start with BASE_FIELDS in order
 * (then any extra:<name>); the ids array has one more slot, for the derived weekpart.
 */
export class AttributeReader {
  private readonly categorical: { index: number; read: (e: BehaviorEvent) => string | undefined; values: Map<string, number> }[];

  constructor(
    readonly attributes: readonly AttributeVocab[],
    private readonly options: { amountEdges: readonly number[]; utcOffsetHours: number; clock: Clock },
  ) {
    BASE_FIELDS.forEach((f, i) => {
      if (attributes[i]?.name !== f) throw new Error(`attribute ${i} must be ${f}`);
    });
    this.categorical = attributes
      .map((a, index) => ({ index, a }))
      .filter(({ a }) => !isBucketed(a.name))
      .map(({ index, a }) => ({ index, read: categoricalAccessor(a.name), values: a.index }));
  }

  /** Attribute ids of events[i] into `ids`; the gap needs the event before it. */
  read(events: readonly BehaviorEvent[], i: number, ids: Int32Array): void {
    const e = events[i];
    const fields = this.categorical;
    for (let f = 0; f < fields.length; f++) {
      const v = fields[f].read(e);
      ids[fields[f].index] = v === undefined ? ATTR_NONE : (fields[f].values.get(v) ?? ATTR_UNK);
    }
    ids[AMOUNT] = e.amount === undefined ? ATTR_NONE : FIRST + amountBucket(e.amount, this.options.amountEdges);
    const weekpart = this.attributes.length;
    if (this.options.clock !== 'unix') {
      ids[HOUR] = ids[WEEKDAY] = ids[GAP] = ids[weekpart] = ATTR_NONE;
      return;
    }
    const local = e.time + this.options.utcOffsetHours * 3600;
    const secondOfDay = ((local % DAY) + DAY) % DAY;
    const weekday = (((Math.floor(local / DAY) + 3) % 7) + 7) % 7; // 1970-01-01 was a Thursday; Monday = 0
    ids[HOUR] = FIRST + Math.floor(secondOfDay / 21_600);
    ids[WEEKDAY] = FIRST + weekday;
    ids[GAP] = FIRST + gapBucket(i === 0 ? undefined : e.time - events[i - 1].time);
    ids[weekpart] = FIRST + (weekday >= 5 ? 1 : 0);
  }
}

export { FIRST as FIRST_VALUE };
