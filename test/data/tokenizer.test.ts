import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ATTR_NONE, ATTR_UNK } from '../../src/data/attributes.js';
import type { BehaviorEvent, Dataset } from '../../src/data/events.js';
import { fitTokenizer } from '../../src/data/prepare.js';
import { readMovieLens100k } from '../../src/data/readers/movielens.js';
import { leaveOneOutSplit, type Split } from '../../src/data/split.js';
import { Tokenizer, UNK, type TokenizerContext } from '../../src/data/tokenizer.js';
import { at, DATA, useTempDir } from './helpers.js';

const context: TokenizerContext = { clock: 'unix', defaultTarget: 'composite' };
const e = (user: string, time: number, type: string, category: string, channel: string, amount: number): BehaviorEvent => ({ user, time, type, category, channel, amount });

// 20 cinema evenings, one cinema morning, one expensive cinema night, 6 transfers.
const cinema = Array.from({ length: 20 }, (_, k) => e('a', at('2024-01-05 20:00') + k * 86_400, 'payment', 'cinema', 'card', 25));
const rareHour = e('a', at('2024-02-01 09:00'), 'payment', 'cinema', 'card', 25);
const rareAmount = e('a', at('2024-02-02 21:00'), 'payment', 'cinema', 'card', 700);
const transfers = Array.from({ length: 6 }, (_, k) => e('b', at('2024-01-10 14:00') + k * 600, 'transfer', 'p2p', 'mobile', 100));
const training = [{ events: [...cinema, rareHour, rareAmount] }, { events: transfers }];

describe('structured tokenizer (composite tokens)', () => {
  const tok = Tokenizer.fit(training, { minCount: 5 }, context);

  it('names tokens by their attributes', () => {
    expect(tok.tokenNames.slice(0, 4)).toEqual(['<pad>', '<unk>', '<bos>', '<mask>']);
    expect(tok.tokenNames).toContain('payment / evening / card / 20-50 / cinema');
    expect(tok.tokenNames).toContain('transfer / afternoon / mobile / 100-200 / p2p');
    expect(new Set(tok.tokenNames).size).toBe(tok.vocabSize);
    expect(tok.tokenOf(cinema, 3)).toEqual({ id: tok.tokenNames.indexOf('payment / evening / card / 20-50 / cinema'), level: 0 });
  });

  it('backs a rare combination off to its coarser token', () => {
    // (payment, cinema, card, 20-50, morning) was seen once: drop the hour.
    expect(tok.tokenNames).not.toContain('payment / morning / card / 20-50 / cinema');
    const hour = tok.tokenOf([rareHour], 0);
    expect([tok.tokenName(hour.id), hour.level]).toEqual(['payment / card / 20-50 / cinema', 1]);
    // 500-1000 at the cinema was seen once too: drop the amount as well.
    const amount = tok.tokenOf([rareAmount], 0);
    expect([tok.tokenName(amount.id), amount.level]).toEqual(['payment / card / cinema', 2]);
    // An unseen category is <unk> for the input; the token falls back to the type.
    const zoo = tok.tokenOf([{ ...cinema[0], category: 'zoo' }], 0);
    expect([tok.tokenName(zoo.id), zoo.level]).toEqual(['payment', 4]);
    // Nothing known at all: <unk>.
    expect(tok.tokenOf([{ ...cinema[0], type: 'refund', category: 'zoo', channel: 'fax', amount: 3 }], 0)).toEqual({ id: UNK, level: -1 });
  });

  it('is deterministic: same data and config, same vocabulary (whatever the user order)', () => {
    const again = Tokenizer.fit(training, { minCount: 5 }, context);
    expect(JSON.stringify(again.toJSON())).toBe(JSON.stringify(tok.toJSON()));
    const reordered = Tokenizer.fit([training[1], { events: [...training[0].events] }], { minCount: 5 }, context);
    expect(reordered.tokenNames).toEqual(tok.tokenNames);
    // Most frequent first.
    const counts = tok.tokenCounts.slice(4);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
  });

  it('respects the maximum vocabulary, keeping the most frequent and their back-offs', () => {
    const small = Tokenizer.fit(training, { minCount: 5, maxVocab: 8 }, context);
    expect(small.vocabSize).toBe(8);
    expect(small.tokenNames.slice(4)).toEqual(['payment', 'payment / cinema', 'payment / card / cinema', 'payment / card / 20-50 / cinema']);
    const evening = small.tokenOf(cinema, 0);
    expect([small.tokenName(evening.id), evening.level]).toEqual(['payment / card / 20-50 / cinema', 1]);
    const minCounted = Tokenizer.fit(training, { minCount: 21 }, context);
    expect(minCounted.tokenCounts.slice(4).every((c) => c >= 21)).toBe(true);
  });

  it('encodes attribute ids and continuous features per event', () => {
    const enc = tok.encode(cinema.slice(0, 2));
    const id = (name: string, value: string) => tok.attributes[tok.attributeIndex(name)].index.get(value);
    const col = (name: string) => [...enc.attributes[tok.attributeIndex(name)]];
    expect(col('type')).toEqual([id('type', 'payment'), id('type', 'payment')]);
    expect(col('hour')).toEqual([id('hour', 'evening'), id('hour', 'evening')]);
    expect(col('weekday')).toEqual([id('weekday', 'Fri'), id('weekday', 'Sat')]);
    expect(col('gap')).toEqual([id('gap', 'first'), id('gap', '<1w')]);
    expect(col('amount')).toEqual([id('amount', '20-50'), id('amount', '20-50')]);
    expect(col('item')).toEqual([ATTR_NONE, ATTR_NONE]);
    expect(enc.amountLog[0]).toBeCloseTo(Math.log1p(25), 6);
    expect([enc.gapLog[0], enc.gapLog[1]]).toEqual([0, Math.fround(Math.log1p(86_400))]);
    const unknown = tok.encode([{ ...cinema[0], channel: 'fax' }]);
    expect(unknown.attributes[tok.attributeIndex('channel')][0]).toBe(ATTR_UNK);
  });

  it('reads hours and weekdays in the configured local time', () => {
    const shifted = Tokenizer.fit(training, { minCount: 5, utcOffsetHours: 5 }, context);
    const enc = shifted.encode([cinema[0]]); // Friday 20:00 UTC = Saturday 01:00 local
    expect(shifted.attributes[shifted.attributeIndex('hour')].values[enc.attributes[shifted.attributeIndex('hour')][0]]).toBe('night');
    expect(shifted.attributes[shifted.attributeIndex('weekday')].values[enc.attributes[shifted.attributeIndex('weekday')][0]]).toBe('Sat');
  });

  it('saves to JSON and loads back the same tokenizer', () => {
    const file = useTempDirFile('tokenizer.json');
    tok.save(file);
    const back = Tokenizer.load(file);
    expect(back.toJSON()).toEqual(tok.toJSON());
    const all = [...cinema, rareHour, rareAmount, { ...cinema[0], category: 'zoo' }];
    expect(back.encode(all)).toEqual(tok.encode(all));
    expect(() => Tokenizer.fromJSON({ format: 'something else' })).toThrow(/not a saved tokenizer/);
  });

  it('explains a history token by token', () => {
    const lines = tok.explain({ user: 'a', events: [cinema[0], rareAmount] });
    expect(lines[0]).toBe('user a: 2 events');
    expect(lines[1]).toBe('2024-01-05 20:00 Fri  payment 25 via card [cinema]  ->  payment / evening / card / 20-50 / cinema  [#' + tok.tokenOf(cinema, 0).id + ', full]');
    expect(lines[2]).toMatch(/payment 700 via card \[cinema\]  ->  payment \/ card \/ cinema  \[#\d+, backed off to level 2: type\+category\+channel\]$/);
    expect(tok.explain([cinema[0], rareAmount], { limit: 1 })).toHaveLength(1);
  });

  it('rejects unknown fields in the levels', () => {
    expect(() => Tokenizer.fit(training, { levels: [['type', 'colour']] }, context)).toThrow(/data\.tokenizer\.levels\.0: unknown field "colour"/);
  });

  it('has no clock fields for order-only data', () => {
    const ordinal = Tokenizer.fit([{ events: cinema.map((x, i) => ({ ...x, time: i })) }], { minCount: 1 }, { clock: 'ordinal', defaultTarget: 'composite' });
    const enc = ordinal.encode([{ ...cinema[0], time: 0 }, { ...cinema[1], time: 1 }]);
    expect(enc.attributes[ordinal.attributeIndex('hour')][1]).toBe(ATTR_NONE);
    expect(enc.attributes[ordinal.attributeIndex('gap')][1]).toBe(ATTR_NONE);
    expect(enc.gapLog[1]).toBe(0);
    expect(ordinal.tokenNames[4]).toBe('payment');
  });
});

const useTempDirFile = useTempDir();

describe('item tokens (MovieLens 100K)', () => {
  let d: Dataset;
  let split: Split;
  beforeAll(async () => {
    d = await readMovieLens100k(path.join(DATA, 'movielens-100k'));
    split = leaveOneOutSplit(d.users);
  });

  it('uses the movie as the token, named by its title, fitted on training events only', () => {
    const tok = fitTokenizer(d, split, {});
    expect(tok.config.target).toBe('item');
    expect(tok.config.levels).toEqual([['item']]);
    expect(tok.tokenNames[4]).toBe('Star Wars (1977)'); // the most rated movie
    const trainItems = new Set(d.users.flatMap((u, i) => u.events.slice(0, split.fitLength[i]).map((e) => e.item)));
    expect(tok.vocabSize).toBe(4 + trainItems.size);
    // A test item never rated in training is <unk>.
    const unseen = d.users.flatMap((u) => u.events.filter((e) => !trainItems.has(e.item)));
    expect(unseen.length).toBeGreaterThan(0);
    expect(tok.tokenOf(unseen, 0).id).toBe(UNK);
    // Ratings and genres are extra input attributes.
    expect(tok.attributes.map((a) => a.name)).toEqual(['type', 'category', 'channel', 'item', 'amount', 'hour', 'weekday', 'gap', 'extra:genres', 'extra:rating']);
  });

  it('caps the item vocabulary at maxVocab and minCount', () => {
    const tok = fitTokenizer(d, split, { maxVocab: 500 });
    expect(tok.vocabSize).toBe(500);
    const min = fitTokenizer(d, split, { minCount: 50 });
    expect(min.tokenCounts.slice(4).every((c) => c >= 50)).toBe(true);
    expect(min.vocabSize).toBeLessThan(700);
    // The composite target works on items too: rating / genre / time of day.
    const composite = fitTokenizer(d, split, { target: 'composite', levels: [['type', 'category', 'hour'], ['type', 'category']] });
    expect(composite.tokenNames).toContain('rating / evening / Drama');
  });
});
