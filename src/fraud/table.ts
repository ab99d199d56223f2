import type { Dataset } from '../data/events.js';
import type { TimeWindow } from '../data/split.js';
import { PantherError } from '../errors.js';

export const DAY = 86_400;

/**
 * All transactions of a data set as flat columns, in the order of `PreparedData` (users in
 * the data set's order, each user's events by time), so event k here is event k there.
 */
export interface TransactionTable {
  n: number;
  users: string[];
  /** users.length + 1 entries. */
  offsets: Int32Array;
  user: Int32Array;
  time: Float64Array;
  amount: Float64Array;
  /** Index into `terminals`, -1 when the event has no item. */
  terminal: Int32Array;
  terminals: string[];
  label: Int8Array;
  scenario: Int8Array;
}

export function tableFromDataset(d: Dataset): TransactionTable {
  const n = d.meta.counts.events;
  const t: TransactionTable = {
    n,
    users: d.users.map((u) => u.user),
    offsets: new Int32Array(d.users.length + 1),
    user: new Int32Array(n),
    time: new Float64Array(n),
    amount: new Float64Array(n),
    terminal: new Int32Array(n),
    terminals: [],
    label: new Int8Array(n),
    scenario: new Int8Array(n),
  };
  const index = new Map<string, number>();
  let k = 0;
  d.users.forEach((u, ui) => {
    t.offsets[ui] = k;
    for (const e of u.events) {
      t.user[k] = ui;
      t.time[k] = e.time;
      t.amount[k] = e.amount ?? 0;
      let term = -1;
      if (e.item !== undefined) {
        term = index.get(e.item) ?? -1;
        if (term < 0) {
          term = t.terminals.length;
          index.set(e.item, term);
          t.terminals.push(e.item);
        }
      }
      t.terminal[k] = term;
      if (e.label === undefined) throw new PantherError('E_DATA', `event ${e.id ?? k} of user ${u.user} has no fraud label; fraud evaluation needs labelled data`, d.meta.name);
      t.label[k] = e.label;
      t.scenario[k] = e.scenario ?? e.label;
      k++;
    }
  });
  t.offsets[d.users.length] = k;
  return t;
}

/** The handbook's sets for one time window. */
export interface ProtocolSets {
  train: Int32Array;
  test: Int32Array;
  /** Per test row, its day (0 = first test day). */
  testDay: Int32Array;
  /** Test transactions left out because their card was already known to be compromised. */
  removedKnown: number;
}

/**
 * The Fraud Detection Handbook's `get_train_test_set`: training transactions in
 * [trainStart, trainEnd); test transactions day by day in [testStart, testEnd), leaving out
 * cards (customers) already known to be compromised on that day: those with a fraud in the
 * training window, or in the delay period up to (test day - delay).
 */
export function protocolSets(t: TransactionTable, w: TimeWindow): ProtocolSets {
  const train: number[] = [];
  const test: number[] = [];
  const testDay: number[] = [];
  const firstFraud = new Float64Array(t.users.length).fill(Infinity);
  for (let k = 0; k < t.n; k++) {
    const time = t.time[k];
    if (time >= w.trainStart && time < w.trainEnd) train.push(k);
    if (t.label[k] && time >= w.trainStart && time < firstFraud[t.user[k]]) firstFraud[t.user[k]] = time;
  }
  const delay = w.testStart - w.trainEnd;
  let removedKnown = 0;
  for (let k = 0; k < t.n; k++) {
    const time = t.time[k];
    if (time < w.testStart || time >= w.testEnd) continue;
    const day = Math.floor((time - w.testStart) / DAY);
    // Labels known on test day `day`: frauds before (that day's start - delay).
    const knownBefore = w.testStart + day * DAY - delay;
    if (firstFraud[t.user[k]] < knownBefore) {
      removedKnown++;
      continue;
    }
    test.push(k);
    testDay.push(day);
  }
  return { train: Int32Array.from(train), test: Int32Array.from(test), testDay: Int32Array.from(testDay), removedKnown };
}
