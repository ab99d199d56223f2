import path from 'node:path';
import { PantherError } from '../../errors.js';
import type { EventSourceConfig, OnBadRow } from '../config.js';
import { countDataset, groupByUser, type BehaviorEvent, type Dataset, type UserProfile } from '../events.js';
import { describeSource, sha256Of } from '../files.js';
import { formatFromName, readTable, type TableFormat, type TableRow } from './rows.js';

/**
 * The user's own events: a CSV (with a header line) or JSON-lines file whose columns are
 * mapped to event fields by `EventSourceConfig.columns`, plus an optional profile table.
 *
 * A malformed row is an error naming `file:line: field` (onBadRow 'error'), or is skipped
 * and counted per reason in `meta.skipped` (onBadRow 'skip'); nothing is dropped silently.
 * Reasons: missing column, too many fields, invalid JSON, empty user id, bad timestamp,
 * bad amount, negative amount, bad label, bad scenario, duplicate profile.
 */
export interface EventSourceOptions {
  /** Relative paths are resolved against this folder (the config file's); default: cwd. */
  baseDir?: string;
  /** Used when the source does not set its own. */
  onBadRow?: OnBadRow;
}

class BadRows {
  readonly counts: Record<string, number> = {};
  readonly examples: string[] = [];
  constructor(private readonly policy: OnBadRow) {}

  report(file: string, line: number, reason: string, field: string, message: string): void {
    if (this.policy === 'error') throw new PantherError('E_DATA', `${field}: ${message}`, `${file}:${line}`);
    this.counts[reason] = (this.counts[reason] ?? 0) + 1;
    if (this.examples.length < 20) this.examples.push(`${file}:${line}: ${field}: ${message}`);
  }
}

/** Thrown inside row parsing, turned into a report by the caller. */
class RowError {
  constructor(readonly reason: string, readonly field: string, readonly message: string) {}
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const s = (typeof value === 'string' ? value : String(value)).trim();
  return s === '' ? undefined : s;
}

export async function readEventSource(config: EventSourceConfig, options: EventSourceOptions = {}): Promise<Dataset> {
  const baseDir = options.baseDir ?? process.cwd();
  const file = path.resolve(baseDir, config.path);
  const format = tableFormat(file, config.format);
  const bad = new BadRows(config.onBadRow ?? options.onBadRow ?? 'error');
  const cols = config.columns;
  const mapped = Object.values(cols).filter((c): c is string => c !== undefined);
  const parseTime = timestampParser(config.timestampFormat);

  const events: BehaviorEvent[] = [];
  for await (const row of readTable(file, format, [...mapped, ...config.extraColumns], config.delimiter)) {
    try {
      events.push(eventFrom(row, config, parseTime));
    } catch (err) {
      if (!(err instanceof RowError)) throw err;
      bad.report(file, row.line, err.reason, err.field, err.message);
    }
  }

  const files = [file];
  let profiles: Map<string, UserProfile> | undefined;
  if (config.profile) {
    const p = config.profile;
    const profileFile = path.resolve(baseDir, p.path);
    files.push(profileFile);
    profiles = new Map();
    for await (const row of readTable(profileFile, tableFormat(profileFile, p.format), [p.userColumn, ...p.attributes], config.delimiter)) {
      if (row.problem) {
        bad.report(profileFile, row.line, row.problem.reason, row.problem.field, row.problem.message);
        continue;
      }
      const user = text(row.values[p.userColumn]);
      if (user === undefined) {
        bad.report(profileFile, row.line, 'empty user id', p.userColumn, 'empty user id');
        continue;
      }
      if (profiles.has(user)) {
        bad.report(profileFile, row.line, 'duplicate profile', p.userColumn, `user ${JSON.stringify(user)} already has a profile`);
        continue;
      }
      const profile: UserProfile = {};
      for (const a of p.attributes) profile[a] = text(row.values[a]) ?? 'none';
      profiles.set(user, profile);
    }
  }

  const users = groupByUser(events, { profiles });
  const withEvents = new Set(users.map((u) => u.user));
  const sources = await Promise.all(files.map(describeSource));
  return {
    meta: {
      name: config.name,
      sources,
      sha256: sha256Of(sources.map((s) => s.sha256)),
      counts: countDataset(users),
      clock: 'unix',
      defaultTarget: 'composite',
      itemNoun: 'item',
      profileFields: config.profile?.attributes ?? [],
      skipped: bad.counts,
      skippedExamples: bad.examples,
      extra: profiles ? { profilesWithoutEvents: [...profiles.keys()].filter((u) => !withEvents.has(u)).length } : undefined,
    },
    users,
    items: new Map(),
  };
}

function tableFormat(file: string, configured: TableFormat | undefined): TableFormat {
  const format = configured ?? formatFromName(file);
  if (!format) throw new PantherError('E_CONFIG', "cannot tell the format from the file name; set format: csv or jsonl", file);
  return format;
}

function eventFrom(row: TableRow, config: EventSourceConfig, parseTime: (v: unknown) => number | undefined): BehaviorEvent {
  if (row.problem) throw new RowError(row.problem.reason, row.problem.field, row.problem.message);
  const cols = config.columns;
  const v = row.values;
  for (const required of [cols.user, cols.timestamp]) {
    if (!(required in v)) throw new RowError('missing column', required, 'missing column');
  }
  const user = text(v[cols.user]);
  if (user === undefined) throw new RowError('empty user id', cols.user, 'empty user id');
  const time = parseTime(v[cols.timestamp]);
  if (time === undefined) {
    throw new RowError('bad timestamp', cols.timestamp, `unparseable timestamp ${JSON.stringify(v[cols.timestamp])} (format ${config.timestampFormat})`);
  }
  const event: BehaviorEvent = { user, time, type: (cols.type && text(v[cols.type])) || config.defaultType };

  if (cols.amount) {
    const raw = text(v[cols.amount]);
    if (raw !== undefined) {
      const amount = Number(raw);
      if (!Number.isFinite(amount)) throw new RowError('bad amount', cols.amount, `not a number: ${JSON.stringify(raw)}`);
      if (amount < 0) throw new RowError('negative amount', cols.amount, `negative amount ${raw}`);
      event.amount = amount;
    }
  }
  if (cols.label) {
    const raw = text(v[cols.label])?.toLowerCase();
    if (raw !== undefined) {
      if (raw === '1' || raw === 'true') event.label = 1;
      else if (raw === '0' || raw === 'false') event.label = 0;
      else throw new RowError('bad label', cols.label, `expected 0/1, found ${JSON.stringify(raw)}`);
    }
  }
  if (cols.scenario) {
    const raw = text(v[cols.scenario]);
    if (raw !== undefined) {
      const s = Number(raw);
      if (!Number.isInteger(s) || s < 0) throw new RowError('bad scenario', cols.scenario, `expected an integer >= 0, found ${JSON.stringify(raw)}`);
      event.scenario = s;
    }
  }
  for (const field of ['item', 'category', 'channel', 'id'] as const) {
    const column = cols[field];
    const value = column ? text(v[column]) : undefined;
    if (value !== undefined) event[field] = value;
  }
  for (const column of config.extraColumns) {
    const value = text(v[column]);
    if (value !== undefined) (event.attrs ??= {})[column] = value;
  }
  return event;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Seconds since the epoch, or undefined when the value is not a timestamp of that format. */
export function timestampParser(format: EventSourceConfig['timestampFormat']): (value: unknown) => number | undefined {
  if (format === 'iso') {
    return (value) => {
      const m = typeof value === 'string' ? ISO.exec(value.trim()) : null;
      if (!m) return undefined;
      const [, y, mo, d, h = '0', mi = '0', s = '0', frac, zone] = m;
      const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
      const back = new Date(ms);
      // Date.UTC rolls 2024-02-30 over to March: reject instead.
      if (back.getUTCMonth() !== +mo - 1 || back.getUTCDate() !== +d || +h > 23 || +mi > 59 || +s > 60) return undefined;
      let offset = 0;
      if (zone && zone.toUpperCase() !== 'Z') {
        const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
        offset = (z[1] === '-' ? -1 : 1) * (+z[2] * 3600 + +(z[3] ?? 0) * 60);
      }
      return ms / 1000 + (frac ? Number(frac) : 0) - offset;
    };
  }
  const scale = format === 'unix-ms' ? 1000 : 1;
  return (value) => {
    const s = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    return Number.isFinite(s) ? s / scale : undefined;
  };
}
