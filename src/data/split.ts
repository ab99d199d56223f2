import { PantherError } from '../errors.js';
import type { SplitConfig } from './config.js';
import type { Dataset, UserHistory } from './events.js';

/**
 * Train / validation / test splits, as a role per event. Two protocols (method.md):
 * - leave-one-out: per user, the last event is test, the one before validation, the rest
 *   training; users with fewer than 3 events are training only (counted);
 * - time: labelled training events in [trainStart, T1), a delay (labels not known yet),
 *   test events in [T1 + delay, T2) — the fraud protocol. The delay's events are the
 *   validation set (after everything fitted, before anything tested: early stopping sees
 *   no test time); with no delay there is none. Events outside are 'context': history the
 *   model may read but that is neither trained nor scored.
 * `fitLength` is, per user, the prefix of the history that fitting (tokenizer, pretraining)
 * may see: nothing from validation or test time leaks into the vocabulary. A time split may
 * also end fitting before the labelled training window (`fitEnd: train-start`): a classifier
 * trained on that window's rows then sees behaviour features computed out of sample, as the
 * test rows' are.
 */
export const ROLE = { train: 0, valid: 1, test: 2, context: 3 } as const;
export type Role = (typeof ROLE)[keyof typeof ROLE];
export const ROLE_NAMES = ['train', 'valid', 'test', 'context'] as const;

export interface TimeWindow {
  /** Seconds since the epoch; [trainStart, trainEnd) is labelled training, [testStart, testEnd) test. */
  trainStart: number;
  trainEnd: number;
  testStart: number;
  testEnd: number;
}

export interface SplitCounts {
  train: number;
  valid: number;
  test: number;
  context: number;
  /** leave-one-out: users with fewer than 3 events (training only). */
  shortUsers: number;
  /** Users with at least one test event. */
  testUsers: number;
}

export interface Split {
  kind: 'leave-one-out' | 'time';
  /** Aligned with `dataset.users`, one role per event. */
  roles: Uint8Array[];
  fitLength: Int32Array;
  counts: SplitCounts;
  window?: TimeWindow;
}

export function leaveOneOutSplit(users: readonly UserHistory[]): Split {
  const roles: Uint8Array[] = [];
  const fitLength = new Int32Array(users.length);
  const counts: SplitCounts = { train: 0, valid: 0, test: 0, context: 0, shortUsers: 0, testUsers: 0 };
  users.forEach((u, i) => {
    const n = u.events.length;
    const r = new Uint8Array(n); // all ROLE.train
    if (n < 3) {
      counts.shortUsers++;
      fitLength[i] = n;
      counts.train += n;
    } else {
      r[n - 2] = ROLE.valid;
      r[n - 1] = ROLE.test;
      fitLength[i] = n - 2;
      counts.train += n - 2;
      counts.valid++;
      counts.test++;
      counts.testUsers++;
    }
    roles.push(r);
  });
  return { kind: 'leave-one-out', roles, fitLength, counts };
}

/** Where fitting ends in a time split: with the labelled training window, or before it. */
export type FitEnd = 'train-end' | 'train-start';

export function timeSplit(users: readonly UserHistory[], window: TimeWindow, fitEnd: FitEnd = 'train-end'): Split {
  const { trainStart, trainEnd, testStart, testEnd } = window;
  const fitUntil = fitEnd === 'train-start' ? trainStart : trainEnd;
  if (!(trainStart <= trainEnd && trainEnd <= testStart && testStart <= testEnd)) {
    throw new PantherError('E_CONFIG', `time split windows must be ordered: train [${trainStart}, ${trainEnd}), test [${testStart}, ${testEnd})`, 'data.split');
  }
  const roles: Uint8Array[] = [];
  const fitLength = new Int32Array(users.length);
  const perRole = [0, 0, 0, 0];
  let testUsers = 0;
  for (let i = 0; i < users.length; i++) {
    const events = users[i].events;
    const r = new Uint8Array(events.length);
    let fit = 0;
    let tested = false;
    for (let k = 0; k < events.length; k++) {
      const t = events[k].time;
      if (t < fitUntil) fit = k + 1;
      const role = t >= trainStart && t < trainEnd ? ROLE.train : t >= trainEnd && t < testStart ? ROLE.valid : t >= testStart && t < testEnd ? ROLE.test : ROLE.context;
      r[k] = role;
      perRole[role]++;
      if (role === ROLE.test) tested = true;
    }
    if (tested) testUsers++;
    fitLength[i] = fit;
    roles.push(r);
  }
  const [train, valid, test, context] = perRole;
  return { kind: 'time', roles, fitLength, counts: { train, valid, test, context, shortUsers: 0, testUsers }, window };
}

const DAY = 86_400;

/** The Fraud Detection Handbook's protocol: train 7 days from 2018-07-25, 7-day delay, test the next 7 days. */
export const HANDBOOK_SPLIT = { kind: 'time', trainStart: '2018-07-25', trainDays: 7, delayDays: 7, testDays: 7 } as const;

export function timeWindowOf(config: { trainStart: string; trainDays: number; delayDays: number; testDays: number }): TimeWindow {
  const trainStart = Date.parse(`${config.trainStart}T00:00:00Z`) / 1000;
  if (!Number.isFinite(trainStart)) throw new PantherError('E_CONFIG', `not a date: ${config.trainStart}`, 'data.split.trainStart');
  const trainEnd = trainStart + config.trainDays * DAY;
  const testStart = trainEnd + config.delayDays * DAY;
  return { trainStart, trainEnd, testStart, testEnd: testStart + config.testDays * DAY };
}

/** The split a config asks for; 'auto' is the time protocol for fraud-handbook, leave-one-out otherwise. */
export function splitDataset(dataset: Dataset, config: SplitConfig): Split {
  const resolved = config.kind === 'auto' ? (dataset.meta.name === 'fraud-handbook' ? HANDBOOK_SPLIT : { kind: 'leave-one-out' as const }) : config;
  if (resolved.kind === 'leave-one-out') return leaveOneOutSplit(dataset.users);
  if (dataset.meta.clock !== 'unix') {
    throw new PantherError('E_CONFIG', `a time split needs timestamps, and ${dataset.meta.name} has only an order; use leave-one-out`, 'data.split');
  }
  return timeSplit(dataset.users, timeWindowOf(resolved), 'fitEnd' in resolved ? resolved.fitEnd : undefined);
}
