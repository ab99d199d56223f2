import { DAY, type TransactionTable } from './table.js';

/**
 * The handbook's baseline features (Ch. 3.3), computed for every transaction from the
 * whole history in time order:
 * - the transaction: amount, weekend, night (hour <= 6);
 * - customer spending windows (1, 7, 30 days, the current transaction included): count and
 *   mean amount over (t - w, t];
 * - terminal risk windows with the label delay: count and fraud rate over
 *   (t - delay - w, t - delay], labels younger than the delay being unknown.
 * Online, the window features come with the request (the caller's feature store) and the
 * transaction features from the event itself.
 */
export const EVENT_FEATURES = ['amount', 'weekend', 'night'] as const;
export const WINDOW_DAYS = [1, 7, 30] as const;
export const CUSTOMER_FEATURES = WINDOW_DAYS.flatMap((w) => [`customer_tx_${w}d`, `customer_mean_amount_${w}d`]);
export const TERMINAL_FEATURES = WINDOW_DAYS.flatMap((w) => [`terminal_tx_${w}d`, `terminal_risk_${w}d`]);
export const BASELINE_FEATURES = [...EVENT_FEATURES, ...CUSTOMER_FEATURES, ...TERMINAL_FEATURES];

/** Weekend and night from the event time (UTC, as the data's clock). */
export function eventFeatures(time: number, amount: number): [number, number, number] {
  const d = new Date(time * 1000);
  const weekday = d.getUTCDay();
  return [amount, weekday === 0 || weekday === 6 ? 1 : 0, d.getUTCHours() <= 6 ? 1 : 0];
}

/** Column-major features for every transaction of the table, in BASELINE_FEATURES order. */
export function baselineFeatures(t: TransactionTable, delayDays: number): Float64Array[] {
  const n = t.n;
  const cols = BASELINE_FEATURES.map(() => new Float64Array(n));
  for (let k = 0; k < n; k++) {
    const [a, w, night] = eventFeatures(t.time[k], t.amount[k]);
    cols[0][k] = a;
    cols[1][k] = w;
    cols[2][k] = night;
  }
  // Customers: events are grouped by user and ordered by time; the window ends at the event.
  for (let u = 0; u < t.users.length; u++) {
    const first = t.offsets[u];
    const end = t.offsets[u + 1];
    WINDOW_DAYS.forEach((days, wi) => {
      const count = cols[3 + 2 * wi];
      const mean = cols[4 + 2 * wi];
      let lo = first;
      let sum = 0;
      for (let k = first; k < end; k++) {
        sum += t.amount[k];
        while (t.time[lo] <= t.time[k] - days * DAY) sum -= t.amount[lo++];
        count[k] = k - lo + 1;
        mean[k] = sum / (k - lo + 1);
      }
    });
  }
  // Terminals: each terminal's events by time; the window is shifted back by the delay.
  const byTerminal: number[][] = t.terminals.map(() => []);
  for (let k = 0; k < n; k++) if (t.terminal[k] >= 0) byTerminal[t.terminal[k]].push(k);
  const base = 3 + 2 * WINDOW_DAYS.length;
  for (const events of byTerminal) {
    events.sort((a, b) => t.time[a] - t.time[b] || a - b);
    WINDOW_DAYS.forEach((days, wi) => {
      const count = cols[base + 2 * wi];
      const risk = cols[base + 2 * wi + 1];
      // (t - delay - w, t - delay]: [lo, hi) over the sorted list.
      let lo = 0;
      let hi = 0;
      let frauds = 0;
      for (const k of events) {
        const upper = t.time[k] - delayDays * DAY;
        const lower = upper - days * DAY;
        while (hi < events.length && t.time[events[hi]] <= upper) frauds += t.label[events[hi++]];
        while (lo < hi && t.time[events[lo]] <= lower) frauds -= t.label[events[lo++]];
        count[k] = hi - lo;
        risk[k] = hi > lo ? frauds / (hi - lo) : 0;
      }
    });
  }
  return cols;
}

/** Rows `rows` of each column. */
export function selectRows(columns: readonly Float64Array[], rows: Int32Array): Float64Array[] {
  return columns.map((c) => Float64Array.from(rows, (k) => c[k]));
}
