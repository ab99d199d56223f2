import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { countDataset, groupByUser, type BehaviorEvent, type Dataset, type DatasetMeta } from '../../src/data/events.js';
import { dataRoot } from '../../src/data/files.js';

/** The shared data sets (PANTHER_DATA_ROOT or ../shared/data next to the repository). */
export const DATA = dataRoot();

/** A temporary folder for the file, removed after it. */
export function useTempDir(): (name?: string, content?: string | Buffer) => string {
  const dir = mkdtempSync(path.join(tmpdir(), 'panther-data-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return (name?: string, content?: string | Buffer) => {
    if (name === undefined) return dir;
    const file = path.join(dir, name);
    if (content !== undefined) writeFileSync(file, content);
    return file;
  };
}

/** A small in-memory dataset from events. */
export function datasetOf(events: BehaviorEvent[], meta: Partial<DatasetMeta> = {}): Dataset {
  const users = groupByUser(events);
  return {
    meta: {
      name: 'fixture',
      sources: [],
      sha256: 'fixture',
      counts: countDataset(users),
      clock: 'unix',
      defaultTarget: 'composite',
      itemNoun: 'item',
      profileFields: [],
      skipped: {},
      skippedExamples: [],
      ...meta,
    },
    users,
    items: new Map(),
  };
}

/** Seconds since the epoch of a UTC date-time 'YYYY-MM-DD HH:MM'. */
export function at(text: string): number {
  return Date.parse(`${text.replace(' ', 'T')}:00Z`) / 1000;
}
