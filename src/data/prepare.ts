import { ATTR_NONE, ATTR_UNK, categoricalVocab } from './attributes.js';
import type { SplitConfig, TokenizerInput } from './config.js';
import type { Dataset, DatasetMeta } from './events.js';
import { splitDataset, type Split, type SplitCounts, type TimeWindow, ROLE } from './split.js';
import { Tokenizer, type EncodedEvents, type TokenizerContext } from './tokenizer.js';

/**
 * A dataset made ready for training: split, tokenized, and laid out as flat typed arrays
 * (all users' events back to back, `offsets` marking where each user starts). This is what
 * the cache stores and what batching reads.
 */
export interface PreparedData {
  meta: DatasetMeta;
  tokenizer: Tokenizer;
  split: { kind: Split['kind']; counts: SplitCounts; window?: TimeWindow };
  users: string[];
  /** users.length + 1 entries; user u's events are [offsets[u], offsets[u + 1]). */
  offsets: Int32Array;
  /** Per user: leading events that fitting and pretraining may see (split.ts). */
  fitLength: Int32Array;
  /** Per event: ROLE (train, valid, test, context). */
  role: Uint8Array;
  time: Float64Array;
  /** Per event: its target token, and the back-off level that produced it (-1 = <unk>). */
  tokens: Int32Array;
  levels: Int8Array;
  /** Aligned with `tokenizer.attributes`: per event attribute ids. */
  attributes: Int32Array[];
  amountLog: Float32Array;
  gapLog: Float32Array;
  /** -1 when unknown. */
  label: Int8Array;
  scenario: Int8Array;
  profile: PreparedProfiles;
  stats: PrepareStats;
}

export interface PreparedProfiles {
  fields: string[];
  /** Per field, its values (0 <pad>, 1 <unk>, 2 <none> first). */
  values: string[][];
  /** users x fields, row-major. */
  ids: Int32Array;
}

export interface PrepareStats {
  /** Events per back-off level (last entry: <unk>), over the fitted prefix and over test events. */
  levelsFit: number[];
  levelsTest: number[];
}

export function tokenizerContext(dataset: Dataset): TokenizerContext {
  return { clock: dataset.meta.clock, defaultTarget: dataset.meta.defaultTarget, items: dataset.items, itemNoun: dataset.meta.itemNoun };
}

/** Fits a tokenizer on the split's training prefixes only. */
export function fitTokenizer(dataset: Dataset, split: Split, config: TokenizerInput = {}): Tokenizer {
  const sequences = dataset.users.map((u, i) => ({ events: u.events, length: split.fitLength[i] }));
  return Tokenizer.fit(sequences, config, tokenizerContext(dataset));
}

export function prepareDataset(dataset: Dataset, options: { split: SplitConfig; tokenizer?: TokenizerInput }): PreparedData {
  const split = splitDataset(dataset, options.split);
  const tokenizer = fitTokenizer(dataset, split, options.tokenizer ?? {});
  const n = dataset.meta.counts.events;
  const users = dataset.users;
  const offsets = new Int32Array(users.length + 1);
  users.forEach((u, i) => (offsets[i + 1] = offsets[i] + u.events.length));
  const enc: EncodedEvents = {
    tokens: new Int32Array(n),
    levels: new Int8Array(n),
    attributes: tokenizer.attributes.map(() => new Int32Array(n)),
    amountLog: new Float32Array(n),
    gapLog: new Float32Array(n),
  };
  const time = new Float64Array(n);
  const label = new Int8Array(n).fill(-1);
  const scenario = new Int8Array(n).fill(-1);
  const role = new Uint8Array(n);
  const nLevels = tokenizer.config.levels.length;
  const levelsFit = new Array<number>(nLevels + 1).fill(0);
  const levelsTest = new Array<number>(nLevels + 1).fill(0);

  users.forEach((u, i) => {
    const o = offsets[i];
    tokenizer.encodeInto(u.events, u.events.length, enc, o);
    role.set(split.roles[i], o);
    u.events.forEach((e, k) => {
      time[o + k] = e.time;
      if (e.label !== undefined) label[o + k] = e.label;
      if (e.scenario !== undefined) scenario[o + k] = e.scenario;
      const level = enc.levels[o + k];
      const slot = level < 0 ? nLevels : level;
      if (k < split.fitLength[i]) levelsFit[slot]++;
      if (split.roles[i][k] === ROLE.test) levelsTest[slot]++;
    });
  });

  return {
    meta: dataset.meta,
    tokenizer,
    split: { kind: split.kind, counts: split.counts, ...(split.window ? { window: split.window } : {}) },
    users: users.map((u) => u.user),
    offsets,
    fitLength: split.fitLength,
    role,
    time,
    ...enc,
    label,
    scenario,
    profile: encodeProfiles(dataset),
    stats: { levelsFit, levelsTest },
  };
}

/** Static attributes by frequency (profiles are not time-dependent, so all users count). */
function encodeProfiles(dataset: Dataset): PreparedProfiles {
  const fields = dataset.meta.profileFields;
  const values = fields.map((f) => {
    const counts = new Map<string, number>();
    for (const u of dataset.users) {
      const v = u.profile?.[f];
      if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    return categoricalVocab(f, counts, 1, Number.MAX_SAFE_INTEGER).values;
  });
  const index = values.map((vs) => new Map(vs.map((v, i) => [v, i])));
  const ids = new Int32Array(dataset.users.length * fields.length);
  dataset.users.forEach((u, i) => {
    fields.forEach((f, j) => {
      const v = u.profile?.[f];
      ids[i * fields.length + j] = v === undefined ? ATTR_NONE : (index[j].get(v) ?? ATTR_UNK);
    });
  });
  return { fields, values, ids };
}
