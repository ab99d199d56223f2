import type { PreparedData } from '../data/prepare.js';
import type { TimeWindow } from '../data/split.js';
import { PantherError } from '../errors.js';
import type { PantherModel } from '../model/panther.js';
import { eventDeviations, type EventDeviations, type PriorMode } from './deviation.js';
import { BASELINE_FEATURES, baselineFeatures, selectRows } from './features.js';
import { trainGbdt, type GbdtOptionsSchema } from './gbdt.js';
import { fraudMetrics, type FraudMetrics } from './metrics.js';
import { embeddingFeatureNames, medianOf, PRIOR_FEATURES, type FraudModelFile } from './model.js';
import { fitProjection, project, type Projection } from './projection.js';
import { DAY, protocolSets, type TransactionTable } from './table.js';
import type { z } from 'zod';

/**
 * The fraud comparison on the handbook's protocol: (a) the handbook-style baseline, a tree
 * ensemble on the transaction and its customer-spending and terminal-risk windows, against
 * (b) the same model with the behaviour-prior features added (deviation of the event from
 * the user's prior: NLL, rank, Delta, the prior's confidence, and a PCA projection of the
 * hidden state the prior came from). Same rows, labels, hyper-parameters and seed.
 */
export interface ComparisonOptions {
  window: TimeWindow;
  gbdt?: z.input<typeof GbdtOptionsSchema>;
  /**
   * Tree-ensemble seeds beyond the first (gbdt.seed): (a) and (b) are trained again with each,
   * on the same rows, so a difference can be read against the spread the seed alone gives.
   * The models, importances and the main table are the first seed's.
   */
  extraSeeds?: number[];
  /** (b) is run when a pretrained model is given. */
  prior?: { model: PantherModel; data: PreparedData; mode: PriorMode; lagDays?: number; components: number; checkpoint: string; minContext?: number } | null;
  dataName: string;
  log?: (message: string) => void;
}

export interface ComparisonResult {
  data: string;
  window: TimeWindow;
  sets: { train: number; trainFrauds: number; test: number; testFrauds: number; removedKnown: number };
  baseline: FraudMetrics;
  withPrior: FraudMetrics | null;
  /** Every seed's (a) and (b), the first one included (the main table's). */
  seeds: { seed: number; baseline: FraudMetrics; withPrior: FraudMetrics | null }[];
  importance: { baseline: { feature: string; gain: number }[]; withPrior: { feature: string; gain: number }[] | null };
  seconds: { features: number; deviations: number; training: number };
  models: { baseline: FraudModelFile; withPrior: FraudModelFile | null };
  /** Test scores of both models, aligned with the test rows (for merchant tools and plots). */
  testRows: Int32Array;
}

/** Prior and embedding feature columns for rows whose deviations are `dev` (same order). */
export function priorColumns(dev: EventDeviations, projection: Projection | null): Float64Array[] {
  const n = dev.events.length;
  const cols = [
    Float64Array.from(dev.nll),
    Float64Array.from(dev.rank, (r) => Math.log2(Math.max(1, r))),
    Float64Array.from(dev.delta),
    Float64Array.from(dev.topProb),
    Float64Array.from(dev.missing),
  ];
  if (projection) {
    const k = projection.components.length;
    const emb = Array.from({ length: k }, () => new Float64Array(n));
    const tmp: number[] = [];
    for (let i = 0; i < n; i++) {
      if (dev.missing[i]) continue; // zeros: the population mean in projected space
      project(projection, dev.state, i * dev.dModel, tmp);
      for (let c = 0; c < k; c++) emb[c][i] = tmp[c];
    }
    cols.push(...emb);
  }
  return cols;
}

function modelFile(names: string[], state: ReturnType<typeof trainGbdt>['state'], cols: Float64Array[], o: ComparisonOptions, projection: Projection | null, frauds: number): FraudModelFile {
  return {
    format: 'panther-fraud-model',
    version: 1,
    model: state,
    projection,
    medians: Object.fromEntries(names.map((f, i) => [f, medianOf(cols[i])])),
    trainedOn: {
      data: o.dataName,
      checkpoint: o.prior?.checkpoint ?? null,
      window: o.window,
      prior: o.prior?.mode ?? null,
      priorLagDays: o.prior?.lagDays ?? 0,
      rows: cols[0]?.length ?? 0,
      frauds,
    },
  };
}

export async function compareFraudModels(table: TransactionTable, o: ComparisonOptions): Promise<ComparisonResult> {
  const log = o.log ?? (() => {});
  const w = o.window;
  const delayDays = (w.testStart - w.trainEnd) / DAY;
  let t0 = performance.now();
  const sets = protocolSets(table, w);
  if (!sets.train.length || !sets.test.length) throw new PantherError('E_DATA', `the protocol window has ${sets.train.length} training and ${sets.test.length} test transactions`, 'fraud-eval');
  const all = baselineFeatures(table, delayDays);
  const trainX = selectRows(all, sets.train);
  const testX = selectRows(all, sets.test);
  const yTrain = Int8Array.from(sets.train, (k) => table.label[k]);
  const trainFrauds = yTrain.reduce((a, b) => a + b, 0);
  const features = (performance.now() - t0) / 1000;
  log(`features: ${sets.train.length} training rows (${trainFrauds} frauds), ${sets.test.length} test rows, ${features.toFixed(1)} s`);

  t0 = performance.now();
  const names = [...BASELINE_FEATURES];
  const seeds = [o.gbdt?.seed ?? 1, ...(o.extraSeeds ?? [])];
  const a = trainGbdt(names, trainX, yTrain, { ...o.gbdt, seed: seeds[0] });
  const scored = (scores: Float64Array) => Array.from(sets.test, (k, i) => ({ score: scores[i], label: table.label[k], card: table.user[k], day: sets.testDay[i], scenario: table.scenario[k] }));
  /** The test metrics of a tree ensemble trained with another seed on the same columns. */
  const reseeded = (featureNames: string[], train: Float64Array[], test: Float64Array[], seed: number) =>
    fraudMetrics(scored(trainGbdt(featureNames, train, yTrain, { ...o.gbdt, seed }).predictColumns(test, sets.test.length)));
  const baseline = fraudMetrics(scored(a.predictColumns(testX, sets.test.length)));
  let training = (performance.now() - t0) / 1000;
  log(`(a) baseline trained and scored in ${training.toFixed(1)} s`);
  const seedRuns: ComparisonResult['seeds'] = [{ seed: seeds[0], baseline, withPrior: null }];

  let withPrior: FraudMetrics | null = null;
  let priorModel: FraudModelFile | null = null;
  let priorImportance: ComparisonResult['importance']['withPrior'] = null;
  let deviations = 0;
  /** (b)'s feature names and columns, once the prior's are computed. */
  let columnsB: { names: string[]; train: Float64Array[]; test: Float64Array[] } | null = null;
  if (o.prior) {
    const p = o.prior;
    if (p.data.tokens.length !== table.n) throw new PantherError('E_DATA', `prepared data has ${p.data.tokens.length} events, the transaction table ${table.n}`, 'fraud-eval');
    t0 = performance.now();
    const rows = Int32Array.from([...sets.train, ...sets.test]).sort();
    const dev = await eventDeviations(p.model, p.data, rows, {
      mode: p.mode,
      lagDays: p.lagDays,
      minContext: p.minContext,
      onProgress: (done, total) => { if (done === total || done % 200 === 0) log(`deviations: ${done}/${total} windows`); },
    });
    deviations = (performance.now() - t0) / 1000;
    const position = new Map<number, number>();
    rows.forEach((k, i) => position.set(k, i));
    const trainRowsInDev = Int32Array.from(sets.train, (k) => position.get(k)!).filter((i) => !dev.missing[i]);
    const projection = p.components > 0 && trainRowsInDev.length > 1 ? fitProjection(dev.state, dev.dModel, trainRowsInDev, p.components) : null;
    const priorAll = priorColumns(dev, projection);
    const pick = (set: Int32Array) => priorAll.map((c) => Float64Array.from(set, (k) => c[position.get(k)!]));
    const namesB = [...names, ...PRIOR_FEATURES, ...embeddingFeatureNames(projection?.components.length ?? 0)];
    const trainB = [...trainX, ...pick(sets.train)];
    const testB = [...testX, ...pick(sets.test)];
    t0 = performance.now();
    const b = trainGbdt(namesB, trainB, yTrain, { ...o.gbdt, seed: seeds[0] });
    withPrior = fraudMetrics(scored(b.predictColumns(testB, sets.test.length)));
    seedRuns[0].withPrior = withPrior;
    const tb = (performance.now() - t0) / 1000;
    training += tb;
    log(`(b) with the behaviour prior: deviations ${deviations.toFixed(1)} s, trained and scored in ${tb.toFixed(1)} s`);
    priorModel = modelFile(namesB, b.state, trainB, o, projection, trainFrauds);
    priorImportance = b.importance();
    columnsB = { names: namesB, train: trainB, test: testB };
  }
  for (const seed of seeds.slice(1)) {
    seedRuns.push({ seed, baseline: reseeded(names, trainX, testX, seed), withPrior: columnsB ? reseeded(columnsB.names, columnsB.train, columnsB.test, seed) : null });
  }
  if (seeds.length > 1) log(`${seeds.length - 1} more seeds of the tree ensemble trained and scored`);
  return {
    data: o.dataName,
    window: w,
    sets: { train: sets.train.length, trainFrauds, test: sets.test.length, testFrauds: baseline.frauds, removedKnown: sets.removedKnown },
    baseline,
    withPrior,
    seeds: seedRuns,
    importance: { baseline: a.importance(), withPrior: priorImportance },
    seconds: { features, deviations, training },
    models: { baseline: modelFile(names, a.state, trainX, o, null, trainFrauds), withPrior: priorModel },
    testRows: sets.test,
  };
}

export const SCENARIO_NAMES: Record<string, Record<number, string>> = {
  'fraud-handbook': { 1: 'amount > 220', 2: 'compromised terminal', 3: 'leaked credentials, amount x5' },
  synthetic: { 1: 'account takeover', 2: 'card testing', 3: 'compromised merchant' },
};

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(2) : '-');
const num = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
}

export function comparisonLines(r: ComparisonResult): string[] {
  const day = (s: number) => new Date(s * 1000).toISOString().slice(0, 10);
  const w = r.window;
  const lines = [
    `${r.data}: train ${day(w.trainStart)}..${day(w.trainEnd - 1)} (${r.sets.train} transactions, ${r.sets.trainFrauds} frauds), delay ${(w.testStart - w.trainEnd) / DAY} days, test ${day(w.testStart)}..${day(w.testEnd - 1)} (${r.sets.test} transactions, ${r.sets.testFrauds} frauds; ${r.sets.removedKnown} of known compromised cards left out)`,
  ];
  const head = ['model', 'AUC ROC', 'AP', 'CP@100', 'recall@0.1%', 'recall@1%'];
  const row = (name: string, m: FraudMetrics) => [name, num(m.aucRoc), num(m.averagePrecision), num(m.cardPrecision100), pct(m.recallTop01), pct(m.recallTop1)];
  const rows = [head, row('(a) baseline', r.baseline)];
  if (r.withPrior) {
    rows.push(row('(b) + behaviour prior', r.withPrior));
    const gain = (b: number, a: number) => (a > 0 && Number.isFinite(b) ? `${b >= a ? '+' : ''}${(100 * (b / a - 1)).toFixed(1)}%` : '-');
    const a = r.baseline;
    const b = r.withPrior;
    rows.push(['relative gain', gain(b.aucRoc, a.aucRoc), gain(b.averagePrecision, a.averagePrecision), gain(b.cardPrecision100, a.cardPrecision100), gain(b.recallTop01, a.recallTop01), gain(b.recallTop1, a.recallTop1)]);
  }
  lines.push(...table(rows));
  const names = SCENARIO_NAMES[r.data] ?? {};
  const srows = [['scenario', 'frauds', 'AUC (a)', 'AUC (b)', 'recall@0.1% (a)', '(b)', 'recall@1% (a)', '(b)']];
  for (const s of r.baseline.scenarios) {
    const b = r.withPrior?.scenarios.find((x) => x.scenario === s.scenario);
    srows.push([`${s.scenario} ${names[s.scenario] ?? ''}`.trim(), String(s.frauds), num(s.aucRoc), b ? num(b.aucRoc) : '-', pct(s.recallTop01), b ? pct(b.recallTop01) : '-', pct(s.recallTop1), b ? pct(b.recallTop1) : '-']);
  }
  lines.push('per fraud scenario (recall: share of the scenario\'s frauds in the top 0.1% / 1% of all test transactions)', ...table(srows));
  if (r.seeds.length > 1) {
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const span = (xs: number[]) => `${num(mean(xs))} (${num(Math.min(...xs))}..${num(Math.max(...xs))})`;
    const withB = r.seeds.filter((s) => s.withPrior);
    const srows = [['over tree seeds', 'AP (a)', 'AP (b)', 'CP@100 (a)', 'CP@100 (b)']];
    for (const s of r.seeds) srows.push([`seed ${s.seed}`, num(s.baseline.averagePrecision), s.withPrior ? num(s.withPrior.averagePrecision) : '-', num(s.baseline.cardPrecision100), s.withPrior ? num(s.withPrior.cardPrecision100) : '-']);
    srows.push([`mean (min..max) of ${r.seeds.length}`, span(r.seeds.map((s) => s.baseline.averagePrecision)), withB.length ? span(withB.map((s) => s.withPrior!.averagePrecision)) : '-',
      span(r.seeds.map((s) => s.baseline.cardPrecision100)), withB.length ? span(withB.map((s) => s.withPrior!.cardPrecision100)) : '-']);
    lines.push(...table(srows));
    if (withB.length) {
      const ahead = (key: 'averagePrecision' | 'cardPrecision100') => withB.filter((s) => s.withPrior![key] > s.baseline[key]).length;
      lines.push(`(b) ahead of (a) with the same seed: AP ${ahead('averagePrecision')} of ${withB.length}, CP@100 ${ahead('cardPrecision100')} of ${withB.length}`);
    }
  }
  if (r.importance.withPrior) {
    lines.push(`most useful features of (b): ${r.importance.withPrior.slice(0, 8).map((f) => `${f.feature} ${(100 * f.gain).toFixed(1)}%`).join(', ')}`);
  }
  return lines;
}
