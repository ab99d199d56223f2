import { z } from 'zod';

/**
 * Schemas of the `data:` section of cluster.yaml (wired into ClusterConfigSchema by the
 * config module). They validate options up front and are the single source of defaults.
 */

export const OnBadRowSchema = z.enum(['error', 'skip'])
  .describe("what a malformed row does: 'error' stops with file:line: field, 'skip' drops it and counts it per reason in the dataset metadata");

export const TimestampFormatSchema = z.enum(['iso', 'unix-s', 'unix-ms'])
  .describe("iso: '2024-05-01T13:45:00Z' or '2024-05-01 13:45:00' (no zone = UTC); unix-s / unix-ms: numbers since the epoch");

/** Column (CSV header name or JSON key) holding each event field. Only user and timestamp are required. */
export const EventColumnsSchema = z.strictObject({
  user: z.string().min(1),
  timestamp: z.string().min(1),
  type: z.string().min(1).optional().describe('event type; without it every event has `defaultType`'),
  amount: z.string().min(1).optional().describe('non-negative number'),
  item: z.string().min(1).optional().describe('item or merchant id'),
  category: z.string().min(1).optional(),
  channel: z.string().min(1).optional(),
  label: z.string().min(1).optional().describe('0/1 (also true/false)'),
  scenario: z.string().min(1).optional().describe('integer id of the labelled scenario'),
  id: z.string().min(1).optional().describe("the record's own id, kept to join scores back"),
});

export const ProfileTableSchema = z.strictObject({
  path: z.string().min(1),
  format: z.enum(['csv', 'jsonl']).optional().describe('default: from the file extension'),
  userColumn: z.string().min(1),
  attributes: z.array(z.string().min(1)).min(1).describe('categorical columns that make the static profile'),
});

/**
 * The user's own events: one CSV (header line) or JSON-lines file, optionally gzipped,
 * with column roles mapped here. Relative paths are resolved against the config file's folder.
 */
export const EventSourceSchema = z.strictObject({
  path: z.string().min(1),
  format: z.enum(['csv', 'jsonl']).optional().describe('default: from the extension (.csv, .jsonl, .ndjson, optionally .gz)'),
  name: z.string().min(1).default('events'),
  delimiter: z.string().length(1).default(','),
  columns: EventColumnsSchema,
  extraColumns: z.array(z.string().min(1)).default([]).describe('more categorical columns, kept as free attributes'),
  timestampFormat: TimestampFormatSchema.default('iso'),
  defaultType: z.string().min(1).default('event'),
  profile: ProfileTableSchema.optional(),
  onBadRow: OnBadRowSchema.optional().describe("default: data.onBadRow"),
});

export const SyntheticSchema = z.strictObject({
  users: z.int().min(1).default(2000),
  days: z.int().min(14).default(90),
  seed: z.int().default(1),
  start: z.iso.date().default('2024-01-01').describe('first day (UTC)'),
  fraud: z
    .strictObject({
      accountTakeover: z.number().min(0).max(1).default(0.02).describe('fraction of users whose account is taken over'),
      cardTesting: z.number().min(0).max(1).default(0.01).describe('fraction of users hit by a card-testing burst'),
      compromisedMerchants: z.int().min(0).default(2).describe('merchants compromised partway through'),
    })
    .prefault({}),
});

const dir = z.string().min(1).optional().describe('folder of the files (default: <data root>/<data set>)');

export const DataSourceSchema = z.discriminatedUnion('kind', [
  SyntheticSchema.extend({ kind: z.literal('synthetic') }),
  z.strictObject({ kind: z.literal('movielens-100k'), dir }),
  z.strictObject({ kind: z.literal('s3rec'), dataset: z.enum(['Beauty', 'Sports_and_Outdoors', 'Yelp', 'LastFM']).default('Beauty'), dir }),
  z.strictObject({ kind: z.literal('sasrec-games'), dir }),
  z.strictObject({ kind: z.literal('fraud-handbook'), dir }),
  EventSourceSchema.extend({ kind: z.literal('events') }),
]);

export const SplitSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('auto') }).describe('time split for fraud-handbook (its standard protocol), leave-one-out otherwise'),
  z.strictObject({ kind: z.literal('leave-one-out') }).describe('per user: last event test, the one before validation, the rest training'),
  z.strictObject({
    kind: z.literal('time'),
    trainStart: z.iso.date().describe('labelled training window starts (UTC); earlier events are history only'),
    trainDays: z.number().positive().default(7),
    delayDays: z.number().min(0).default(7).describe('gap between training and test (labels not known yet)'),
    testDays: z.number().positive().default(7),
    fitEnd: z.enum(['train-end', 'train-start']).optional()
      .describe('where the events that pretraining and the tokenizer fit on end (default train-end): after the labelled training window, or before it, so that its rows get behaviour features out of sample as the test rows do'),
  }),
]);

/** Default amount bucket edges: 0, <1, 1-2, 2-5, 5-10, ... , >=10000. */
export const DEFAULT_AMOUNT_EDGES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export const TokenizerSchema = z.strictObject({
  target: z.enum(['auto', 'composite', 'item', 'item-amount']).default('auto')
    .describe("the prediction target: composite attribute tokens (payments), the item id (next-item data), or (item, amount bucket) (terminals); auto = the data set's natural one"),
  levels: z.array(z.array(z.string().min(1)).min(1)).min(1).optional()
    .describe('back-off levels, finest first, each a list of fields (type, category, channel, item, amount, hour, weekpart, weekday, gap, extra:<name>); default: from target'),
  minCount: z.int().min(1).optional().describe('training occurrences a token needs; default 10 composite, 1 item, 5 item-amount'),
  maxVocab: z.int().min(8).default(32768).describe('tokens including the specials; most frequent kept'),
  attributeMinCount: z.int().min(1).default(1).describe('occurrences an input attribute value needs, else <unk>'),
  maxAttributeVocab: z.int().min(8).default(65536),
  amountEdges: z.array(z.number().positive()).min(1).default(DEFAULT_AMOUNT_EDGES)
    .refine((a) => a.every((v, i) => i === 0 || v > a[i - 1]), 'must increase'),
  utcOffsetHours: z.number().min(-14).max(14).default(0).describe('local time of the data, for hour and weekday buckets'),
  extraAttributes: z.union([z.literal('all'), z.array(z.string().min(1))]).default('all')
    .describe("which free event attributes become input attributes ('all' = every one seen in training)"),
});

export const DataSchema = z.strictObject({
  source: DataSourceSchema.prefault({ kind: 'synthetic' }),
  split: SplitSchema.prefault({ kind: 'auto' }),
  tokenizer: TokenizerSchema.prefault({}),
  maxLength: z.int().min(2).default(128).describe('events per training window'),
  cacheDir: z.string().min(1).default('.cache/panther').describe('tokenized data sets, keyed by input content and options'),
  onBadRow: OnBadRowSchema.default('error'),
  dataRoot: z.string().min(1).optional().describe('default: PANTHER_DATA_ROOT, else ../shared/data next to the repository'),
});

export type EventSourceConfig = z.infer<typeof EventSourceSchema>;
export type SyntheticConfig = z.infer<typeof SyntheticSchema>;
export type DataSource = z.infer<typeof DataSourceSchema>;
export type SplitConfig = z.infer<typeof SplitSchema>;
export type TokenizerConfig = z.infer<typeof TokenizerSchema>;
/** What callers may pass (defaults not yet applied). */
export type TokenizerInput = z.input<typeof TokenizerSchema>;
export type DataConfig = z.infer<typeof DataSchema>;
export type OnBadRow = z.infer<typeof OnBadRowSchema>;
