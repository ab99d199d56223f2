import { beforeAll, describe, expect, it } from 'vitest';
import { batchLength, epochBatches, epochOrder, evaluationWindows, makeBatch, shardBatch, shuffleWindows, trainingWindows, windowTargets, type Window } from '../../src/data/batching.js';
import { prepareDataset, type PreparedData } from '../../src/data/prepare.js';
import { ROLE } from '../../src/data/split.js';
import { generateSynthetic } from '../../src/data/synthetic.js';

describe('batching', () => {
  let data: PreparedData;
  beforeAll(() => {
    data = prepareDataset(generateSynthetic({ users: 120, days: 30, seed: 3 }), { split: { kind: 'leave-one-out' } });
  });

  it('training windows cover every next-event target of the fitted prefix exactly once', () => {
    const L = 16;
    const windows = trainingWindows(data, L);
    const covered = new Uint8Array(data.tokens.length);
    for (const w of windows) {
      expect(w.end - w.start).toBeGreaterThan(0);
      expect(w.end - w.start).toBeLessThanOrEqual(L);
      for (let k = w.start + 1; k <= w.end; k++) covered[k]++;
    }
    for (let u = 0; u < data.users.length; u++) {
      const first = data.offsets[u];
      for (let k = first; k < data.offsets[u + 1]; k++) {
        const expected = k > first && k < first + data.fitLength[u] ? 1 : 0;
        if (covered[k] !== expected) throw new Error(`event ${k} of user ${u} covered ${covered[k]} times`);
      }
    }
  });

  it('overlapping windows carry earlier events as context only: every target still once, each with history', () => {
    const L = 16;
    const C = 5;
    const windows = trainingWindows(data, L, C);
    expect(windows.length).toBeGreaterThan(trainingWindows(data, L).length);
    const predicted = new Uint8Array(data.tokens.length);
    let withContext = 0;
    for (const w of windows) {
      const t = windowTargets(w);
      expect(w.end - w.start).toBeLessThanOrEqual(L);
      expect(t.count).toBeGreaterThan(0);
      expect(t.count).toBeLessThanOrEqual(L - C);
      for (let k = t.from; k < t.from + t.count; k++) predicted[k]++;
      const first = data.offsets[w.user];
      // Context is whatever history there is, up to C events.
      expect(w.context).toBe(Math.min(C, t.from - 1 - first));
      if (w.context! > 0) withContext++;
    }
    expect(withContext).toBeGreaterThan(0);
    for (let u = 0; u < data.users.length; u++) {
      const first = data.offsets[u];
      for (let k = first; k < data.offsets[u + 1]; k++) {
        const expected = k > first && k < first + data.fitLength[u] ? 1 : 0;
        if (predicted[k] !== expected) throw new Error(`event ${k} of user ${u} predicted ${predicted[k]} times`);
      }
    }
    // In a batch the context positions are inputs without targets.
    const w = windows.find((x) => x.context === C && x.end - x.start === L)!;
    const b = makeBatch(data, [w], L);
    expect([...b.mask]).toEqual(new Array(L).fill(1));
    expect([...b.targets.slice(0, C)]).toEqual(new Array(C).fill(0));
    expect([...b.targets.slice(C)]).toEqual([...data.tokens.slice(w.start + C + 1, w.end + 1)]);
    expect(b.targetCount).toBe(L - C);
    const shards = shardBatch(makeBatch(data, windows.slice(0, 9), L), 2);
    expect(shards.reduce((n, s) => n + s.targetCount, 0)).toBe(windows.slice(0, 9).reduce((n, x) => n + windowTargets(x).count, 0));
    expect(() => trainingWindows(data, L, L)).toThrowError(/train\.windowContext \(16\) must be an integer in \[0, data\.maxLength = 16\)/);
  });

  it('pads right-aligned windows on the left with a key mask, and targets the next token', () => {
    const w: Window = { user: 0, start: data.offsets[0], end: data.offsets[0] + 3, target: -1 };
    const b = makeBatch(data, [w], 5, 'right');
    expect([...b.mask]).toEqual([0, 0, 1, 1, 1]);
    expect([...b.targets]).toEqual([0, 0, ...data.tokens.slice(w.start + 1, w.end + 1)]);
    const type = data.tokenizer.attributeIndex('type');
    expect([...b.attributes[type]]).toEqual([0, 0, ...data.attributes[type].slice(w.start, w.end)]);
    expect(b.amountLog[2]).toBe(data.amountLog[w.start]);
    const left = makeBatch(data, [w], 5, 'left');
    expect([...left.mask]).toEqual([1, 1, 1, 0, 0]);
    expect([...left.targets.slice(0, 3)]).toEqual([...data.tokens.slice(w.start + 1, w.end + 1)]);
    expect([...b.profile]).toEqual([...data.profile.ids.slice(0, data.profile.fields.length)]);
    expect([b.tokens, b.targetCount]).toEqual([3, 3]);
  });

  it('evaluation windows end just before the scored event, which is the only target', () => {
    const { windows, withoutHistory } = evaluationWindows(data, 'test', 8);
    expect(withoutHistory).toBe(0);
    expect(windows).toHaveLength(data.split.counts.test);
    for (const w of windows) {
      expect(data.role[w.target]).toBe(ROLE.test);
      expect(w.end).toBe(w.target);
      expect(w.end - w.start).toBe(8);
    }
    const b = makeBatch(data, windows.slice(0, 2), 8);
    expect(b.targets[7]).toBe(data.tokens[windows[0].target]);
    expect([...b.targets].filter((t) => t !== 0)).toHaveLength(2);
    expect(b.targetLabels[7]).toBe(data.label[windows[0].target]);
  });

  it('shuffles deterministically from (seed, epoch)', () => {
    const windows = trainingWindows(data, 16);
    const a = shuffleWindows(windows, 1, 0);
    expect(shuffleWindows(windows, 1, 0)).toEqual(a);
    expect(shuffleWindows(windows, 1, 1)).not.toEqual(a);
    expect(shuffleWindows(windows, 2, 0)).not.toEqual(a);
    expect([...a].sort((x, y) => x.start - y.start)).toEqual([...windows].sort((x, y) => x.start - y.start));
    const batches = [...epochBatches(data, windows, { batchSize: 32, length: 16, seed: 1, epoch: 0 })];
    expect(batches.reduce((s, b) => s + b.rows, 0)).toBe(windows.length);
    expect(batches[0].windows).toEqual(a.slice(0, 32));
    const dropped = [...epochBatches(data, windows, { batchSize: 32, length: 16, seed: 1, epoch: 0, dropLast: true })];
    expect(dropped.every((b) => b.rows === 32)).toBe(true);
  });

  it('buckets an epoch by window length: a permutation, batches of similar length, a partial batch last', () => {
    const all = trainingWindows(data, 16);
    // Windows of every length 1..16, so buckets have something to sort.
    const windows = all.map((w, i) => ({ ...w, start: w.end - 1 - (i % 16) < w.start ? w.start : w.end - 1 - (i % 16) }));
    const B = 8;
    const order = epochOrder(windows, 1, 0, B, 4);
    expect(epochOrder(windows, 1, 0, B, 4)).toEqual(order);
    expect(epochOrder(windows, 1, 1, B, 4)).not.toEqual(order);
    expect(epochOrder(windows, 1, 0, B, 0)).toEqual(shuffleWindows(windows, 1, 0));
    const key = (w: Window) => `${w.user}:${w.start}:${w.end}`;
    expect(order.map(key).sort()).toEqual(windows.map(key).sort());
    const full = Math.floor(windows.length / B);
    const spread = (ws: Window[]) => Math.max(...ws.map((w) => w.end - w.start)) - Math.min(...ws.map((w) => w.end - w.start));
    let bucketed = 0;
    let shuffled = 0;
    const plain = shuffleWindows(windows, 1, 0);
    for (let k = 0; k < full; k++) {
      bucketed += spread(order.slice(k * B, (k + 1) * B));
      shuffled += spread(plain.slice(k * B, (k + 1) * B));
    }
    expect(bucketed).toBeLessThan(shuffled / 2);
    // The tail that does not fill a batch is the end of the sorted last group.
    const sorted = shuffleWindows(windows, 1, 0).slice(Math.floor(windows.length / (4 * B)) * 4 * B).sort((a, b) => b.end - b.start - (a.end - a.start));
    expect(order.slice(full * B).map(key)).toEqual(sorted.slice(sorted.length - (windows.length - full * B)).map(key));
  });

  it('cuts a batch to its longest window, rounded up to 8 and at most the maximum', () => {
    const w = (n: number): Window => ({ user: 0, start: 10 - n, end: 10, target: -1 });
    expect(batchLength([w(3), w(1)], 50)).toBe(8);
    expect(batchLength([w(9)], 50)).toBe(16);
    expect(batchLength([w(16), w(2)], 50)).toBe(16);
    expect(batchLength([w(49)], 50)).toBe(50);
    expect(batchLength([], 50)).toBe(8);
  });

  it('shards a global batch by token count, deterministically, losing nothing', () => {
    const windows = shuffleWindows(trainingWindows(data, 16), 5, 0).slice(0, 37);
    const batch = makeBatch(data, windows, 16);
    const shards = shardBatch(batch, 4);
    expect(shardBatch(batch, 4)).toEqual(shards);
    expect(shards.map((s) => s.rows).reduce((a, b) => a + b)).toBe(37);
    expect([...shards.flatMap((s) => [...s.rowIndex])].sort((a, b) => a - b)).toEqual(Array.from({ length: 37 }, (_, i) => i));
    const loads = shards.map((s) => s.tokens);
    expect(loads.reduce((a, b) => a + b)).toBe(batch.tokens);
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(16);
    expect(shards.every((s) => s.globalTargetCount === batch.targetCount)).toBe(true);
    expect(shards.reduce((a, s) => a + s.targetCount, 0)).toBe(batch.targetCount);
    // A shard's rows are the global batch's rows.
    const s = shards[1];
    const r = s.rowIndex[0];
    expect([...s.targets.slice(0, 16)]).toEqual([...batch.targets.slice(r * 16, r * 16 + 16)]);
    expect([...s.attributes[0].slice(0, 16)]).toEqual([...batch.attributes[0].slice(r * 16, r * 16 + 16)]);
    expect(shardBatch(makeBatch(data, windows.slice(0, 2), 16), 3).map((x) => x.rows).sort()).toEqual([0, 1, 1]);
    expect(() => shardBatch(batch, 0)).toThrow(/positive integer/);
  });
});
