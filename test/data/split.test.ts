import { describe, expect, it } from 'vitest';
import type { BehaviorEvent } from '../../src/data/events.js';
import { leaveOneOutSplit, ROLE, splitDataset, timeSplit, timeWindowOf } from '../../src/data/split.js';
import { at, datasetOf } from './helpers.js';

function events(user: string, times: number[]): BehaviorEvent[] {
  return times.map((time) => ({ user, time, type: 'payment' }));
}

describe('leave-one-out split', () => {
  const d = datasetOf([...events('a', [5, 1, 3, 4, 2]), ...events('b', [1, 2]), ...events('c', [7, 8, 9])]);

  it('makes the last event test, the one before validation, the rest training', () => {
    const s = leaveOneOutSplit(d.users);
    expect(d.users.map((u) => u.user)).toEqual(['a', 'b', 'c']);
    expect([...s.roles[0]]).toEqual([ROLE.train, ROLE.train, ROLE.train, ROLE.valid, ROLE.test]);
    expect(d.users[0].events[4].time).toBe(5); // sorted by time first
    expect([...s.roles[2]]).toEqual([ROLE.train, ROLE.valid, ROLE.test]);
    expect([...s.fitLength]).toEqual([3, 2, 1]);
  });

  it('keeps users with fewer than 3 events in training only, and counts them', () => {
    const s = leaveOneOutSplit(d.users);
    expect([...s.roles[1]]).toEqual([ROLE.train, ROLE.train]);
    expect(s.counts).toEqual({ train: 6, valid: 2, test: 2, context: 0, shortUsers: 1, testUsers: 2 });
  });
});

describe('time split', () => {
  const day = (d: number) => at(`2018-07-${String(d).padStart(2, '0')} 12:00`);
  const d = datasetOf([
    ...events('a', [day(20), day(25), day(31), at('2018-08-01 00:00'), at('2018-08-08 00:00'), at('2018-08-14 23:59'), at('2018-08-15 00:00')]),
    ...events('b', [day(26)]),
  ]);

  it('trains on [start, T1), validates on the delay, tests on [T1 + delay, T2), leaves the rest as context', () => {
    const s = splitDataset({ ...d, meta: { ...d.meta, name: 'fraud-handbook' } }, { kind: 'auto' });
    expect(s.kind).toBe('time');
    expect([...s.roles[0]]).toEqual([ROLE.context, ROLE.train, ROLE.train, ROLE.valid, ROLE.test, ROLE.test, ROLE.context]);
    // Fitting sees every event before T1 (also the history before the labelled window), nothing later.
    expect([...s.fitLength]).toEqual([3, 1]);
    expect(s.counts).toMatchObject({ train: 3, valid: 1, test: 2, context: 2, testUsers: 1 });
  });

  it('ends fitting before the labelled window when asked, so its rows are out of sample', () => {
    const s = splitDataset(d, { kind: 'time', trainStart: '2018-07-25', trainDays: 7, delayDays: 7, testDays: 7, fitEnd: 'train-start' });
    expect([...s.roles[0]]).toEqual([ROLE.context, ROLE.train, ROLE.train, ROLE.valid, ROLE.test, ROLE.test, ROLE.context]);
    expect([...s.fitLength]).toEqual([1, 0]);
  });

  it('takes its windows from the config', () => {
    const w = timeWindowOf({ trainStart: '2018-07-25', trainDays: 3, delayDays: 0, testDays: 1 });
    expect(w).toEqual({ trainStart: at('2018-07-25 00:00'), trainEnd: at('2018-07-28 00:00'), testStart: at('2018-07-28 00:00'), testEnd: at('2018-07-29 00:00') });
    const s = splitDataset(d, { kind: 'time', trainStart: '2018-07-25', trainDays: 3, delayDays: 0, testDays: 1 });
    expect([...s.roles[0]].slice(0, 3)).toEqual([ROLE.context, ROLE.train, ROLE.context]);
    expect(() => timeSplit(d.users, { ...w, testStart: w.trainStart })).toThrow(/must be ordered/);
  });

  it('is leave-one-out for every other data set, and refuses time on order-only data', () => {
    expect(splitDataset(d, { kind: 'auto' }).kind).toBe('leave-one-out');
    const ordinal = { ...d, meta: { ...d.meta, clock: 'ordinal' as const } };
    expect(() => splitDataset(ordinal, { kind: 'time', trainStart: '2018-07-25', trainDays: 7, delayDays: 7, testDays: 7 })).toThrow(/needs timestamps/);
  });
});
