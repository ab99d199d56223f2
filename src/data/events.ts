/**
 * The canonical records every reader produces: a behaviour event, a user's static profile,
 * and a `Dataset` (users with time-ordered events, their profiles, and where it all came
 * from). Everything downstream (splits, tokenizer, cache, batching) reads only these.
 */

/** One action of one user. Optional fields are absent when the source does not have them. */
export interface BehaviorEvent {
  user: string;
  /** Seconds since the Unix epoch, or the position in the history when the source has no clock (`meta.clock`). */
  time: number;
  /** What happened: 'payment', 'rating', 'transfer', ... */
  type: string;
  /** Non-negative amount, in the source's currency. */
  amount?: number;
  /** Item or merchant (terminal) id. */
  item?: string;
  category?: string;
  channel?: string;
  /** 1 = fraudulent (or positive), 0 = legitimate. */
  label?: 0 | 1;
  /** Id of the labelled scenario (0 = none) when the source says which kind of fraud it is. */
  scenario?: number;
  /** The source's own record id (a transaction id), kept to join scores back. */
  id?: string;
  /** Free extra categorical attributes. */
  attrs?: Record<string, string>;
}

/** Static attributes of a user (age band, gender, region, ...), all categorical. */
export type UserProfile = Record<string, string>;

export interface UserHistory {
  user: string;
  /** Ordered by time, ties in the source's order (or by its tie-break key). */
  events: BehaviorEvent[];
  profile?: UserProfile;
}

export interface ItemInfo {
  /** Human-readable name (a movie title) used for token names. */
  name?: string;
  category?: string;
}

export interface SourceFile {
  path: string;
  bytes: number;
  sha256: string;
}

/** `time` is seconds since the epoch ('unix') or a position with no calendar meaning ('ordinal'). */
export type Clock = 'unix' | 'ordinal';

/** Which token the data's natural pretraining target is (see `TokenizerSchema.target`). */
export type TargetKind = 'composite' | 'item' | 'item-amount';

export interface DatasetCounts {
  users: number;
  events: number;
  items: number;
  /** Users that have a profile. */
  profiles: number;
  /** Events that carry a label, and how many of them are 1. */
  labelled: number;
  positives: number;
}

export interface DatasetMeta {
  name: string;
  sources: SourceFile[];
  /** sha256 over the sources' hashes (or over the generator options for synthetic data). */
  sha256: string;
  counts: DatasetCounts;
  clock: Clock;
  defaultTarget: TargetKind;
  profileFields: string[];
  /** What an item is in this data ('movie', 'terminal', 'merchant'), for token names. */
  itemNoun: string;
  /** Rows skipped with `onBadRow: 'skip'`, per reason; empty when none were. */
  skipped: Record<string, number>;
  /** The first few skipped rows as `file:line: field: reason`, so people can look. */
  skippedExamples: string[];
  /** Anything else a reader wants to record (generator options, ground truth, notes). */
  extra?: Record<string, unknown>;
}

export interface Dataset {
  meta: DatasetMeta;
  /** Ordered by user id (numbers numerically, then text). */
  users: UserHistory[];
  items: Map<string, ItemInfo>;
}

/** Orders ids so that '2' < '10' for numeric ids and text ids sort by code unit, never by locale. */
export function compareIds(a: string, b: string): number {
  const na = /^\d+$/.test(a);
  const nb = /^\d+$/.test(b);
  if (na && nb) return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface GroupOptions {
  /** Tie-break for events at the same time (after time); default: keep the input order. */
  tieBreak?: (a: BehaviorEvent, b: BehaviorEvent) => number;
  profiles?: Map<string, UserProfile>;
}

/** Groups events by user, sorts each history by time (stable) and attaches profiles. */
export function groupByUser(events: Iterable<BehaviorEvent>, options: GroupOptions = {}): UserHistory[] {
  const byUser = new Map<string, BehaviorEvent[]>();
  for (const e of events) {
    let list = byUser.get(e.user);
    if (!list) byUser.set(e.user, (list = []));
    list.push(e);
  }
  return historiesFrom(byUser, options);
}

/** Same as `groupByUser` for events that are already grouped. */
export function historiesFrom(byUser: Map<string, BehaviorEvent[]>, options: GroupOptions = {}): UserHistory[] {
  const tie = options.tieBreak;
  const users = [...byUser.keys()].sort(compareIds);
  return users.map((user) => {
    const events = byUser.get(user)!;
    if (!isSorted(events, tie)) events.sort((a, b) => a.time - b.time || (tie ? tie(a, b) : 0));
    const profile = options.profiles?.get(user);
    return profile ? { user, events, profile } : { user, events };
  });
}

function isSorted(events: BehaviorEvent[], tie: GroupOptions['tieBreak']): boolean {
  for (let i = 1; i < events.length; i++) {
    const d = events[i].time - events[i - 1].time;
    if (d < 0 || (d === 0 && tie && tie(events[i - 1], events[i]) > 0)) return false;
  }
  return true;
}

/** Counts for the metadata, computed from the histories themselves. */
export function countDataset(users: UserHistory[]): DatasetCounts {
  const items = new Set<string>();
  let events = 0;
  let labelled = 0;
  let positives = 0;
  let profiles = 0;
  for (const u of users) {
    if (u.profile) profiles++;
    events += u.events.length;
    for (const e of u.events) {
      if (e.item !== undefined) items.add(e.item);
      if (e.label !== undefined) {
        labelled++;
        positives += e.label;
      }
    }
  }
  return { users: users.length, events, items: items.size, profiles, labelled, positives };
}
