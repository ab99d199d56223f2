import path from 'node:path';
import { PantherError } from '../../errors.js';
import { countDataset, type BehaviorEvent, type Dataset, type ItemInfo, type UserHistory } from '../events.js';
import { describeSource, readText, sha256Of } from '../files.js';

export type S3RecDataset = 'Beauty' | 'Sports_and_Outdoors' | 'Yelp' | 'LastFM';

/**
 * The S3-Rec next-item benchmarks: `<name>.txt` has one user per line, `user item item ...`
 * oldest first, with no timestamps, so an event's time is its position (clock 'ordinal').
 * `<name>_item2attributes.json` maps items to attribute ids (Amazon: categories and brand,
 * Yelp: business categories, LastFM: tags); the first listed one is the event's category.
 */
export async function readS3Rec(dir: string, name: S3RecDataset): Promise<Dataset> {
  const seqFile = path.join(dir, `${name}.txt`);
  const attrFile = path.join(dir, `${name}_item2attributes.json`);

  let attributes: Record<string, unknown>;
  try {
    attributes = JSON.parse(readText(attrFile)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof PantherError) throw err;
    throw new PantherError('E_DATA', `not valid JSON (${(err as Error).message})`, attrFile);
  }
  const items = new Map<string, ItemInfo>();
  const categoryOf = (item: string): string | undefined => {
    const list = attributes[item];
    return Array.isArray(list) && list.length > 0 ? `attr ${String(list[0])}` : undefined;
  };

  const users: UserHistory[] = [];
  let line = 0;
  for (const row of readText(seqFile).split('\n')) {
    line++;
    if (row === '') continue;
    const ids = row.trim().split(' ');
    if (ids.length < 2 || !ids.every((s) => /^\d+$/.test(s))) {
      throw new PantherError('E_DATA', `expected 'user item item ...' (integers), found ${JSON.stringify(row.slice(0, 80))}`, `${seqFile}:${line}`);
    }
    const user = ids[0];
    const events: BehaviorEvent[] = [];
    for (let i = 1; i < ids.length; i++) {
      const item = ids[i];
      let info = items.get(item);
      if (!info) items.set(item, (info = { category: categoryOf(item) }));
      const e: BehaviorEvent = { user, time: i - 1, type: 'interaction', item };
      if (info.category !== undefined) e.category = info.category;
      events.push(e);
    }
    users.push({ user, events });
  }
  return itemSequenceDataset(`s3rec-${name}`, users, items, [seqFile, attrFile]);
}

/** Shared by the order-only data sets: users in id order, metadata from the files. */
export async function itemSequenceDataset(name: string, users: UserHistory[], items: Map<string, ItemInfo>, files: string[]): Promise<Dataset> {
  const seen = new Set<string>();
  for (const u of users) {
    if (seen.has(u.user)) throw new PantherError('E_DATA', `user ${u.user} appears on two lines`, files[0]);
    seen.add(u.user);
  }
  users.sort((a, b) => Number(a.user) - Number(b.user));
  const sources = await Promise.all(files.map(describeSource));
  return {
    meta: {
      name,
      sources,
      sha256: sha256Of(sources.map((s) => s.sha256)),
      counts: countDataset(users),
      clock: 'ordinal',
      defaultTarget: 'item',
      itemNoun: 'item',
      profileFields: [],
      skipped: {},
      skippedExamples: [],
    },
    users,
    items,
  };
}
