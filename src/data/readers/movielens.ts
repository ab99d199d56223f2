import path from 'node:path';
import { PantherError } from '../../errors.js';
import { groupByUser, countDataset, type BehaviorEvent, type Dataset, type ItemInfo, type UserProfile } from '../events.js';
import { describeSource, readText, sha256Of } from '../files.js';

/**
 * MovieLens 100K (GroupLens): each rating is an event of type 'rating' on an item (the
 * movie), its primary genre as category, the rating value and all genres as free
 * attributes; u.user's demographics are the profile. Ratings at the same second are
 * ordered by item id, as the data set's README says.
 */
export async function readMovieLens100k(dir: string): Promise<Dataset> {
  const files = { data: path.join(dir, 'u.data'), item: path.join(dir, 'u.item'), user: path.join(dir, 'u.user'), genre: path.join(dir, 'u.genre') };

  const genres = pipeRows(files.genre, 'utf8')
    .filter((r) => r.fields.length === 2)
    .map((r) => r.fields[0]);
  if (genres.length !== 19) throw new PantherError('E_DATA', `expected 19 genres, found ${genres.length}`, files.genre);

  const items = new Map<string, ItemInfo & { genres: string }>();
  for (const { line, fields } of pipeRows(files.item, 'latin1')) {
    if (fields.length !== 5 + genres.length) {
      throw new PantherError('E_DATA', `movie id: expected ${5 + genres.length} '|' fields, found ${fields.length}`, `${files.item}:${line}`);
    }
    const flagged = genres.filter((_, g) => fields[5 + g] === '1');
    items.set(fields[0], { name: fields[1], category: flagged[0] ?? 'unknown', genres: flagged.join('|') || 'unknown' });
  }

  const profiles = new Map<string, UserProfile>();
  for (const { line, fields } of pipeRows(files.user, 'utf8')) {
    const [user, age, gender, occupation, zip] = fields;
    if (fields.length !== 5 || !/^\d+$/.test(age)) {
      throw new PantherError('E_DATA', `age: expected 'user|age|gender|occupation|zip'`, `${files.user}:${line}`);
    }
    profiles.set(user, { ageBand: movieLensAgeBand(Number(age)), gender, occupation, zipRegion: zipRegion(zip) });
  }

  const events: BehaviorEvent[] = [];
  const text = readText(files.data);
  let line = 0;
  for (const row of text.split('\n')) {
    line++;
    if (row === '') continue;
    const [user, item, rating, ts] = row.split('\t');
    const time = Number(ts);
    if (!user || !item || !/^[1-5]$/.test(rating) || !Number.isInteger(time)) {
      throw new PantherError('E_DATA', `expected 'user \\t item \\t rating 1-5 \\t unix seconds', found ${JSON.stringify(row)}`, `${files.data}:${line}`);
    }
    const info = items.get(item);
    if (!info) throw new PantherError('E_DATA', `item: movie ${item} is not in u.item`, `${files.data}:${line}`);
    events.push({ user, time, type: 'rating', item, category: info.category, attrs: { rating, genres: info.genres } });
  }

  const users = groupByUser(events, { profiles, tieBreak: (a, b) => Number(a.item) - Number(b.item) });
  const sources = await Promise.all(Object.values(files).map(describeSource));
  const itemInfo = new Map<string, ItemInfo>([...items].map(([id, i]) => [id, { name: i.name, category: i.category }]));
  return {
    meta: {
      name: 'movielens-100k',
      sources,
      sha256: sha256Of(sources.map((s) => s.sha256)),
      counts: countDataset(users),
      clock: 'unix',
      defaultTarget: 'item',
      itemNoun: 'movie',
      profileFields: ['ageBand', 'gender', 'occupation', 'zipRegion'],
      skipped: {},
      skippedExamples: [],
    },
    users,
    items: itemInfo,
  };
}

/** The age bands MovieLens-1M uses, so both data sets share a profile vocabulary. */
export function movieLensAgeBand(age: number): string {
  if (age < 18) return 'under 18';
  if (age < 25) return '18-24';
  if (age < 35) return '25-34';
  if (age < 45) return '35-44';
  if (age < 50) return '45-49';
  if (age < 56) return '50-55';
  return '56+';
}

/** First digit of a US zip code is its region (0 = northeast ... 9 = west coast); others are 'other'. */
function zipRegion(zip: string): string {
  return /^\d{5}$/.test(zip) ? `zip ${zip[0]}xxxx` : 'other';
}

function pipeRows(file: string, encoding: BufferEncoding): { line: number; fields: string[] }[] {
  return readText(file, encoding)
    .split('\n')
    .map((text, i) => ({ line: i + 1, fields: text.replace(/\r$/, '').split('|') }))
    .filter((r) => r.fields.length > 1 || r.fields[0] !== '');
}
