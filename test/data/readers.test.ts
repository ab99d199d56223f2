import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readMovieLens100k } from '../../src/data/readers/movielens.js';
import { readS3Rec, type S3RecDataset } from '../../src/data/readers/s3rec.js';
import { readSasrecGames } from '../../src/data/readers/sasrec-games.js';
import type { Dataset } from '../../src/data/events.js';
import { DATA } from './helpers.js';

function outOfOrder(d: Dataset): number {
  let bad = 0;
  for (const u of d.users) for (let i = 1; i < u.events.length; i++) if (u.events[i].time < u.events[i - 1].time) bad++;
  return bad;
}

describe('MovieLens 100K reader', () => {
  let d: Dataset;
  beforeAll(async () => {
    d = await readMovieLens100k(path.join(DATA, 'movielens-100k'));
  });

  it('has the counts of its README', () => {
    expect(d.meta.counts).toMatchObject({ events: 100_000, users: 943, items: 1682, profiles: 943, labelled: 0 });
    const perRating = [0, 0, 0, 0, 0];
    for (const u of d.users) for (const e of u.events) perRating[Number(e.attrs!.rating) - 1]++;
    expect(perRating).toEqual([6110, 11_370, 27_145, 34_174, 21_201]);
    expect(Math.min(...d.users.map((u) => u.events.length))).toBe(20);
    expect(d.meta.sources.map((s) => path.basename(s.path)).sort()).toEqual(['u.data', 'u.genre', 'u.item', 'u.user']);
    expect(d.meta.sources.find((s) => s.path.endsWith('u.data'))!.sha256).toBe('06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490');
  });

  it('orders each history by time, ties by item id, and keeps the clock', () => {
    expect(outOfOrder(d)).toBe(0);
    let ties = 0;
    let badTies = 0;
    for (const u of d.users) {
      for (let i = 1; i < u.events.length; i++) {
        const [a, b] = [u.events[i - 1], u.events[i]];
        if (a.time !== b.time) continue;
        ties++;
        if (!(Number(a.item) < Number(b.item))) badTies++;
      }
    }
    expect(ties).toBeGreaterThan(1000);
    expect(badTies).toBe(0);
    const times = d.users.flatMap((u) => u.events.map((e) => e.time));
    expect(new Date(Math.min(...times) * 1000).toISOString().slice(0, 7)).toBe('1997-09');
    expect(new Date(Math.max(...times) * 1000).toISOString().slice(0, 7)).toBe('1998-04');
    expect(d.meta.clock).toBe('unix');
    expect(d.meta.defaultTarget).toBe('item');
  });

  it('takes titles and genres from u.item and demographics from u.user', () => {
    expect(d.items.get('1')).toEqual({ name: 'Toy Story (1995)', category: 'Animation' });
    const e = d.users[0].events.find((x) => x.item === '1')!;
    expect(e).toMatchObject({ user: '1', type: 'rating', category: 'Animation', attrs: { genres: "Animation|Children's|Comedy" } });
    expect(d.users[0].profile).toEqual({ ageBand: '18-24', gender: 'M', occupation: 'technician', zipRegion: 'zip 8xxxx' });
    expect(d.users.map((u) => u.user).slice(0, 3)).toEqual(['1', '2', '3']);
    // Latin-1 titles decode (u.item is not UTF-8).
    expect([...d.items.values()].some((i) => /[é]/.test(i.name ?? ''))).toBe(true);
  });
});

describe('S3-Rec benchmark readers', () => {
  const table: [S3RecDataset, number, number, number, number, number][] = [
    ['Beauty', 22_363, 12_101, 198_502, 5, 204],
    ['Sports_and_Outdoors', 35_598, 18_357, 296_337, 5, 296],
    ['Yelp', 30_431, 20_033, 316_354, 5, 350],
    ['LastFM', 1090, 3646, 52_551, 5, 899],
  ];
  for (const [name, users, items, events, min, max] of table) {
    it(`${name}: users, items, interactions and lengths of the README`, async () => {
      const d = await readS3Rec(path.join(DATA, 's3rec-seqrec-benchmarks'), name);
      expect(d.meta.counts).toMatchObject({ users, items, events });
      const lengths = d.users.map((u) => u.events.length);
      expect(Math.min(...lengths)).toBe(min);
      expect(Math.max(...lengths)).toBe(max);
      expect(d.meta.clock).toBe('ordinal');
      // Position is the time; every item has an attribute-derived category.
      expect(d.users[0].events.map((e) => e.time)).toEqual(d.users[0].events.map((_, i) => i));
      expect(d.users.every((u) => u.events.every((e) => e.category === undefined || /^attr \d+$/.test(e.category)))).toBe(true);
    });
  }

  it('Beauty: the first user is the first line, in order', async () => {
    const d = await readS3Rec(path.join(DATA, 's3rec-seqrec-benchmarks'), 'Beauty');
    expect(d.users[0].user).toBe('1');
    expect(d.users[0].events.map((e) => e.item)).toEqual(['1', '2', '3', '4', '5']);
    expect(d.users[0].events[3].category).toBe('attr 1'); // item 4: [1, 2, 3]
  });
});

describe('SASRec Amazon Games reader', () => {
  it('has the counts of its README', async () => {
    const d = await readSasrecGames(path.join(DATA, 'sasrec-amazon-games'));
    expect(d.meta.counts).toMatchObject({ users: 31_013, items: 23_715, events: 287_107 });
    expect(d.users[0].user).toBe('1');
    expect(d.users.at(-1)!.user).toBe('31013');
    expect(Math.min(...d.users.map((u) => u.events.length))).toBe(1);
    expect(d.users[0].events.slice(0, 3).map((e) => e.item)).toEqual(['6393', '13504', '14087']);
    expect(outOfOrder(d)).toBe(0);
  });
});

describe('missing data', () => {
  it('names the file that is not there', async () => {
    await expect(readSasrecGames('/nonexistent/folder')).rejects.toThrow(/\/nonexistent\/folder\/Video\.txt: cannot read the input file \(ENOENT\)/);
  });
});
