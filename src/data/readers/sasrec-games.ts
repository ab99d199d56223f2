import path from 'node:path';
import { PantherError } from '../../errors.js';
import type { BehaviorEvent, Dataset, ItemInfo, UserHistory } from '../events.js';
import { readText } from '../files.js';
import { itemSequenceDataset } from './s3rec.js';

/**
 * SASRec's Amazon "Games" (`Video.txt`): `user item` per line, grouped by user, each user's
 * lines in chronological order; no timestamps, so time is the position (clock 'ordinal').
 */
export async function readSasrecGames(dir: string): Promise<Dataset> {
  const file = path.join(dir, 'Video.txt');
  const byUser = new Map<string, BehaviorEvent[]>();
  const items = new Map<string, ItemInfo>();
  let previous = '';
  let line = 0;
  for (const row of readText(file).split('\n')) {
    line++;
    if (row === '') continue;
    const m = /^(\d+) (\d+)\r?$/.exec(row);
    if (!m) throw new PantherError('E_DATA', `expected 'user item' (integers), found ${JSON.stringify(row.slice(0, 80))}`, `${file}:${line}`);
    const [, user, item] = m;
    let events = byUser.get(user);
    if (!events) byUser.set(user, (events = []));
    else if (user !== previous) throw new PantherError('E_DATA', `user ${user}'s lines are not contiguous (the file must be grouped by user)`, `${file}:${line}`);
    previous = user;
    if (!items.has(item)) items.set(item, {});
    events.push({ user, time: events.length, type: 'interaction', item });
  }
  const users: UserHistory[] = [...byUser].map(([user, events]) => ({ user, events }));
  return itemSequenceDataset('sasrec-games', users, items, [file]);
}
