import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/data/events.js';
import { BASELINE_FEATURES, baselineFeatures } from '../../src/fraud/features.js';
import { DAY, protocolSets, tableFromDataset } from '../../src/fraud/table.js';

const T0 = Date.UTC(2018, 6, 25) / 1000; // a Wednesday, midnight UTC
const ev = (user: string, day: number, hour: number, amount: number, item: string, label: 0 | 1 = 0) =>
  ({ user, time: T0 + day * DAY + hour * 3600, type: 'payment', amount, item, label, scenario: label ? 2 : 0 });

function dataset(users: Record<string, ReturnType<typeof ev>[]>): Dataset {
  const list = Object.entries(users).map(([user, events]) => ({ user, events }));
  return { meta: { name: 'test', counts: { events: list.reduce((n, u) => n + u.events.length, 0) } } as Dataset['meta'], users: list, items: new Map() };
}

describe('handbook features and protocol', () => {
  it('customer windows count and average over (t - w, t], the transaction included', () => {
    const t = tableFromDataset(dataset({
      a: [ev('a', 0, 10, 10, 't1'), ev('a', 0, 20, 30, 't1'), ev('a', 1, 12, 50, 't2'), ev('a', 9, 12, 70, 't2')],
    }));
    const cols = baselineFeatures(t, 7);
    const col = (name: string) => [...cols[BASELINE_FEATURES.indexOf(name)]];
    expect(col('customer_tx_1d')).toEqual([1, 2, 2, 1]); // day 1 12h sees day 0 20h, not 10h
    expect(col('customer_mean_amount_1d')).toEqual([10, 20, 40, 70]);
    expect(col('customer_tx_7d')).toEqual([1, 2, 3, 1]);
    expect(col('customer_tx_30d')).toEqual([1, 2, 3, 4]);
    expect(col('customer_mean_amount_30d')).toEqual([10, 20, 30, 40]);
    expect(col('night')).toEqual([0, 0, 0, 0]);
    // 2018-07-25 is a Wednesday; day 9 is a Friday.
    expect(col('weekend')).toEqual([0, 0, 0, 0]);
  });

  it('terminal risk uses only labels older than the delay: (t - delay - w, t - delay]', () => {
    const t = tableFromDataset(dataset({
      a: [ev('a', 0, 1, 5, 'T', 1), ev('a', 3, 1, 5, 'T', 0)],
      b: [ev('b', 7, 2, 5, 'T', 0), ev('b', 8, 0, 5, 'T', 0), ev('b', 14, 0, 5, 'T', 0)],
    }));
    const cols = baselineFeatures(t, 7);
    const col = (name: string) => [...cols[BASELINE_FEATURES.indexOf(name)]];
    // Order: a@0d1h (fraud), a@3d1h, b@7d2h, b@8d0h, b@14d0h.
    expect(col('terminal_tx_1d')).toEqual([0, 0, 1, 1, 0]);
    expect(col('terminal_risk_1d')).toEqual([0, 0, 1, 1, 0]);
    expect(col('terminal_tx_7d')).toEqual([0, 0, 1, 1, 2]); // the last sees (0d, 7d]: both of a's
    expect(col('terminal_risk_7d')).toEqual([0, 0, 1, 1, 0.5]);
    expect(col('terminal_tx_30d')).toEqual([0, 0, 1, 1, 2]);
    expect(col('terminal_risk_30d')).toEqual([0, 0, 1, 1, 0.5]);
    expect(col('night')).toEqual([1, 1, 1, 1, 1]);
  });

  it('leaves out test transactions of cards already known to be compromised that day', () => {
    const t = tableFromDataset(dataset({
      // fraud in training: all of a's test transactions are left out
      a: [ev('a', 1, 10, 5, 'T', 1), ev('a', 14, 10, 5, 'T'), ev('a', 15, 10, 5, 'T')],
      // fraud on day 8 (delay period): known from test day 2 (day 16) on, as the handbook adds day 7 + i on test day i
      b: [ev('b', 8, 10, 5, 'T', 1), ev('b', 14, 10, 5, 'T'), ev('b', 15, 10, 5, 'T'), ev('b', 20, 10, 5, 'T')],
      // fraud in the test window itself: not known before the test ends (7 day delay)
      c: [ev('c', 14, 10, 5, 'T', 1), ev('c', 16, 10, 5, 'T')],
    }));
    const w = { trainStart: T0, trainEnd: T0 + 7 * DAY, testStart: T0 + 14 * DAY, testEnd: T0 + 21 * DAY };
    const s = protocolSets(t, w);
    expect([...s.train]).toEqual([0]);
    const names = [...s.test].map((k) => `${t.users[t.user[k]]}${(t.time[k] - T0) / DAY | 0}`);
    expect(names).toEqual(['b14', 'b15', 'c14', 'c16']);
    expect([...s.testDay]).toEqual([0, 1, 0, 2]);
    expect(s.removedKnown).toBe(3);
  });
});
