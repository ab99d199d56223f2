import type { Random } from './random.js';

/**
 * The world the synthetic payment histories happen in: regions, demographics and a
 * merchant catalogue (category, channel, typical amount). Kept apart from the behaviour
 * generator so both stay readable.
 */

export const REGIONS = ['capital', 'north', 'south', 'east', 'west'] as const;
const REGION_WEIGHTS = [0.3, 0.2, 0.2, 0.15, 0.15];
export const AGE_BANDS = ['18-24', '25-34', '35-44', '45-54', '55-64', '65+'] as const;
const AGE_WEIGHTS = [0.14, 0.22, 0.2, 0.18, 0.14, 0.12];
export const SEGMENTS = ['student', 'employee', 'professional', 'self-employed', 'retired'] as const;

export type Region = (typeof REGIONS)[number];
export type Segment = (typeof SEGMENTS)[number];
export type Channel = 'card' | 'online' | 'mobile' | 'atm';

export interface Demographics {
  ageBand: (typeof AGE_BANDS)[number];
  region: Region;
  segment: Segment;
}

/** Segment given the age band: students are young, the retired old, the rest in between. */
export function drawDemographics(r: Random): Demographics {
  const age = r.weighted(AGE_WEIGHTS);
  const region = REGIONS[r.weighted(REGION_WEIGHTS)];
  //                       student employee professional self-employed retired
  const bySegment = [
    [0.55, 0.35, 0.05, 0.05, 0],
    [0.08, 0.52, 0.28, 0.12, 0],
    [0.01, 0.5, 0.3, 0.19, 0],
    [0, 0.5, 0.28, 0.2, 0.02],
    [0, 0.4, 0.2, 0.2, 0.2],
    [0, 0.05, 0.03, 0.07, 0.85],
  ][age];
  return { ageBand: AGE_BANDS[age], region, segment: SEGMENTS[r.weighted(bySegment)] };
}

/** What a user earns relative to an employee, which scales spending too. */
export const INCOME_SCALE: Record<Segment, number> = {
  student: 0.45,
  employee: 1,
  professional: 1.8,
  'self-employed': 1.3,
  retired: 0.8,
};

export type EventType = 'salary' | 'bill' | 'payment' | 'topup' | 'transfer' | 'withdrawal';

interface CategorySpec {
  type: EventType;
  channel: Channel;
  /** Merchants per region, or in total when `national`. */
  count: number;
  national?: boolean;
  /** Median amount and log-normal spread. */
  median: number;
  sigma: number;
}

export const CATEGORIES = {
  employer: { type: 'salary', channel: 'online', count: 6, median: 2100, sigma: 0.05 },
  rent: { type: 'bill', channel: 'online', count: 2, median: 750, sigma: 0.02 },
  utilities: { type: 'bill', channel: 'online', count: 3, national: true, median: 85, sigma: 0.15 },
  telecom: { type: 'bill', channel: 'online', count: 3, national: true, median: 35, sigma: 0.05 },
  subscription: { type: 'bill', channel: 'online', count: 4, national: true, median: 12, sigma: 0.05 },
  grocery: { type: 'payment', channel: 'card', count: 6, median: 38, sigma: 0.55 },
  transport: { type: 'payment', channel: 'card', count: 2, median: 2.6, sigma: 0.08 },
  restaurant: { type: 'payment', channel: 'card', count: 8, median: 28, sigma: 0.5 },
  bar: { type: 'payment', channel: 'card', count: 5, median: 19, sigma: 0.45 },
  cinema: { type: 'payment', channel: 'card', count: 2, median: 13, sigma: 0.2 },
  'online-retail': { type: 'payment', channel: 'online', count: 8, national: true, median: 42, sigma: 0.8 },
  'digital-goods': { type: 'payment', channel: 'online', count: 4, national: true, median: 6, sigma: 0.6 },
  wallet: { type: 'topup', channel: 'mobile', count: 2, national: true, median: 120, sigma: 0.6 },
  p2p: { type: 'transfer', channel: 'mobile', count: 2, national: true, median: 100, sigma: 0.6 },
  atm: { type: 'withdrawal', channel: 'atm', count: 4, median: 80, sigma: 0.5 },
  airline: { type: 'payment', channel: 'online', count: 3, national: true, median: 260, sigma: 0.45 },
  hotel: { type: 'payment', channel: 'online', count: 4, national: true, median: 310, sigma: 0.45 },
  'car-rental': { type: 'payment', channel: 'online', count: 3, national: true, median: 170, sigma: 0.35 },
  electronics: { type: 'payment', channel: 'online', count: 3, national: true, median: 450, sigma: 0.6 },
  'gift-cards': { type: 'payment', channel: 'online', count: 2, national: true, median: 150, sigma: 0.5 },
  crypto: { type: 'topup', channel: 'mobile', count: 2, national: true, median: 500, sigma: 0.6 },
} satisfies Record<string, CategorySpec>;

export type Category = keyof typeof CATEGORIES;

export interface Merchant {
  id: string;
  name: string;
  category: Category;
  region: Region | 'national';
  type: EventType;
  channel: Channel;
  median: number;
  sigma: number;
}

/** The fixed merchant catalogue: ids m0000, m0001, ... in category then region order. */
export function buildMerchants(): Merchant[] {
  const merchants: Merchant[] = [];
  for (const [category, spec] of Object.entries(CATEGORIES) as [Category, CategorySpec][]) {
    const regions: (Region | 'national')[] = spec.national ? ['national'] : [...REGIONS];
    for (const region of regions) {
      for (let k = 0; k < spec.count; k++) {
        const id = `m${String(merchants.length).padStart(4, '0')}`;
        const where = region === 'national' ? '' : ` (${region})`;
        merchants.push({ id, name: `${category} ${k + 1}${where}`, category, region, type: spec.type, channel: spec.channel, median: spec.median, sigma: spec.sigma });
      }
    }
  }
  return merchants;
}

export class MerchantIndex {
  private readonly byKey = new Map<string, Merchant[]>();
  constructor(readonly all: Merchant[]) {
    for (const m of all) {
      for (const key of [m.category, `${m.category}/${m.region}`]) {
        let list = this.byKey.get(key);
        if (!list) this.byKey.set(key, (list = []));
        list.push(m);
      }
    }
  }

  /** Merchants of a category, local to the region when the category is regional. */
  of(category: Category, region?: Region): Merchant[] {
    const local = region ? this.byKey.get(`${category}/${region}`) : undefined;
    return local ?? this.byKey.get(category) ?? [];
  }
}
