import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { EventSourceSchema, type EventSourceConfig } from '../../src/data/config.js';
import { readEventSource, timestampParser } from '../../src/data/readers/event-source.js';
import { PantherError } from '../../src/errors.js';
import { useTempDir } from './helpers.js';

const file = useTempDir();

const columns = { user: 'user_id', timestamp: 'ts', type: 'kind', amount: 'amt', item: 'merchant', category: 'cat', channel: 'chan', label: 'fraud' };
const header = 'user_id,ts,kind,amt,merchant,cat,chan,fraud,city';

function source(path: string, extra: Partial<EventSourceConfig> = {}): EventSourceConfig {
  return EventSourceSchema.parse({ path, columns, extraColumns: ['city'], ...extra });
}

async function failure(config: EventSourceConfig): Promise<PantherError> {
  try {
    await readEventSource(config);
  } catch (err) {
    expect(err).toBeInstanceOf(PantherError);
    expect((err as PantherError).code).toBe('E_DATA');
    return err as PantherError;
  }
  throw new Error('expected the read to fail');
}

describe('user event files (CSV / JSON lines)', () => {
  it('maps CSV columns to event fields, keeps extra columns, orders by time', async () => {
    const f = file('good.csv', [
      header,
      'u1,2024-01-05 21:30:00,payment,12,m2,bar,card,0,Paris',
      'u1,2024-01-05T20:00:00Z,payment,25.50,m1,cinema,card,0,Paris',
      'u2,2024-01-06T10:00:00+02:00,transfer,100,,,mobile,1,Lyon',
      '',
    ].join('\n'));
    const d = await readEventSource(source(f));
    expect(d.meta.counts).toMatchObject({ users: 2, events: 3, items: 2, labelled: 3, positives: 1 });
    expect(d.meta.skipped).toEqual({});
    expect(d.users[0].events.map((e) => e.item)).toEqual(['m1', 'm2']);
    expect(d.users[0].events[0]).toEqual({
      user: 'u1', time: Date.UTC(2024, 0, 5, 20) / 1000, type: 'payment', amount: 25.5, item: 'm1', category: 'cinema', channel: 'card', label: 0, attrs: { city: 'Paris' },
    });
    const u2 = d.users[1].events[0];
    expect(u2.time).toBe(Date.UTC(2024, 0, 6, 8) / 1000);
    expect(u2.item).toBeUndefined();
    expect(u2.category).toBeUndefined();
    expect(u2.label).toBe(1);
    expect(d.meta.sources[0].sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads gzipped JSON lines with unix-ms timestamps, and a profile table', async () => {
    const lines = [
      { uid: 7, t: 1_700_000_000_123, what: 'topup', value: '50' },
      { uid: 7, t: 1_700_000_100_000 },
      { uid: '8', t: '1700000200000', value: 3 },
    ].map((o) => JSON.stringify(o));
    const f = file('events.jsonl.gz', gzipSync(`${lines.join('\n')}\n`));
    const p = file('profiles.csv', 'id,age_band,region\n7,25-34,north\n8,,south\n9,65+,east\n');
    const d = await readEventSource(EventSourceSchema.parse({
      path: f,
      columns: { user: 'uid', timestamp: 't', type: 'what', amount: 'value' },
      timestampFormat: 'unix-ms',
      defaultType: 'payment',
      profile: { path: p, userColumn: 'id', attributes: ['age_band', 'region'] },
    }));
    expect(d.users.map((u) => u.user)).toEqual(['7', '8']);
    expect(d.users[0].events.map((e) => [e.time, e.type, e.amount])).toEqual([[1_700_000_000.123, 'topup', 50], [1_700_000_100, 'payment', undefined]]);
    expect(d.users[1].profile).toEqual({ age_band: 'none', region: 'south' });
    expect(d.meta.profileFields).toEqual(['age_band', 'region']);
    expect(d.meta.extra).toEqual({ profilesWithoutEvents: 1 });
  });

  it('names file, line and field of an unparseable timestamp', async () => {
    const f = file('ts.csv', `${header}\nu1,2024-01-05T20:00:00Z,p,1,m,c,card,0,x\nu1,yesterday,p,1,m,c,card,0,x\n`);
    expect((await failure(source(f))).message).toBe(`${f}:3: ts: unparseable timestamp "yesterday" (format iso)`);
    const g = file('ts2.csv', `${header}\nu1,2024-02-30,p,1,m,c,card,0,x\n`);
    expect((await failure(source(g))).message).toBe(`${g}:2: ts: unparseable timestamp "2024-02-30" (format iso)`);
  });

  it('names a column missing from the header, or from a row', async () => {
    const f = file('nocol.csv', 'user_id,ts,kind,merchant,cat,chan,fraud,city\nu1,2024-01-05,p,m,c,card,0,x\n');
    expect((await failure(source(f))).message).toMatch(new RegExp(`^${escape(f)}:1: amt: missing column in the header`));
    const g = file('short.csv', `${header}\nu1,2024-01-05,p,1,m,c,card,0,x\nu2,2024-01-05,p\n`);
    expect((await failure(source(g))).message).toBe(`${g}:3: amt: missing column (the row has 3 fields, the header 9)`);
    const j = file('missing.jsonl', '{"user_id":"a","ts":"2024-01-05"}\n{"user_id":"b"}\n');
    expect((await failure(source(j, { extraColumns: [], columns: { user: 'user_id', timestamp: 'ts' } }))).message).toBe(`${j}:2: ts: missing column`);
  });

  it('rejects negative and non-numeric amounts, empty user ids, bad labels and invalid JSON', async () => {
    const neg = file('neg.csv', `${header}\nu1,2024-01-05,p,-3,m,c,card,0,x\n`);
    expect((await failure(source(neg))).message).toBe(`${neg}:2: amt: negative amount -3`);
    const nan = file('nan.csv', `${header}\nu1,2024-01-05,p,1,m,c,card,0,x\nu1,2024-01-05,p,12abc,m,c,card,0,x\n`);
    expect((await failure(source(nan))).message).toBe(`${nan}:3: amt: not a number: "12abc"`);
    const empty = file('empty.csv', `${header}\n  ,2024-01-05,p,1,m,c,card,0,x\n`);
    expect((await failure(source(empty))).message).toBe(`${empty}:2: user_id: empty user id`);
    const label = file('label.csv', `${header}\nu1,2024-01-05,p,1,m,c,card,maybe,x\n`);
    expect((await failure(source(label))).message).toBe(`${label}:2: fraud: expected 0/1, found "maybe"`);
    const json = file('bad.jsonl', '{"user_id":"a","ts":"2024-01-05"}\n\n{"user_id": oops}\n');
    expect((await failure(source(json, { extraColumns: [], columns: { user: 'user_id', timestamp: 'ts' } }))).message).toMatch(new RegExp(`^${escape(json)}:3: \\(row\\): invalid JSON`));
  });

  it("with onBadRow 'skip' skips bad rows and counts them per reason", async () => {
    const f = file('mixed.csv', [
      header,
      'u1,2024-01-05T10:00:00Z,p,1,m,c,card,0,x',
      'u1,not-a-time,p,1,m,c,card,0,x',
      'u1,2024-01-05T11:00:00Z,p,-1,m,c,card,0,x',
      'u2,2024-01-05T12:00:00Z,p,-2,m,c,card,0,x',
      ',2024-01-05T12:00:00Z,p,2,m,c,card,0,x',
      'u2,2024-01-05T13:00:00Z,p,abc,m,c,card,0,x',
      'u2,2024-01-05T14:00:00Z,p,4,m,c,card,1,x',
      'u3,2024-01-05T15:00:00Z,p',
      'u3,2024-01-05T16:00:00Z,p,5,m,c,card,,x',
    ].join('\n'));
    const d = await readEventSource(source(f, { onBadRow: 'skip' }));
    expect(d.meta.counts.events).toBe(3);
    expect(d.meta.skipped).toEqual({ 'bad timestamp': 1, 'negative amount': 2, 'empty user id': 1, 'bad amount': 1, 'missing column': 1 });
    expect(d.meta.skippedExamples[0]).toBe(`${f}:3: ts: unparseable timestamp "not-a-time" (format iso)`);
    expect(d.meta.skippedExamples).toHaveLength(6);
    expect(d.users.find((u) => u.user === 'u3')!.events[0].label).toBeUndefined();
    // The data-level default applies when the source does not say.
    const viaDefault = await readEventSource(source(f), { onBadRow: 'skip' });
    expect(viaDefault.meta.counts.events).toBe(3);
  });

  it('parses the timestamp formats', () => {
    const iso = timestampParser('iso');
    expect(iso('2024-01-05')).toBe(Date.UTC(2024, 0, 5) / 1000);
    expect(iso('2024-01-05T20:00:00.5Z')).toBe(Date.UTC(2024, 0, 5, 20) / 1000 + 0.5);
    expect(iso('2024-01-05T20:00+0530')).toBe(Date.UTC(2024, 0, 5, 14, 30) / 1000);
    expect(iso('2024-01-05 25:00')).toBeUndefined();
    expect(iso(1_700_000_000)).toBeUndefined();
    expect(timestampParser('unix-s')('1700000000')).toBe(1_700_000_000);
    expect(timestampParser('unix-s')('')).toBeUndefined();
    expect(timestampParser('unix-ms')(1_700_000_000_500)).toBe(1_700_000_000.5);
  });

  it('asks for the format when the file name does not say', async () => {
    const f = file('events.dat', 'x');
    await expect(readEventSource(source(f))).rejects.toThrow(/cannot tell the format/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
