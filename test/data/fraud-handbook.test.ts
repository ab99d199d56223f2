import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/data/events.js';
import { fitTokenizer } from '../../src/data/prepare.js';
import { HANDBOOK_EPOCH, readFraudHandbook } from '../../src/data/readers/fraud-handbook.js';
import { ROLE, splitDataset, type Split } from '../../src/data/split.js';
import { amountBucket } from '../../src/data/attributes.js';
import { DEFAULT_AMOUNT_EDGES } from '../../src/data/config.js';
import type { Tokenizer } from '../../src/data/tokenizer.js';
import { DATA } from './helpers.js';

describe('Fraud Detection Handbook reader, split and tokens', () => {
  let d: Dataset;
  let split: Split;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    d = await readFraudHandbook(path.join(DATA, 'fraud-handbook-simulated'));
    split = splitDataset(d, { kind: 'auto' });
    tokenizer = fitTokenizer(d, split, { maxVocab: 20_000 });
  });

  it('streams all 1.75M rows', () => {
    expect(d.meta.counts).toMatchObject({ events: 1_754_155, users: 4990, items: 10_000, labelled: 1_754_155, positives: 14_681 });
    expect(d.meta.sources[0].sha256).toBe('c2bead742c4e43af6526f8f2d1d8d66b87abe445208ca29d0b4be9044a3f0271');
  });

  it('has the label counts, per-customer counts and time range of its README', () => {
    expect(d.meta.extra!.eventsPerScenario).toEqual([1_739_474, 973, 9077, 4631]);
    const lengths = d.users.map((u) => u.events.length).sort((a, b) => a - b);
    expect([lengths[0], lengths.at(-1)]).toEqual([1, 767]);
    expect(lengths[Math.floor(lengths.length / 2)]).toBe(347);
    expect(d.users.filter((u) => u.events.some((e) => e.label === 1)).length).toBe(3472);
    let first = Infinity;
    let last = -Infinity;
    let misordered = 0;
    let mismatched = 0;
    for (const u of d.users) {
      u.events.forEach((e, i) => {
        first = Math.min(first, e.time);
        last = Math.max(last, e.time);
        const prev = u.events[i - 1];
        if (prev && (prev.time > e.time || (prev.time === e.time && Number(prev.id) > Number(e.id)))) misordered++;
        if ((e.label === 1) !== (e.scenario! > 0)) mismatched++;
      });
    }
    expect(new Date(first * 1000).toISOString()).toBe('2018-04-01T00:00:31.000Z');
    expect(new Date(last * 1000).toISOString()).toBe('2018-09-30T23:59:57.000Z');
    expect(first - HANDBOOK_EPOCH).toBe(31);
    expect(misordered).toBe(0);
    expect(mismatched).toBe(0);
  });

  it("uses the handbook's protocol: train 7 days from 2018-07-25, 7-day delay, test 7 days", () => {
    expect(split.kind).toBe('time');
    const w = split.window!;
    expect(new Date(w.trainStart * 1000).toISOString().slice(0, 10)).toBe('2018-07-25');
    expect(new Date(w.trainEnd * 1000).toISOString().slice(0, 10)).toBe('2018-08-01');
    expect(new Date(w.testStart * 1000).toISOString().slice(0, 10)).toBe('2018-08-08');
    expect(new Date(w.testEnd * 1000).toISOString().slice(0, 10)).toBe('2018-08-15');
    let train = 0;
    let test = 0;
    let leaked = 0;
    d.users.forEach((u, i) => {
      u.events.forEach((e, k) => {
        const role = split.roles[i][k];
        if (role === ROLE.train) train++;
        if (role === ROLE.test) test++;
        if (role === ROLE.train && !(e.time >= w.trainStart && e.time < w.trainEnd)) leaked++;
        if (role === ROLE.test && !(e.time >= w.testStart && e.time < w.testEnd)) leaked++;
        if (role === ROLE.valid && !(e.time >= w.trainEnd && e.time < w.testStart)) leaked++;
        if (k < split.fitLength[i] && e.time >= w.trainEnd) leaked++;
      });
    });
    expect(leaked).toBe(0);
    expect(split.counts.train).toBe(train);
    expect(split.counts.test).toBe(test);
    // About 1/26 of 183 days each.
    expect(train).toBeGreaterThan(60_000);
    expect(test).toBeGreaterThan(60_000);
    // The delay's events validate the pretraining.
    expect(split.counts.valid).toBeGreaterThan(60_000);
    expect(split.counts.train + split.counts.valid + split.counts.test + split.counts.context).toBe(1_754_155);
  });

  it('targets (terminal, amount bucket), backing off to the terminal, then the amount', () => {
    expect(tokenizer.config.target).toBe('item-amount');
    expect(tokenizer.vocabSize).toBe(20_000);
    expect(tokenizer.tokenNames).toContain('terminal 3156 / 50-100');
    // A (terminal, bucket) pair seen once in the fitted prefix is below minCount (5).
    const pairOf = (item: string, amount: number) => `${item}|${amountBucket(amount, DEFAULT_AMOUNT_EDGES)}`;
    const pairs = new Map<string, number>();
    d.users.forEach((u, i) => {
      for (const e of u.events.slice(0, split.fitLength[i])) pairs.set(pairOf(e.item!, e.amount!), (pairs.get(pairOf(e.item!, e.amount!)) ?? 0) + 1);
    });
    const user = d.users.find((u) => u.events.some((e) => pairs.get(pairOf(e.item!, e.amount!)) === 1))!;
    const k = user.events.findIndex((e) => pairs.get(pairOf(e.item!, e.amount!)) === 1);
    const rare = tokenizer.tokenOf(user.events, k);
    expect(rare.level).toBe(1);
    expect(tokenizer.tokenName(rare.id)).toBe(`terminal ${user.events[k].item}`);
    // A terminal never seen in training keeps only its amount bucket.
    const unseen = [{ ...user.events[k], item: 'not-a-terminal', amount: 57.16 }];
    const cold = tokenizer.tokenOf(unseen, 0);
    expect(cold.level).toBe(2);
    expect(tokenizer.tokenName(cold.id)).toBe('50-100');
  });
});
