import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPreparedData, readPreparedData } from '../../src/data/cache.js';
import type { PreparedData } from '../../src/data/prepare.js';
import { DATA, useTempDir } from './helpers.js';

const tmp = useTempDir();

function expectSameData(a: PreparedData, b: PreparedData): void {
  expect(b.users).toEqual(a.users);
  expect(b.tokenizer.toJSON()).toEqual(a.tokenizer.toJSON());
  expect(b.meta).toEqual(a.meta);
  expect(b.split).toEqual(a.split);
  for (const k of ['offsets', 'fitLength', 'role', 'time', 'tokens', 'levels', 'amountLog', 'gapLog', 'label', 'scenario'] as const) {
    expect(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength).equals(Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength)), k).toBe(true);
  }
  expect(b.attributes.map((x) => [...x])).toEqual(a.attributes.map((x) => [...x]));
  expect([...b.profile.ids]).toEqual([...a.profile.ids]);
  expect(b.profile.values).toEqual(a.profile.values);
}

describe('preprocessing cache', () => {
  const synthetic = { source: { kind: 'synthetic' as const, users: 150, days: 30 }, cacheDir: tmp('synthetic-cache') };

  it('builds once, then loads the same data from the cache', async () => {
    const first = await loadPreparedData(synthetic);
    expect(first.cache.hit).toBe(false);
    const second = await loadPreparedData(synthetic);
    expect(second.cache.hit).toBe(true);
    expect(second.cache.file).toBe(first.cache.file);
    expectSameData(first.data, second.data);
    expect(readdirSync(synthetic.cacheDir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // Options that do not change the prepared data do not change the key.
    expect((await loadPreparedData({ ...synthetic, maxLength: 16 })).cache.hit).toBe(true);
  });

  it('misses when the tokenizer, split or source options change', async () => {
    const base = await loadPreparedData(synthetic);
    const tokenizer = await loadPreparedData({ ...synthetic, tokenizer: { minCount: 3 } });
    expect(tokenizer.cache.hit).toBe(false);
    expect(tokenizer.cache.key).not.toBe(base.cache.key);
    expect(tokenizer.data.tokenizer.config.minCount).toBe(3);
    expect((await loadPreparedData({ ...synthetic, tokenizer: { minCount: 3 } })).cache.hit).toBe(true);
    const split = await loadPreparedData({ ...synthetic, split: { kind: 'time', trainStart: '2024-01-10', trainDays: 7, delayDays: 1, testDays: 7 } });
    expect(split.cache.hit).toBe(false);
    expect(split.data.split.kind).toBe('time');
    expect((await loadPreparedData({ ...synthetic, source: { ...synthetic.source, seed: 2 } })).cache.hit).toBe(false);
  });

  it('keys user files by content: an edit misses, the same bytes elsewhere hit', async () => {
    const csv = 'user,ts,amount\na,2024-01-01T10:00:00Z,5\na,2024-01-02T10:00:00Z,7\na,2024-01-03T10:00:00Z,9\n';
    const config = (file: string) => ({ source: { kind: 'events' as const, path: file, columns: { user: 'user', timestamp: 'ts', amount: 'amount' } }, cacheDir: tmp('events-cache') });
    const f = tmp('mine.csv', csv);
    expect((await loadPreparedData(config(f))).cache.hit).toBe(false);
    expect((await loadPreparedData(config(f))).cache.hit).toBe(true);
    const copy = tmp('copy.csv', csv);
    const elsewhere = await loadPreparedData(config(copy));
    expect(elsewhere.cache.hit).toBe(true);
    expect(elsewhere.data.meta.sources[0].path).toBe(copy);
    writeFileSync(f, csv.replace('9\n', '10\n'));
    const edited = await loadPreparedData(config(f));
    expect(edited.cache.hit).toBe(false);
    expect(Math.expm1(edited.data.amountLog[2])).toBeCloseTo(10, 4);
  });

  it('rebuilds an unreadable entry instead of failing', async () => {
    const { cache } = await loadPreparedData(synthetic);
    writeFileSync(cache.file, 'garbage');
    const messages: string[] = [];
    const again = await loadPreparedData(synthetic, { log: (m) => messages.push(m) });
    expect(again.cache.hit).toBe(false);
    expect(messages[0]).toMatch(/unreadable .*rebuilding/);
    expect(readPreparedData(cache.file).users).toEqual(again.data.users);
    expect((await loadPreparedData(synthetic, { useCache: false })).cache.hit).toBe(false);
  });

  it('MovieLens 100K: second load is a cache hit with the same data', async () => {
    const config = { source: { kind: 'movielens-100k' as const }, cacheDir: tmp('ml-cache'), dataRoot: DATA };
    const cold = await loadPreparedData(config);
    const warm = await loadPreparedData(config);
    expect([cold.cache.hit, warm.cache.hit]).toEqual([false, true]);
    expect(path.basename(warm.cache.file)).toMatch(/^movielens-100k-[0-9a-f]{24}\.bin$/);
    expectSameData(cold.data, warm.data);
    expect(warm.data.tokens.length).toBe(100_000);
  });
});
