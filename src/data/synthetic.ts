import type { z } from 'zod';
import { SyntheticSchema, type SyntheticConfig } from './config.js';
import { countDataset, type BehaviorEvent, type Dataset, type ItemInfo, type UserHistory } from './events.js';
import { sha256Of } from './files.js';
import { Random } from './random.js';
import {
  buildMerchants,
  drawDemographics,
  INCOME_SCALE,
  MerchantIndex,
  type Category,
  type Channel,
  type Demographics,
  type Merchant,
} from './synthetic-world.js';

/**
 * Deterministic synthetic payment histories: periodic habits (payday salary and bills,
 * weekday commute at morning and evening hours, weekend leisure, groceries), tight chains
 * whose next step is predictable from the previous one ("top up -> transfer -> withdraw",
 * "ticket -> hotel -> car rental"), and labelled fraud:
 *   1 account takeover: a sudden change of behaviour (new merchants, another channel,
 *     much bigger amounts, odd hours);
 *   2 card testing: a burst of tiny amounts at one merchant within minutes;
 *   3 compromised merchant: every customer who pays there during the compromise window
 *     starts deviating a few days later.
 * Each user draws from its own seeded stream, so the same options give identical output.
 */
export const SCENARIO = { legit: 0, accountTakeover: 1, cardTesting: 2, compromisedMerchant: 3 } as const;

/** Bump when the generator's output changes for the same options (it is part of the cache key). */
export const GENERATOR_VERSION = 1;

const DAY = 86_400;
const HOUR = 3600;

interface Habits {
  activity: number;
  income: number;
  payday: number;
  employer: Merchant;
  bills: { merchant: Merchant; dayAfterPayday: number; amount: number }[];
  commuteRate: number;
  commuteChannel: Channel;
  transport: Merchant;
  morning: number;
  evening: number;
  lunchRate: number;
  groceries: Merchant[];
  groceryRate: number;
  leisureRate: number;
  cinema: Merchant;
  restaurants: Merchant[];
  bars: Merchant[];
  onlineRate: number;
  moneyChainRate: number;
  atmRate: number;
  travelRate: number;
}

interface Ctx {
  start: number;
  days: number;
  merchants: MerchantIndex;
}

function drawHabits(r: Random, d: Demographics, m: MerchantIndex): Habits {
  const income = INCOME_SCALE[d.segment] * r.logNormal(1, 0.15);
  const working = d.segment === 'student' || d.segment === 'employee' || d.segment === 'professional';
  const young = d.ageBand === '18-24' || d.ageBand === '25-34';
  const bills: Habits['bills'] = [];
  const bill = (category: Category, p: number, scale: number): void => {
    if (!r.chance(p)) return;
    const merchant = r.pick(m.of(category, d.region));
    bills.push({ merchant, dayAfterPayday: r.between(1, 6), amount: round2(r.logNormal(merchant.median * scale, merchant.sigma)) });
  };
  bill('rent', d.segment === 'retired' ? 0.3 : d.segment === 'student' ? 0.4 : 0.6, Math.sqrt(income));
  bill('utilities', 0.8, 1);
  bill('telecom', 0.95, 1);
  for (let k = r.int(3); k > 0; k--) bill('subscription', 1, 1);
  return {
    activity: r.uniform(0.6, 1.25),
    income,
    payday: d.segment === 'retired' ? 1 : r.pick([1, 15, 25, 28]),
    employer: r.pick(m.of('employer', d.region)),
    bills,
    commuteRate: working ? r.uniform(0.25, 0.55) : d.segment === 'self-employed' ? 0.1 : 0,
    commuteChannel: r.chance(0.35) ? 'mobile' : 'card',
    transport: r.pick(m.of('transport', d.region)),
    morning: r.uniform(6.5, 8.75),
    evening: r.uniform(16.5, 19),
    lunchRate: r.uniform(0.1, 0.4),
    groceries: r.shuffle([...m.of('grocery', d.region)]).slice(0, 2),
    groceryRate: r.uniform(0.8, 2),
    leisureRate: young ? r.uniform(0.35, 0.8) : r.uniform(0.15, 0.5),
    cinema: r.pick(m.of('cinema', d.region)),
    restaurants: r.shuffle([...m.of('restaurant', d.region)]).slice(0, 3),
    bars: r.shuffle([...m.of('bar', d.region)]).slice(0, 2),
    onlineRate: young ? r.uniform(0.5, 1.6) : r.uniform(0.2, 0.9),
    moneyChainRate: r.chance(0.55) ? r.uniform(0.4, 2) : 0,
    atmRate: r.chance(0.6) ? r.uniform(0.15, 0.7) : 0,
    travelRate: d.segment === 'professional' ? 0.06 : 0.015,
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

class History {
  readonly events: BehaviorEvent[] = [];
  constructor(readonly user: string, private readonly ctx: Ctx) {}

  /** Adds an event unless it falls outside the simulated period. */
  add(merchant: Merchant, time: number, amount: number, fraud = 0, channel: Channel = merchant.channel): boolean {
    const t = Math.floor(time);
    if (t < this.ctx.start || t >= this.ctx.start + this.ctx.days * DAY) return false;
    this.events.push({
      user: this.user,
      time: t,
      type: merchant.type,
      amount: Math.max(0.01, round2(amount)),
      item: merchant.id,
      category: merchant.category,
      channel,
      label: fraud > 0 ? 1 : 0,
      scenario: fraud,
    });
    return true;
  }
}

function habitualEvents(r: Random, h: Habits, out: History, ctx: Ctx): void {
  const { start, days, merchants: m } = ctx;
  const spend = Math.sqrt(h.income);
  for (let day = 0; day < days; day++) {
    const t0 = start + day * DAY;
    const date = new Date(t0 * 1000);
    const weekday = date.getUTCDay(); // 0 Sunday
    const weekend = weekday === 0 || weekday === 6;
    const at = (hour: number): number => t0 + hour * HOUR + r.int(600);

    if (date.getUTCDate() === h.payday) {
      // Paid early in the morning; bills follow a few days later, same amounts each month.
      out.add(h.employer, at(r.uniform(5, 7.5)), h.employer.median * h.income * r.logNormal(1, 0.02));
      for (const b of h.bills) out.add(b.merchant, t0 + b.dayAfterPayday * DAY + r.uniform(8, 11) * HOUR, b.amount);
    }
    if (!weekend && r.chance(h.commuteRate)) {
      const fare = h.transport.median;
      out.add(h.transport, at(h.morning + r.uniform(-0.25, 0.25)), fare, 0, h.commuteChannel);
      if (r.chance(h.lunchRate)) out.add(r.pick(h.restaurants), at(r.uniform(12, 13.5)), r.logNormal(14 * spend, 0.3));
      out.add(h.transport, at(h.evening + r.uniform(-0.25, 0.5)), fare, 0, h.commuteChannel);
    }
    if (r.chance((h.groceryRate * h.activity) / 7)) {
      const hour = weekend ? r.uniform(9, 13) : r.uniform(17.5, 20);
      out.add(r.pick(h.groceries), at(hour), r.logNormal(38 * spend, 0.5));
    }
    if (weekend && r.chance(h.leisureRate * h.activity)) {
      // Cinema in the afternoon, then dinner or drinks: a short chain.
      const t = at(r.uniform(14.5, 19));
      out.add(h.cinema, t, h.cinema.median * r.logNormal(1, 0.1) * (r.chance(0.4) ? 2 : 1));
      if (r.chance(0.6)) out.add(r.pick(h.restaurants), t + r.uniform(2, 3) * HOUR, r.logNormal(30 * spend, 0.4));
      else out.add(r.pick(h.bars), t + r.uniform(2.5, 4) * HOUR, r.logNormal(20 * spend, 0.4));
    }
    if (r.chance((h.onlineRate * h.activity) / 7)) {
      const kind = r.weighted([0.7, 0.22, 0.08]);
      const shop = r.pick(m.of((['online-retail', 'digital-goods', 'electronics'] as const)[kind]));
      out.add(shop, at(r.uniform(9, 23.5)), r.logNormal(shop.median * spend, shop.sigma));
    }
    if (r.chance(h.atmRate / 7)) out.add(r.pick(m.of('atm', regionOf(h.transport))), at(r.uniform(8, 21)), 20 * Math.max(1, Math.round(r.logNormal(4, 0.5))));
    if (r.chance((h.moneyChainRate * 12) / 365)) moneyChain(r, h, out, at(r.uniform(10, 21)), ctx);
    if (r.chance(h.travelRate / 7)) travelChain(r, out, at(r.uniform(19, 22.5)), ctx);
  }
}

function regionOf(m: Merchant): Demographics['region'] | undefined {
  return m.region === 'national' ? undefined : m.region;
}

/** Top up a wallet, send most of it to someone within minutes, withdraw cash within the hour or two. */
function moneyChain(r: Random, h: Habits, out: History, t: number, ctx: Ctx): void {
  const m = ctx.merchants;
  const amount = 10 * Math.max(2, Math.round(r.logNormal(12 * Math.sqrt(h.income), 0.5)));
  out.add(r.pick(m.of('wallet')), t, amount);
  const t2 = t + r.between(60, 600);
  out.add(r.pick(m.of('p2p')), t2, amount * r.uniform(0.5, 1));
  out.add(r.pick(m.of('atm', regionOf(h.transport))), t2 + r.between(900, 2 * HOUR), 20 * Math.max(1, Math.round((amount * r.uniform(0.2, 0.5)) / 20)));
}

/** Flight, then a hotel minutes later, then (usually) a car. */
function travelChain(r: Random, out: History, t: number, ctx: Ctx): void {
  const m = ctx.merchants;
  const airline = r.pick(m.of('airline'));
  out.add(airline, t, r.logNormal(airline.median, airline.sigma));
  const t2 = t + r.between(300, 2400);
  const hotel = r.pick(m.of('hotel'));
  out.add(hotel, t2, r.logNormal(hotel.median, hotel.sigma));
  if (r.chance(0.8)) {
    const car = r.pick(m.of('car-rental'));
    out.add(car, t2 + r.between(600, 3600), r.logNormal(car.median, car.sigma));
  }
}

/** A fraudster's spree: merchants the user never used, another channel, big amounts, odd hours. */
function fraudSpree(r: Random, out: History, from: number, count: number, scenario: number, avoid: Channel, ctx: Ctx): number {
  const m = ctx.merchants;
  const pool = [...m.of('electronics'), ...m.of('gift-cards'), ...m.of('crypto')];
  const channels = (['online', 'mobile'] as Channel[]).filter((c) => c !== avoid);
  let t = from;
  let added = 0;
  for (let k = 0; k < count; k++) {
    const merchant = r.pick(pool);
    const channel = merchant.category === 'crypto' ? 'mobile' : r.pick(channels);
    if (out.add(merchant, t, r.logNormal(merchant.median * 2.5, 0.4), scenario, channel)) added++;
    t += r.between(5 * 60, 3 * HOUR);
  }
  return added;
}

/** A night-time start (0-5 h) on a day drawn from [lo, hi) of the period. */
function oddHour(r: Random, ctx: Ctx, lo: number, hi: number): number {
  const day = Math.floor(ctx.days * r.uniform(lo, hi));
  return ctx.start + day * DAY + r.uniform(0, 5) * HOUR;
}

function chooseExactly(r: Random, n: number, count: number): Set<number> {
  const all = Array.from({ length: n }, (_, i) => i);
  return new Set(r.shuffle(all).slice(0, count));
}

export function generateSynthetic(input: z.input<typeof SyntheticSchema> = {}): Dataset {
  const options: SyntheticConfig = SyntheticSchema.parse(input);
  const { users: n, days, seed, fraud } = options;
  const all = buildMerchants();
  const ctx: Ctx = { start: Date.parse(`${options.start}T00:00:00Z`) / 1000, days, merchants: new MerchantIndex(all) };

  const takeovers = chooseExactly(new Random(seed, 'takeover-users'), n, Math.round(fraud.accountTakeover * n));
  const testers = chooseExactly(new Random(seed, 'card-testing-users'), n, Math.round(fraud.cardTesting * n));
  const histories: History[] = [];
  const demographics: Demographics[] = [];
  const habits: Habits[] = [];

  for (let i = 0; i < n; i++) {
    const r = new Random(seed, 'user', i);
    const d = drawDemographics(r);
    const h = drawHabits(r, d, ctx.merchants);
    const out = new History(`u${String(i).padStart(String(n - 1).length, '0')}`, ctx);
    habitualEvents(r, h, out, ctx);
    demographics.push(d);
    habits.push(h);
    histories.push(out);

    if (takeovers.has(i)) {
      const rf = new Random(seed, 'takeover', i);
      fraudSpree(rf, out, oddHour(rf, ctx, 0.5, 0.9), rf.between(3, 8), SCENARIO.accountTakeover, h.commuteChannel, ctx);
    }
    if (testers.has(i)) {
      const rf = new Random(seed, 'card-testing', i);
      const shop = rf.pick(ctx.merchants.of('digital-goods'));
      let t = ctx.start + Math.floor(days * rf.uniform(0.3, 0.95)) * DAY + rf.uniform(0, 24) * HOUR;
      for (let k = rf.between(5, 15); k > 0; k--) {
        out.add(shop, t, rf.uniform(0.5, 2), SCENARIO.cardTesting, 'online');
        t += rf.between(5, 90);
      }
      if (rf.chance(0.5)) fraudSpree(rf, out, t + rf.between(600, HOUR), 1, SCENARIO.cardTesting, 'card', ctx);
    }
  }

  const compromised = compromiseMerchants(options, ctx, histories, habits);

  const users: UserHistory[] = histories.map((out, i) => {
    const events = out.events.sort((a, b) => a.time - b.time);
    const { ageBand, region, segment } = demographics[i];
    return { user: out.user, events, profile: { ageBand, region, segment } };
  });
  const items = new Map<string, ItemInfo>(all.map((m) => [m.id, { name: m.name, category: m.category }]));
  const fraudUsers = (s: number) => users.filter((u) => u.events.some((e) => e.scenario === s)).length;
  return {
    meta: {
      name: 'synthetic',
      sources: [],
      sha256: sha256Of([`synthetic v${GENERATOR_VERSION}`, JSON.stringify(options)]),
      counts: countDataset(users),
      clock: 'unix',
      defaultTarget: 'composite',
      itemNoun: 'merchant',
      profileFields: ['ageBand', 'region', 'segment'],
      skipped: {},
      skippedExamples: [],
      extra: {
        options,
        generatorVersion: GENERATOR_VERSION,
        compromisedMerchants: compromised,
        usersPerScenario: { accountTakeover: fraudUsers(1), cardTesting: fraudUsers(2), compromisedMerchant: fraudUsers(3) },
      },
    },
    users,
    items,
  };
}

export interface CompromisedMerchant {
  merchant: string;
  from: number;
  to: number;
  customers: number;
}

/**
 * Picks the compromised merchants among card-present ones with enough customers, then makes
 * every customer who pays there in the window deviate within a week.
 */
function compromiseMerchants(options: SyntheticConfig, ctx: Ctx, histories: History[], habits: Habits[]): CompromisedMerchant[] {
  const count = options.fraud.compromisedMerchants;
  if (count === 0) return [];
  const customers = new Map<string, Set<number>>();
  histories.forEach((out, i) => {
    for (const e of out.events) {
      if (e.channel !== 'card' || e.label !== 0 || !(e.category === 'grocery' || e.category === 'restaurant' || e.category === 'bar')) continue;
      let set = customers.get(e.item!);
      if (!set) customers.set(e.item!, (set = new Set()));
      set.add(i);
    }
  });
  const candidates = [...customers].filter(([, s]) => s.size >= 5).map(([id]) => id).sort();
  const r = new Random(options.seed, 'compromised-merchants');
  const chosen = r.shuffle(candidates).slice(0, count).sort();
  const result: CompromisedMerchant[] = [];
  for (const merchant of chosen) {
    const from = ctx.start + Math.floor(ctx.days * r.uniform(0.35, 0.65)) * DAY;
    const to = Math.min(from + 14 * DAY, ctx.start + ctx.days * DAY);
    let victims = 0;
    histories.forEach((out, i) => {
      const visit = out.events.find((e) => e.item === merchant && e.label === 0 && e.time >= from && e.time < to);
      if (!visit) return;
      const rf = new Random(options.seed, 'compromised', merchant, i);
      // Within a week, and always before the period ends so that every victim deviates.
      const start = visit.time + Math.min(rf.uniform(0.5, 6) * DAY, (ctx.start + ctx.days * DAY - visit.time) / 2);
      if (fraudSpree(rf, out, start, rf.between(1, 4), SCENARIO.compromisedMerchant, habits[i].commuteChannel, ctx) > 0) victims++;
    });
    result.push({ merchant, from, to, customers: victims });
  }
  return result;
}
