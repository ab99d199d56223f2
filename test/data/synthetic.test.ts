import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/data/events.js';
import { generateSynthetic, SCENARIO, type CompromisedMerchant } from '../../src/data/synthetic.js';

function digest(d: Dataset): string {
  return createHash('sha256').update(JSON.stringify(d.users)).digest('hex');
}

describe('synthetic payment histories', () => {
  let d: Dataset;
  beforeAll(() => {
    d = generateSynthetic({ users: 600, days: 90, seed: 7, fraud: { accountTakeover: 0.05, cardTesting: 0.03, compromisedMerchants: 2 } });
  });

  it('is identical for the same seed and different for another', () => {
    const again = generateSynthetic({ users: 600, days: 90, seed: 7, fraud: { accountTakeover: 0.05, cardTesting: 0.03, compromisedMerchants: 2 } });
    expect(digest(again)).toBe(digest(d));
    expect(again.meta.sha256).toBe(d.meta.sha256);
    const other = generateSynthetic({ users: 600, days: 90, seed: 8, fraud: { accountTakeover: 0.05, cardTesting: 0.03, compromisedMerchants: 2 } });
    expect(digest(other)).not.toBe(digest(d));
    expect(other.meta.sha256).not.toBe(d.meta.sha256);
  });

  it('has the default size of the README data set: 2,000 users with about 60-150 events', () => {
    const full = generateSynthetic();
    expect(full.meta.counts.users).toBe(2000);
    const mean = full.meta.counts.events / 2000;
    expect(mean).toBeGreaterThan(60);
    expect(mean).toBeLessThan(150);
    expect(full.users.every((u) => u.profile && Object.keys(u.profile).length === 3)).toBe(true);
  });

  it('puts each fraud scenario on exactly the configured share of users', () => {
    const usersWith = (s: number) => d.users.filter((u) => u.events.some((e) => e.scenario === s)).length;
    expect(usersWith(SCENARIO.accountTakeover)).toBe(30);
    expect(usersWith(SCENARIO.cardTesting)).toBe(18);
    expect(d.meta.extra!.usersPerScenario).toMatchObject({ accountTakeover: 30, cardTesting: 18 });
    const none = generateSynthetic({ users: 200, fraud: { accountTakeover: 0, cardTesting: 0, compromisedMerchants: 0 } });
    expect(none.meta.counts.positives).toBe(0);
    // Labels and scenarios agree everywhere.
    expect(d.users.every((u) => u.events.every((e) => (e.label === 1) === (e.scenario! > 0)))).toBe(true);
  });

  it('account takeovers look different: new merchants, big amounts, odd hours', () => {
    let events = 0;
    let newMerchant = 0;
    let night = 0;
    let bigger = 0;
    for (const u of d.users) {
      const ato = u.events.filter((e) => e.scenario === SCENARIO.accountTakeover);
      if (!ato.length) continue;
      const legit = u.events.filter((e) => e.label === 0 && e.time < ato[0].time);
      const known = new Set(legit.map((e) => e.item));
      const median = [...legit.map((e) => e.amount!)].sort((a, b) => a - b)[legit.length >> 1];
      for (const e of ato) {
        events++;
        if (!known.has(e.item)) newMerchant++;
        if (e.amount! > 3 * median) bigger++;
        const h = new Date(e.time * 1000).getUTCHours();
        if (h < 6 || h >= 23) night++;
      }
    }
    expect(events).toBeGreaterThan(60);
    expect(newMerchant / events).toBeGreaterThan(0.8);
    expect(bigger / events).toBeGreaterThan(0.9);
    expect(night).toBeGreaterThan(0);
  });

  it('card testing is a burst of tiny amounts at one merchant within minutes', () => {
    for (const u of d.users) {
      const burst = u.events.filter((e) => e.scenario === SCENARIO.cardTesting && e.amount! <= 2);
      if (!burst.length) continue;
      expect(burst.length).toBeGreaterThanOrEqual(5);
      expect(new Set(burst.map((e) => e.item)).size).toBe(1);
      expect(burst.at(-1)!.time - burst[0].time).toBeLessThan(20 * 60);
    }
  });

  it("a compromised merchant's customers in the window all start deviating", () => {
    const compromised = d.meta.extra!.compromisedMerchants as CompromisedMerchant[];
    expect(compromised).toHaveLength(2);
    for (const m of compromised) {
      const visitors = d.users.filter((u) => u.events.some((e) => e.item === m.merchant && e.label === 0 && e.time >= m.from && e.time < m.to));
      expect(visitors.length).toBeGreaterThanOrEqual(5);
      expect(m.customers).toBe(visitors.length);
      for (const u of visitors) {
        const visit = u.events.find((e) => e.item === m.merchant && e.label === 0 && e.time >= m.from)!;
        expect(u.events.some((e) => e.scenario === SCENARIO.compromisedMerchant && e.time > visit.time)).toBe(true);
      }
    }
  });

  it('has chains whose next step follows within minutes, and monthly paydays', () => {
    let topups = 0;
    let followed = 0;
    let salaries = 0;
    for (const u of d.users) {
      u.events.forEach((e, i) => {
        if (e.type === 'salary') salaries++;
        if (e.category !== 'wallet') return;
        topups++;
        const next = u.events[i + 1];
        if (next && next.type === 'transfer' && next.time - e.time <= 600) followed++;
      });
    }
    expect(topups).toBeGreaterThan(100);
    expect(followed / topups).toBeGreaterThan(0.9);
    expect(salaries).toBeGreaterThanOrEqual(600 * 2);
    const hotels = d.users.flatMap((u) => u.events.filter((e, i) => e.category === 'hotel' && u.events[i - 1]?.category === 'airline'));
    expect(hotels.length).toBeGreaterThan(5);
  });

  it('keeps events inside the period, in time order, with merchant names', () => {
    const start = Date.UTC(2024, 0, 1) / 1000;
    for (const u of d.users) {
      for (let i = 0; i < u.events.length; i++) {
        const e = u.events[i];
        if (e.time < start || e.time >= start + 90 * 86_400 || (i > 0 && e.time < u.events[i - 1].time)) throw new Error(`event out of place: ${JSON.stringify(e)}`);
      }
    }
    expect(d.items.get('m0000')).toEqual({ name: 'employer 1 (capital)', category: 'employer' });
    const channels = new Set(d.users.flatMap((u) => u.events.map((e) => e.channel)));
    expect([...channels].sort()).toEqual(['atm', 'card', 'mobile', 'online']);
  });
});
