import type { PreparedData } from '../data/prepare.js';
import { PantherError } from '../errors.js';
import type { PantherModel } from '../model/panther.js';
import { eventDeviations } from './deviation.js';
import { DAY, type TransactionTable } from './table.js';

/**
 * Merchant (terminal) risk from behaviour deviation (method.md part 4): "many users deviate
 * from their own baseline at this merchant". Each day, terminals are ranked by
 * - `at`: a quantile of the NLL of that day's events at the terminal, each under its own
 *   customer's prior (deviation at the merchant);
 * - `visitors`: a quantile, over the customers who paid at the terminal in the previous
 *   `lookbackDays`, of their largest NLL that day (a common point of compromise: the
 *   customers deviate later, elsewhere);
 * next to the baseline that ranks terminals by their fraud-label rate over the last
 * `lookbackDays` including the day itself (labels that would not be known in time).
 * Precision of the top 10 / 50 is measured against the terminals truly compromised that day.
 */
export interface MerchantOptions {
  from: number;
  to: number;
  quantile: number;
  minEvents: number;
  lookbackDays: number;
  tops: number[];
  log?: (m: string) => void;
}

export type Ranking = 'at' | 'visitors' | 'labelRate';
export const RANKINGS: Ranking[] = ['at', 'visitors', 'labelRate'];

export interface MerchantDay {
  day: string;
  compromised: number;
  candidates: number;
  /** precision[ranking][i] for tops[i]. */
  precision: Record<Ranking, number[]>;
  top: Record<Ranking, string[]>;
}

export interface MerchantReport {
  tops: number[];
  days: MerchantDay[];
  mean: Record<Ranking, number[]>;
  /** What a random ranking of the candidates would reach on average. */
  chance: number[];
}

/** Terminals truly compromised on a day, from the data's ground truth. */
export function compromisedTerminals(data: PreparedData, table: TransactionTable): (dayStart: number) => Set<number> {
  if (data.meta.name === 'fraud-handbook') {
    // Scenario 2: every transaction at a compromised terminal is fraud for 28 days.
    const byDay = new Map<number, Set<number>>();
    for (let k = 0; k < table.n; k++) {
      if (table.scenario[k] !== 2 || table.terminal[k] < 0) continue;
      const d = Math.floor(table.time[k] / DAY) * DAY;
      let s = byDay.get(d);
      if (!s) byDay.set(d, (s = new Set()));
      s.add(table.terminal[k]);
    }
    return (day) => byDay.get(day) ?? new Set();
  }
  const listed = (data.meta.extra?.compromisedMerchants ?? null) as { merchant: string; from: number; to: number }[] | null;
  if (listed) {
    const index = new Map(table.terminals.map((t, i) => [t, i]));
    return (day) => new Set(listed.filter((m) => m.from <= day && day < m.to && index.has(m.merchant)).map((m) => index.get(m.merchant)!));
  }
  throw new PantherError('E_DATA', `${data.meta.name} says nothing about compromised merchants (the handbook's scenario 2 or the synthetic generator's list)`, 'merchants');
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export async function merchantRisk(table: TransactionTable, data: PreparedData, model: PantherModel, o: MerchantOptions): Promise<MerchantReport> {
  const log = o.log ?? (() => {});
  const truthOf = compromisedTerminals(data, table);
  const first = Math.floor(o.from / DAY) * DAY;
  const events: number[] = [];
  for (let k = 0; k < table.n; k++) if (table.time[k] >= first && table.time[k] < o.to) events.push(k);
  if (!events.length) throw new PantherError('E_ARGUMENT', 'no transactions in the chosen days', 'merchants');
  log(`deviations of ${events.length} transactions`);
  const dev = await eventDeviations(model, data, Int32Array.from(events), { mode: 'fresh', onProgress: (d, t) => { if (d === t) log(`deviations done (${t} windows)`); } });
  const nllOf = new Map<number, number>();
  events.forEach((k, i) => { if (!dev.missing[i]) nllOf.set(k, dev.nll[i]); });

  // Visits for the `visitors` ranking and labels for the baseline, by day.
  const report: MerchantReport = { tops: o.tops, days: [], mean: { at: o.tops.map(() => 0), visitors: o.tops.map(() => 0), labelRate: o.tops.map(() => 0) }, chance: o.tops.map(() => 0) };
  for (let day = first; day < o.to; day += DAY) {
    const truth = truthOf(day);
    const at = new Map<number, number[]>();
    const customerMax = new Map<number, number>();
    for (const k of events) {
      if (table.time[k] < day || table.time[k] >= day + DAY) continue;
      const nll = nllOf.get(k);
      if (nll === undefined) continue;
      if (table.terminal[k] >= 0) {
        let l = at.get(table.terminal[k]);
        if (!l) at.set(table.terminal[k], (l = []));
        l.push(nll);
      }
      customerMax.set(table.user[k], Math.max(customerMax.get(table.user[k]) ?? -Infinity, nll));
    }
    const visitors = new Map<number, Set<number>>();
    const labelled = new Map<number, { n: number; fraud: number }>();
    for (let k = 0; k < table.n; k++) {
      const t = table.time[k];
      const term = table.terminal[k];
      if (term < 0) continue;
      if (t >= day - o.lookbackDays * DAY && t < day) {
        let s = visitors.get(term);
        if (!s) visitors.set(term, (s = new Set()));
        s.add(table.user[k]);
      }
      if (t >= day - (o.lookbackDays - 1) * DAY && t < day + DAY) {
        const c = labelled.get(term) ?? { n: 0, fraud: 0 };
        c.n++;
        c.fraud += table.label[k];
        labelled.set(term, c);
      }
    }
    const scores: Record<Ranking, [number, number][]> = { at: [], visitors: [], labelRate: [] };
    for (const [term, l] of at) if (l.length >= o.minEvents) scores.at.push([term, quantile(l, o.quantile)]);
    for (const [term, s] of visitors) {
      const devs = [...s].map((u) => customerMax.get(u)).filter((v): v is number => v !== undefined);
      if (devs.length >= o.minEvents) scores.visitors.push([term, quantile(devs, o.quantile)]);
    }
    for (const [term, c] of labelled) if (c.n >= o.minEvents) scores.labelRate.push([term, c.fraud / c.n + c.n * 1e-9]);
    const precision = {} as Record<Ranking, number[]>;
    const top = {} as Record<Ranking, string[]>;
    for (const r of RANKINGS) {
      const ranked = scores[r].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      precision[r] = o.tops.map((k) => ranked.slice(0, k).filter(([term]) => truth.has(term)).length / k);
      top[r] = ranked.slice(0, 5).map(([term]) => table.terminals[term]);
    }
    const candidates = new Set([...at.keys(), ...visitors.keys()]).size;
    const present = [...truth].filter((t) => at.has(t) || visitors.has(t)).length;
    report.days.push({ day: new Date(day * 1000).toISOString().slice(0, 10), compromised: truth.size, candidates, precision, top });
    o.tops.forEach((_, i) => (report.chance[i] += candidates ? present / candidates : 0));
  }
  const D = report.days.length;
  for (const r of RANKINGS) report.mean[r] = o.tops.map((_, i) => report.days.reduce((s, d) => s + d.precision[r][i], 0) / D);
  report.chance = report.chance.map((c) => c / D);
  return report;
}

export function merchantLines(r: MerchantReport): string[] {
  const head = ['day', 'compromised', ...RANKINGS.flatMap((k) => r.tops.map((t) => `${k} P@${t}`))];
  const rows = [head];
  for (const d of r.days) rows.push([d.day, String(d.compromised), ...RANKINGS.flatMap((k) => d.precision[k].map((p) => p.toFixed(2)))]);
  rows.push(['mean', '', ...RANKINGS.flatMap((k) => r.mean[k].map((p) => p.toFixed(3)))]);
  const widths = head.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return [
    'terminals ranked per day: at = NLL quantile of the day\'s events at the terminal under each customer\'s prior; visitors = NLL quantile of the customers who paid there in the lookback; labelRate = fraud-label rate (uses labels not known in time)',
    ...rows.map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')),
    `a random ranking would reach ${r.chance.map((c) => c.toFixed(3)).join(' / ')} on average`,
  ];
}
