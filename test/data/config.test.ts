import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DataSchema, EventSourceSchema, TokenizerSchema } from '../../src/data/config.js';

describe('data: section schema', () => {
  it('defaults to the synthetic data set with every option filled', () => {
    const d = DataSchema.parse({});
    expect(d.source).toEqual({ kind: 'synthetic', users: 2000, days: 90, seed: 1, start: '2024-01-01', fraud: { accountTakeover: 0.02, cardTesting: 0.01, compromisedMerchants: 2 } });
    expect(d.split).toEqual({ kind: 'auto' });
    expect(d.tokenizer).toMatchObject({ target: 'auto', maxVocab: 32768, utcOffsetHours: 0, extraAttributes: 'all' });
    expect(d.tokenizer.minCount).toBeUndefined();
    expect(d).toMatchObject({ maxLength: 128, cacheDir: '.cache/panther', onBadRow: 'error' });
  });

  it('reads each source kind from YAML', () => {
    const yaml = `
source:
  kind: events
  path: data/payments.csv.gz
  columns: { user: customer, timestamp: when, amount: eur, item: shop }
  timestampFormat: unix-s
  profile: { path: data/customers.csv, userColumn: customer, attributes: [age_band, region] }
split: { kind: time, trainStart: '2024-03-01' }
tokenizer: { target: item-amount, minCount: 3, levels: [[item, amount], [amount]] }
onBadRow: skip
`;
    const d = DataSchema.parse(parse(yaml));
    expect(d.source).toMatchObject({ kind: 'events', delimiter: ',', defaultType: 'event', timestampFormat: 'unix-s', extraColumns: [] });
    expect(d.split).toEqual({ kind: 'time', trainStart: '2024-03-01', trainDays: 7, delayDays: 7, testDays: 7 });
    expect(d.tokenizer.levels).toEqual([['item', 'amount'], ['amount']]);
    expect(DataSchema.parse({ source: { kind: 's3rec' } }).source).toEqual({ kind: 's3rec', dataset: 'Beauty' });
    for (const kind of ['movielens-100k', 'sasrec-games', 'fraud-handbook']) expect(DataSchema.parse({ source: { kind } }).source.kind).toBe(kind);
  });

  it('rejects typos, unknown kinds and bad values with their path', () => {
    const path = (input: unknown) => DataSchema.safeParse(input).error?.issues[0].path.join('.');
    expect(path({ source: { kind: 'synthetic', user: 10 } })).toBe('source');
    expect(path({ source: { kind: 'netflix' } })).toBe('source.kind');
    expect(path({ source: { kind: 's3rec', dataset: 'Movies' } })).toBe('source.dataset');
    expect(path({ maxLength: 1 })).toBe('maxLength');
    expect(path({ onBadRow: 'ignore' })).toBe('onBadRow');
    expect(path({ tokenizer: { amountEdges: [5, 2] } })).toBe('tokenizer.amountEdges');
    expect(path({ split: { kind: 'time', trainStart: 'July' } })).toBe('split.trainStart');
  });

  it('needs the user and timestamp columns of an event file', () => {
    expect(EventSourceSchema.safeParse({ path: 'x.csv', columns: { user: 'u' } }).success).toBe(false);
    expect(EventSourceSchema.safeParse({ path: 'x.csv', columns: { user: 'u', timestamp: 't' }, format: 'xml' }).success).toBe(false);
    expect(EventSourceSchema.parse({ path: 'x.csv', columns: { user: 'u', timestamp: 't' } }).onBadRow).toBeUndefined();
    expect(TokenizerSchema.parse({}).amountEdges[0]).toBe(1);
  });
});
