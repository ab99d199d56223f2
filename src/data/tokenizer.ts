import { z } from 'zod';
import { PantherError } from '../errors.js';
import {
  AttributeReader,
  BASE_FIELDS,
  EXTRA_PREFIX,
  FIRST_VALUE,
  bucketVocab,
  categoricalVocab,
  isBucketed,
  vocabFrom,
  type AttributeVocab,
} from './attributes.js';
import { CombinationSpace } from './combinations.js';
import { TokenizerSchema, type TokenizerConfig, type TokenizerInput } from './config.js';
import type { BehaviorEvent, Clock, ItemInfo, TargetKind, UserHistory } from './events.js';
import { readText, writeFileAtomic } from './files.js';

/**
 * Structured tokenization (method.md): each event's attributes are discretized into their
 * own vocabularies (the model's inputs), and the event's prediction target is a composite
 * token for its attribute combination. Combinations seen at least `minCount` times in
 * training are whole tokens; a rarer one backs off level by level to coarser combinations
 * (e.g. type/category/channel/amount/hour -> drop hour -> drop amount -> type/category ->
 * type -> <unk>). Item data use the item itself as the token, terminals (item, amount
 * bucket). Fitting is deterministic: same events and config, same ids.
 */
export const TOKEN_SPECIALS = ['<pad>', '<unk>', '<bos>', '<mask>'] as const;
export const PAD = 0;
export const UNK = 1;
export const BOS = 2;
export const MASK = 3;

export const LEVEL_PRESETS: Record<TargetKind, string[][]> = {
  composite: [
    ['type', 'category', 'channel', 'amount', 'hour'],
    ['type', 'category', 'channel', 'amount'],
    ['type', 'category', 'channel'],
    ['type', 'category'],
    ['type'],
  ],
  item: [['item']],
  'item-amount': [['item', 'amount'], ['item'], ['amount']],
};

export const DEFAULT_MIN_COUNT: Record<TargetKind, number> = { composite: 10, item: 1, 'item-amount': 5 };

/** What the tokenizer needs to know about the data besides its events. */
export interface TokenizerContext {
  clock: Clock;
  defaultTarget: TargetKind;
  /** For token names (movie titles). */
  items?: Map<string, ItemInfo>;
  /** What an item is called in names: 'item', 'movie', 'terminal', 'merchant'. */
  itemNoun?: string;
}

export type ResolvedTokenizerConfig = Omit<TokenizerConfig, 'target' | 'levels' | 'minCount' | 'extraAttributes'> & {
  target: TargetKind;
  levels: string[][];
  minCount: number;
  extraAttributes: string[];
};

/** A history to fit on: its first `length` events (default all). */
export interface FitSequence {
  events: readonly BehaviorEvent[];
  length?: number;
}

/** Per-event model inputs and targets; `attributes` follows `tokenizer.attributes`. */
export interface EncodedEvents {
  tokens: Int32Array;
  /** Back-off level that produced the token (0 = finest), -1 for <unk>. */
  levels: Int8Array;
  attributes: Int32Array[];
  /** log(1 + amount), 0 without an amount. */
  amountLog: Float32Array;
  /** log(1 + seconds since the previous event), 0 for the first event or without a clock. */
  gapLog: Float32Array;
}

export interface FitStats {
  sequences: number;
  events: number;
  /** Distinct combinations seen at any level, how many reached minCount, how many were kept. */
  candidates: number;
  frequent: number;
  kept: number;
}

const TokenStateSchema = z.strictObject({ fields: z.record(z.string(), z.string()), name: z.string(), count: z.int() });
const TokenizerStateSchema = z.strictObject({
  format: z.literal('panther-tokenizer'),
  version: z.literal(1),
  config: z.strictObject({
    ...TokenizerSchema.shape,
    target: z.enum(['composite', 'item', 'item-amount']),
    levels: z.array(z.array(z.string())),
    minCount: z.int(),
    extraAttributes: z.array(z.string()),
  }),
  clock: z.enum(['unix', 'ordinal']),
  itemNoun: z.string(),
  attributes: z.array(z.strictObject({ name: z.string(), values: z.array(z.string()) })),
  tokens: z.array(TokenStateSchema),
  fit: z.strictObject({ sequences: z.int(), events: z.int(), candidates: z.int(), frequent: z.int(), kept: z.int() }),
});
export type TokenizerState = z.infer<typeof TokenizerStateSchema>;

export class Tokenizer {
  /** Input vocabularies in a fixed order: type, category, channel, item, amount, hour, weekday, gap, then extra:<name> sorted. */
  readonly attributes: AttributeVocab[];
  readonly tokenNames: string[];
  /** Attribute values (by name) that define each token; {} for the specials. */
  readonly tokenFields: Record<string, string>[];
  readonly tokenCounts: number[];
  private readonly reader: AttributeReader;
  private readonly space: CombinationSpace;
  private readonly keyToToken = new Map<number, number>();

  private constructor(
    readonly config: ResolvedTokenizerConfig,
    readonly clock: Clock,
    readonly itemNoun: string,
    attributes: AttributeVocab[],
    tokens: { fields: Record<string, string>; name: string; count: number }[],
    readonly fitStats: FitStats,
  ) {
    this.attributes = attributes;
    this.reader = new AttributeReader(attributes, { ...config, clock });
    this.space = new CombinationSpace(attributes, config.levels);
    this.tokenNames = [...TOKEN_SPECIALS];
    this.tokenFields = TOKEN_SPECIALS.map(() => ({}));
    this.tokenCounts = TOKEN_SPECIALS.map(() => 0);
    for (const t of tokens) {
      const key = this.space.keyOf(t.fields);
      if (this.keyToToken.has(key)) throw new PantherError('E_DATA', `token ${JSON.stringify(t.name)} is listed twice`, 'tokenizer');
      this.keyToToken.set(key, this.tokenNames.length);
      this.tokenNames.push(t.name);
      this.tokenFields.push(t.fields);
      this.tokenCounts.push(t.count);
    }
  }

  get vocabSize(): number {
    return this.tokenNames.length;
  }

  /** Fits on training histories only (pass each history's training prefix). */
  static fit(sequences: Iterable<FitSequence>, input: TokenizerInput, context: TokenizerContext): Tokenizer {
    const parsed = TokenizerSchema.parse(input);
    const target = parsed.target === 'auto' ? context.defaultTarget : parsed.target;
    const list = [...sequences].map((s) => ({ events: s.events, length: Math.min(s.length ?? s.events.length, s.events.length) }));

    // Pass 1: value frequencies of the categorical fields (and which free attributes exist).
    const extraKeys = new Set<string>();
    const counts = new Map<string, Map<string, number>>(BASE_FIELDS.filter((f) => !isBucketed(f)).map((f) => [f, new Map()]));
    let events = 0;
    for (const { events: ev, length } of list) {
      for (let i = 0; i < length; i++) {
        const e = ev[i];
        events++;
        bump(counts.get('type')!, e.type);
        if (e.category !== undefined) bump(counts.get('category')!, e.category);
        if (e.channel !== undefined) bump(counts.get('channel')!, e.channel);
        if (e.item !== undefined) bump(counts.get('item')!, e.item);
        if (e.attrs) {
          for (const [k, v] of Object.entries(e.attrs)) {
            extraKeys.add(k);
            const name = EXTRA_PREFIX + k;
            let m = counts.get(name);
            if (!m) counts.set(name, (m = new Map()));
            bump(m, v);
          }
        }
      }
    }
    const extras = (parsed.extraAttributes === 'all' ? [...extraKeys] : parsed.extraAttributes).sort();
    const config: ResolvedTokenizerConfig = {
      ...parsed,
      target,
      levels: parsed.levels ?? LEVEL_PRESETS[target],
      minCount: parsed.minCount ?? DEFAULT_MIN_COUNT[target],
      extraAttributes: extras,
    };
    const attributes = [...BASE_FIELDS, ...extras.map((k) => EXTRA_PREFIX + k)].map((name) =>
      isBucketed(name)
        ? bucketVocab(name, config.amountEdges)
        : categoricalVocab(name, counts.get(name) ?? new Map(), config.attributeMinCount, config.maxAttributeVocab),
    );

    // Pass 2: count every level's combination per event (once per event even when two
    // levels coincide because a field is absent), then keep the frequent ones.
    const reader = new AttributeReader(attributes, { ...config, clock: context.clock });
    const space = new CombinationSpace(attributes, config.levels);
    const combos = new Map<number, number>();
    const ids = new Int32Array(attributes.length + 1);
    const seen: number[] = [];
    for (const { events: ev, length } of list) {
      for (let i = 0; i < length; i++) {
        reader.read(ev, i, ids);
        seen.length = 0;
        for (let l = 0; l < space.levels.length; l++) {
          const key = space.key(ids, l);
          if (key < 0 || seen.includes(key)) continue;
          seen.push(key);
          combos.set(key, (combos.get(key) ?? 0) + 1);
        }
      }
    }
    const frequent = [...combos].filter(([, c]) => c >= config.minCount);
    // Most frequent first; ties: coarser (fewer fields) first, so a kept combination's
    // coarser back-off is kept too, then by key for determinism.
    const width = new Map(frequent.map(([key]) => [key, space.width(key)]));
    frequent.sort((a, b) => b[1] - a[1] || width.get(a[0])! - width.get(b[0])! || a[0] - b[0]);
    const kept = frequent.slice(0, Math.max(0, config.maxVocab - TOKEN_SPECIALS.length));
    const itemNoun = context.itemNoun ?? 'item';
    const tokens = kept.map(([key, count]) => {
      const fields = space.fieldsOf(key);
      return { fields, name: space.nameOf(fields, itemNoun, context.items), count };
    });
    return new Tokenizer(config, context.clock, itemNoun, attributes, tokens, {
      sequences: list.length,
      events,
      candidates: combos.size,
      frequent: frequent.length,
      kept: kept.length,
    });
  }

  static fromJSON(input: unknown): Tokenizer {
    const parsed = TokenizerStateSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new PantherError('E_DATA', `not a saved tokenizer: ${issue.path.join('.') || '(top level)'}: ${issue.message}`, 'tokenizer');
    }
    const s = parsed.data;
    const attributes = s.attributes.map((a) => vocabFrom(a.name, a.values));
    return new Tokenizer(s.config, s.clock, s.itemNoun, attributes, s.tokens, s.fit);
  }

  toJSON(): TokenizerState {
    return {
      format: 'panther-tokenizer',
      version: 1,
      config: this.config,
      clock: this.clock,
      itemNoun: this.itemNoun,
      attributes: this.attributes.map((a) => ({ name: a.name, values: a.values.slice(FIRST_VALUE) })),
      tokens: this.tokenNames.slice(TOKEN_SPECIALS.length).map((name, i) => ({
        fields: this.tokenFields[i + TOKEN_SPECIALS.length],
        name,
        count: this.tokenCounts[i + TOKEN_SPECIALS.length],
      })),
      fit: this.fitStats,
    };
  }

  /** Saved as JSON (next to model checkpoints), atomically. */
  save(file: string): void {
    writeFileAtomic(file, `${JSON.stringify(this.toJSON(), null, 1)}\n`);
  }

  static load(file: string): Tokenizer {
    let json: unknown;
    try {
      json = JSON.parse(readText(file));
    } catch (err) {
      if (err instanceof PantherError) throw err;
      throw new PantherError('E_DATA', `not valid JSON (${(err as Error).message})`, file);
    }
    try {
      return Tokenizer.fromJSON(json);
    } catch (err) {
      if (err instanceof PantherError) throw new PantherError(err.code, err.message, file);
      throw err;
    }
  }

  /** Index of an input attribute in `attributes` (and in `EncodedEvents.attributes`). */
  attributeIndex(name: string): number {
    const i = this.attributes.findIndex((a) => a.name === name);
    if (i < 0) throw new PantherError('E_ARGUMENT', `no attribute ${JSON.stringify(name)}`, 'tokenizer');
    return i;
  }

  encode(events: readonly BehaviorEvent[], length = events.length): EncodedEvents {
    const out: EncodedEvents = {
      tokens: new Int32Array(length),
      levels: new Int8Array(length),
      attributes: this.attributes.map(() => new Int32Array(length)),
      amountLog: new Float32Array(length),
      gapLog: new Float32Array(length),
    };
    this.encodeInto(events, length, out, 0);
    return out;
  }

  /** Encodes the first `length` events into `out` starting at `offset` (for flat, all-users arrays). */
  encodeInto(events: readonly BehaviorEvent[], length: number, out: EncodedEvents, offset: number): void {
    const ids = new Int32Array(this.attributes.length + 1);
    const nAttr = this.attributes.length;
    for (let i = 0; i < length; i++) {
      const e = events[i];
      this.reader.read(events, i, ids);
      const o = offset + i;
      for (let a = 0; a < nAttr; a++) out.attributes[a][o] = ids[a];
      const { id, level } = this.tokenFromIds(ids);
      out.tokens[o] = id;
      out.levels[o] = level;
      out.amountLog[o] = e.amount === undefined ? 0 : Math.log1p(e.amount);
      out.gapLog[o] = i === 0 || this.clock !== 'unix' ? 0 : Math.log1p(Math.max(0, e.time - events[i - 1].time));
    }
  }

  /** The token of `events[i]` (its gap depends on the event before it). */
  tokenOf(events: readonly BehaviorEvent[], i: number): { id: number; level: number } {
    const ids = new Int32Array(this.attributes.length + 1);
    this.reader.read(events, i, ids);
    return this.tokenFromIds(ids);
  }

  tokenName(id: number): string {
    const name = this.tokenNames[id];
    if (name === undefined) throw new PantherError('E_ARGUMENT', `token id ${id} is outside the vocabulary (${this.vocabSize})`, 'tokenizer');
    return name;
  }

  /** One line per event: when, what happened, and the token it became (with its back-off level). */
  explain(history: UserHistory | readonly BehaviorEvent[], options: { limit?: number } = {}): string[] {
    const events = 'events' in history ? history.events : history;
    const first = Math.max(0, events.length - (options.limit ?? events.length));
    const enc = this.encode(events);
    const lines: string[] = [];
    if ('user' in history) {
      const profile = history.profile ? `  (${Object.entries(history.profile).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
      lines.push(`user ${history.user}: ${events.length} events${profile}`);
    }
    for (let i = first; i < events.length; i++) {
      const e = events[i];
      const level = enc.levels[i];
      const how = level < 0 ? 'no level matched' : level === 0 ? 'full' : `backed off to level ${level}: ${this.config.levels[level].join('+')}`;
      lines.push(`${this.when(e.time)}  ${describe(e)}  ->  ${this.tokenNames[enc.tokens[i]]}  [#${enc.tokens[i]}, ${how}]`);
    }
    return lines;
  }

  private when(time: number): string {
    if (this.clock !== 'unix') return `#${time}`;
    const local = new Date((time + this.config.utcOffsetHours * 3600) * 1000);
    return `${local.toISOString().slice(0, 16).replace('T', ' ')} ${['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][local.getUTCDay()]}`;
  }

  private tokenFromIds(ids: Int32Array): { id: number; level: number } {
    for (let l = 0; l < this.space.levels.length; l++) {
      const key = this.space.key(ids, l);
      if (key < 0) continue;
      const id = this.keyToToken.get(key);
      if (id !== undefined) return { id, level: l };
    }
    return { id: UNK, level: -1 };
  }
}

function bump(m: Map<string, number>, v: string): void {
  m.set(v, (m.get(v) ?? 0) + 1);
}

function describe(e: BehaviorEvent): string {
  const parts = [e.type];
  if (e.amount !== undefined) parts.push(String(e.amount));
  if (e.channel !== undefined) parts.push(`via ${e.channel}`);
  if (e.category !== undefined) parts.push(`[${e.category}]`);
  if (e.item !== undefined) parts.push(`at ${e.item}`);
  if (e.label === 1) parts.push(`FRAUD${e.scenario ? ` (scenario ${e.scenario})` : ''}`);
  return parts.join(' ');
}
