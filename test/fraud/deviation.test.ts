import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { modelFromCheckpoint } from '../../src/cli/model-commands.js';
import { makeBatch } from '../../src/data/batching.js';
import { loadDataset } from '../../src/data/load.js';
import { timeWindowOf } from '../../src/data/split.js';
import { anchorsOf, coverAnchors, eventDeviations } from '../../src/fraud/deviation.js';
import { comparisonLines, compareFraudModels } from '../../src/fraud/evaluate.js';
import { merchantLines, merchantRisk } from '../../src/fraud/merchants.js';
import { FraudModel, PRIOR_FEATURES } from '../../src/fraud/model.js';
import { DAY, tableFromDataset, type TransactionTable } from '../../src/fraud/table.js';
import { noGrad } from '../../src/tensor/tape.js';
import { tidy } from '../../src/tensor/tensor.js';
import { useGpu } from '../support/gpu.js';
import { FRAUD_RUN, tinyRun, type TinyRun } from '../jobs/fixture.js';
import { tempDir } from '../support/tmp.js';

describe('deviation from the behaviour prior, the fraud comparison and merchant risk', () => {
  const gpu = useGpu();
  let run: TinyRun;
  let table: TransactionTable;

  beforeAll(async () => {
    run = await tinyRun(gpu(), { ...FRAUD_RUN, steps: 6 });
    table = tableFromDataset(await loadDataset(run.dataConfig.source));
  });

  it('reads each event under the prior of its history: the window cover equals one window per event', async () => {
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    try {
      const u = 2;
      const first = run.data.offsets[u];
      const events = Int32Array.from([first, first + 1, first + 5, first + 17, first + 30, first + 31]);
      // minContext = L: every anchor gets min(L, history) events, like a window of its own.
      const dev = await eventDeviations(model, run.data, events, { mode: 'fresh', minContext: 16, batchRows: 4 });
      expect(dev.missing[0]).toBe(1); // a first event has no history: population prior
      for (let i = 1; i < events.length; i++) {
        const k = events[i];
        const batch = makeBatch(run.data, [{ user: u, start: Math.max(first, k - 16), end: k, target: -1 }], 16, 'right');
        const t = noGrad(gpu(), () => tidy(gpu(), () => model.lastPositionScores(model.forward(batch), batch).keep()));
        const s = await t.readF32();
        t.dispose();
        const max = Math.max(...s);
        const lse = max + Math.log(s.reduce((a, v) => a + Math.exp(v - max), 0));
        const token = run.data.tokens[k];
        expect(dev.missing[i]).toBe(0);
        expect(dev.nll[i]).toBeCloseTo(lse - s[token], 3);
        expect(dev.rank[i]).toBe(s.filter((v) => v >= s[token]).length);
        const p = s.map((v) => Math.exp(v - lse));
        const mean = 1 / p.length;
        const std = Math.sqrt(p.reduce((a, v) => a + (v - mean) ** 2, 0) / p.length);
        expect(dev.delta[i]).toBeCloseTo((p[token] - mean) / std, 2);
      }
      // A shorter guaranteed context reads fewer windows but still scores every event.
      const cheap = await eventDeviations(model, run.data, events, { mode: 'fresh', minContext: 4 });
      expect([...cheap.missing]).toEqual([...dev.missing]);
      expect(cheap.nll.every((v) => Number.isFinite(v) && v > 0)).toBe(true);
      const all = Array.from({ length: run.data.offsets[u + 1] - first - 1 }, (_, i) => first + i);
      const own = coverAnchors(run.data, all, 16, 16);
      const shared = coverAnchors(run.data, all, 16, 8);
      expect(own.windows).toHaveLength(all.length);
      expect(shared.windows.length).toBeLessThanOrEqual(Math.ceil(all.length / 9) + 1);
      for (const a of all) {
        const { window, position } = shared.rowOf.get(a)!;
        const w = shared.windows[window];
        expect(w.end - w.start - (16 - position)).toBe(a - w.start); // right-aligned: the anchor's own slot
        expect(a - w.start + 1).toBeGreaterThanOrEqual(Math.min(8, a - first + 1));
      }
    } finally {
      model.dispose();
    }
  });

  it('daily priors anchor every event of a day at the last event before midnight', () => {
    const u = 1;
    const first = run.data.offsets[u];
    const end = run.data.offsets[u + 1];
    const events = Int32Array.from({ length: end - first }, (_, i) => first + i);
    const anchors = anchorsOf(run.data, events, 'daily');
    events.forEach((k, i) => {
      const a = anchors[i];
      const midnight = Math.floor(run.data.time[k] / DAY) * DAY;
      if (a < 0) {
        expect(run.data.time[first]).toBeGreaterThanOrEqual(midnight);
      } else {
        expect(run.data.time[a]).toBeLessThan(midnight);
        if (a + 1 < end) expect(run.data.time[a + 1]).toBeGreaterThanOrEqual(midnight);
      }
    });
  });

  it('a lagged daily prior anchors at the last event before the midnight that many days earlier', () => {
    const u = 2;
    const first = run.data.offsets[u];
    const end = run.data.offsets[u + 1];
    const events = Int32Array.from({ length: end - first }, (_, i) => first + i);
    const lag = 3;
    const anchors = anchorsOf(run.data, events, 'daily', lag);
    let anchored = 0;
    events.forEach((k, i) => {
      const a = anchors[i];
      const cut = (Math.floor(run.data.time[k] / DAY) - lag) * DAY;
      if (a < 0) {
        expect(run.data.time[first]).toBeGreaterThanOrEqual(cut);
      } else {
        anchored++;
        expect(run.data.time[a]).toBeLessThan(cut);
        if (a + 1 < end) expect(run.data.time[a + 1]).toBeGreaterThanOrEqual(cut);
      }
    });
    expect(anchored).toBeGreaterThan(0);
    // Older than the plain daily prior wherever they differ, never newer.
    const daily = anchorsOf(run.data, events, 'daily');
    anchors.forEach((a, i) => expect(a).toBeLessThanOrEqual(daily[i]));
    expect(anchors.some((a, i) => a < daily[i])).toBe(true);
    expect(() => anchorsOf(run.data, events, 'fresh', 2)).toThrow(/daily/);
    expect(() => anchorsOf(run.data, events, 'daily', -1)).toThrow(/whole number/);
  });

  it('compares (a) the baseline with (b) the baseline plus prior features on the time protocol', async () => {
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    try {
      const r = await compareFraudModels(table, {
        window: timeWindowOf(FRAUD_RUN.split as never), dataName: 'synthetic', gbdt: { rounds: 30, maxDepth: 3 }, extraSeeds: [2],
        prior: { model, data: run.data, mode: 'daily', lagDays: 1, components: 4, checkpoint: run.checkpoint },
      });
      expect(r.sets.trainFrauds).toBeGreaterThan(0);
      expect(r.sets.testFrauds).toBeGreaterThan(0);
      for (const m of [r.baseline, r.withPrior!]) {
        expect(m.transactions).toBe(r.sets.test);
        expect(m.aucRoc).toBeGreaterThan(0.5);
        expect(m.averagePrecision).toBeGreaterThan(0);
        expect(m.cardPrecision100).toBeGreaterThan(0);
      }
      expect(r.models.withPrior!.model.features).toEqual(expect.arrayContaining([...PRIOR_FEATURES, 'embedding_3']));
      expect(r.models.baseline.model.features).not.toContain('prior_nll');
      const dir = tempDir('panther-fraud');
      new FraudModel(r.models.withPrior!).save(join(dir, 'model.json'));
      const loaded = FraudModel.load(join(dir, 'model.json'));
      expect(loaded.projection!.components).toHaveLength(4);
      expect(loaded.file.trainedOn).toMatchObject({ prior: 'daily', priorLagDays: 1 });
      const lines = comparisonLines(r).join('\n');
      expect(lines).toMatch(/\(a\) baseline\s+0\.\d{3}/);
      expect(lines).toMatch(/\(b\) \+ behaviour prior\s+0\.\d{3}/);
      expect(lines).toMatch(/1 account takeover/);
      // A second tree seed: the first is the main table's, the second a different ensemble on the same rows.
      expect(r.seeds.map((x) => x.seed)).toEqual([1, 2]);
      expect(r.seeds[0]).toEqual({ seed: 1, baseline: r.baseline, withPrior: r.withPrior });
      expect(r.seeds[1].withPrior!.transactions).toBe(r.sets.test);
      expect(r.seeds[1].baseline.aucRoc).toBeGreaterThan(0.5);
      expect(lines).toMatch(/mean \(min\.\.max\) of 2\s+0\.\d{3} \(0\.\d{3}\.\.0\.\d{3}\)/);
      expect(lines).toMatch(/\(b\) ahead of \(a\) with the same seed: AP [0-2] of 2, CP@100 [0-2] of 2/);
    } finally {
      model.dispose();
    }
  });

  it('ranks merchants per day by their customers\' deviations, next to the label-rate baseline', async () => {
    const model = modelFromCheckpoint(gpu(), run.checkpoint, run.data);
    try {
      const w = timeWindowOf(FRAUD_RUN.split as never);
      const r = await merchantRisk(table, run.data, model, { from: w.testStart, to: w.testEnd, quantile: 0.5, minEvents: 1, lookbackDays: 7, tops: [10, 50] });
      expect(r.days).toHaveLength(10);
      const compromised = (run.data.meta.extra!.compromisedMerchants as { from: number; to: number }[]);
      const expected = r.days.map((d) => compromised.filter((m) => m.from <= Date.parse(d.day) / 1000 && Date.parse(d.day) / 1000 < m.to).length);
      expect(r.days.map((d) => d.compromised)).toEqual(expected);
      for (const d of r.days) for (const p of [...d.precision.at, ...d.precision.visitors, ...d.precision.labelRate]) expect(p).toBeGreaterThanOrEqual(0);
      expect(r.mean.at).toHaveLength(2);
      expect(merchantLines(r).join('\n')).toMatch(/mean\s+[\d.]+/);
    } finally {
      model.dispose();
    }
  });
});
