import type { Redis } from 'ioredis';
import { PantherError } from '../errors.js';
import {
  decodeEntry,
  decodeMeta,
  decodePopulation,
  encodeEntry,
  encodeMeta,
  encodePopulation,
  type Population,
  type UserEntry,
  type VersionMeta,
} from './entry.js';

/**
 * The embedding store in Redis. Every version lives under its own prefix
 * `<prefix>:v:<n>:` (metadata, population default, state, and the user entries spread over
 * hash buckets), and `<prefix>:current` names the version readers use. A reader resolves
 * the pointer once and reads only keys of that version, so it never sees a mix; the pointer
 * moves in one atomic script, and a replaced version stays readable for a grace period
 * before it is removed. Writing a user twice (a retried shard) overwrites the same hash
 * field, so a finished version has exactly one entry per user.
 */
export type VersionStatus = 'building' | 'ready' | 'current' | 'retired' | 'failed';

export interface VersionInfo {
  version: number;
  status: VersionStatus;
  createdAt: number;
  users: number;
  shards: number;
  checkpoint: string;
  finishedAt?: number;
  deleteAt?: number;
}

/** Moves the pointer to ARGV[1] unless a newer version is current; the loser is retired. */
const ACTIVATE = `
local cur = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[2])
local deleteAt = tonumber(ARGV[3])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then
  if cur ~= ARGV[1] and redis.call('ZADD', KEYS[2], 'NX', deleteAt, ARGV[1]) == 1 then
    redis.call('HSET', KEYS[3], 'status', 'retired', 'finishedAt', now, 'deleteAt', deleteAt)
  end
  return {0, cur}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'status', 'current', 'finishedAt', now)
if cur then
  redis.call('ZADD', KEYS[2], deleteAt, cur)
  redis.call('HSET', ARGV[4] .. cur .. ':state', 'status', 'retired', 'deleteAt', deleteAt)
end
return {1, cur or ''}
`;

/** FNV-1a: a stable, fast bucket for a user id, the same in every process. */
export function bucketOf(user: string, buckets: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % buckets;
}

export class EmbeddingStore {
  constructor(readonly redis: Redis, readonly prefix: string) {}

  private k(...parts: (string | number)[]): string {
    return [this.prefix, ...parts].join(':');
  }

  versionKey(version: number, part: string): string {
    return this.k('v', version, part);
  }

  bucketKey(version: number, bucket: number): string {
    return this.k('v', version, 'u', bucket);
  }

  /** A new version number, larger than every earlier one. */
  async nextVersion(): Promise<number> {
    return this.redis.incr(this.k('next'));
  }

  async registerVersion(info: { version: number; users: number; shards: number; checkpoint: string }): Promise<void> {
    const now = Date.now();
    await this.redis
      .multi()
      .zadd(this.k('versions'), now, String(info.version))
      .hset(this.versionKey(info.version, 'state'), { status: 'building', createdAt: now, users: info.users, shards: info.shards, checkpoint: info.checkpoint })
      .exec();
  }

  async setStatus(version: number, status: VersionStatus): Promise<void> {
    await this.redis.hset(this.versionKey(version, 'state'), 'status', status);
  }

  async info(version: number): Promise<VersionInfo | null> {
    const h = await this.redis.hgetall(this.versionKey(version, 'state'));
    if (!h.status) return null;
    return {
      version,
      status: h.status as VersionStatus,
      createdAt: Number(h.createdAt),
      users: Number(h.users),
      shards: Number(h.shards),
      checkpoint: h.checkpoint ?? '',
      ...(h.finishedAt ? { finishedAt: Number(h.finishedAt) } : {}),
      ...(h.deleteAt ? { deleteAt: Number(h.deleteAt) } : {}),
    };
  }

  /** The most recent versions first. */
  async versions(limit = 20): Promise<VersionInfo[]> {
    const ids = await this.redis.zrevrange(this.k('versions'), 0, limit - 1);
    const infos = await Promise.all(ids.map((v) => this.info(Number(v))));
    return infos.filter((i): i is VersionInfo => i !== null);
  }

  /** Writes the version's metadata unless a shard already did (every shard can, the first wins). */
  async writeMetaOnce(meta: VersionMeta): Promise<boolean> {
    const r = await this.redis.set(this.versionKey(meta.version, 'meta'), encodeMeta(meta), 'NX');
    return r === 'OK';
  }

  async readMeta(version: number): Promise<VersionMeta | null> {
    const key = this.versionKey(version, 'meta');
    const bytes = await this.redis.getBuffer(key);
    return bytes ? decodeMeta(bytes, key) : null;
  }

  async writePopulation(version: number, p: Population): Promise<void> {
    await this.redis.set(this.versionKey(version, 'population'), encodePopulation(p));
  }

  async readPopulation(version: number): Promise<Population | null> {
    const key = this.versionKey(version, 'population');
    const bytes = await this.redis.getBuffer(key);
    return bytes ? decodePopulation(bytes, key) : null;
  }

  /** One pipeline: HSET of each entry in its bucket (idempotent: a rewrite replaces the field). */
  async writeEntries(version: number, buckets: number, entries: readonly UserEntry[]): Promise<void> {
    if (!entries.length) return;
    const p = this.redis.pipeline();
    for (const e of entries) p.hset(this.bucketKey(version, bucketOf(e.user, buckets)), e.user, encodeEntry(e));
    const results = await p.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw new PantherError('E_REDIS_UNAVAILABLE', `writing entries failed: ${failed[0]!.message}`, this.k('v', version));
  }

  async readEntry(version: number, buckets: number, user: string): Promise<UserEntry | null> {
    const key = this.bucketKey(version, bucketOf(user, buckets));
    const bytes = await this.redis.hgetBuffer(key, user);
    return bytes ? decodeEntry(bytes, `${key} ${user}`) : null;
  }

  async readEntries(version: number, buckets: number, users: readonly string[]): Promise<(UserEntry | null)[]> {
    if (users.length === 1) return [await this.readEntry(version, buckets, users[0])];
    const p = this.redis.pipeline();
    for (const u of users) p.hgetBuffer(this.bucketKey(version, bucketOf(u, buckets)), u);
    const results = (await p.exec()) ?? [];
    return results.map(([err, bytes], i) => {
      if (err) throw new PantherError('E_REDIS_UNAVAILABLE', err.message, this.k('v', version));
      return bytes ? decodeEntry(bytes as Buffer, `${this.k('v', version)} ${users[i]}`) : null;
    });
  }

  /** Entries of a version (HLEN over its buckets). */
  async countEntries(version: number, buckets: number): Promise<number> {
    const p = this.redis.pipeline();
    for (let b = 0; b < buckets; b++) p.hlen(this.bucketKey(version, b));
    const results = (await p.exec()) ?? [];
    return results.reduce((n, [err, c]) => {
      if (err) throw new PantherError('E_REDIS_UNAVAILABLE', err.message, this.k('v', version));
      return n + Number(c);
    }, 0);
  }

  /** Every user id of a version (for checks and tools; SCANs the buckets). */
  async users(version: number, buckets: number): Promise<string[]> {
    const out: string[] = [];
    for (let b = 0; b < buckets; b++) out.push(...(await this.redis.hkeys(this.bucketKey(version, b))));
    return out;
  }

  async current(): Promise<number | null> {
    const v = await this.redis.get(this.k('current'));
    return v === null ? null : Number(v);
  }

  /**
   * Points readers at `version` atomically unless a newer one is already current. The
   * version it replaces (or this one, when it lost) is retired: removed by `prune` once
   * `graceSeconds` have passed.
   */
  async activate(version: number, graceSeconds: number): Promise<{ activated: boolean; previous: number | null; deleteAt: number }> {
    const now = Date.now();
    const deleteAt = now + Math.round(graceSeconds * 1000);
    // The replaced version's state key is built in the script from the pointer it read there
    // (single-instance Redis; a cluster would need hash tags on the prefix).
    const r = (await this.redis.eval(
      ACTIVATE,
      3,
      this.k('current'),
      this.k('retired'),
      this.versionKey(version, 'state'),
      String(version),
      String(now),
      String(deleteAt),
      `${this.k('v')}:`,
    )) as [number, string];
    const activated = r[0] === 1;
    const other = r[1] === '' ? null : Number(r[1]);
    return { activated, previous: other === version ? null : other, deleteAt };
  }

  /** When the next retired version is due for removal (ms), or null. */
  async nextPruneAt(): Promise<number | null> {
    const r = await this.redis.zrange(this.k('retired'), '0', '0', 'WITHSCORES');
    return r.length ? Number(r[1]) : null;
  }

  /** Removes every retired version whose grace period is over (never the current one). */
  async prune(now = Date.now()): Promise<number[]> {
    const due = (await this.redis.zrangebyscore(this.k('retired'), 0, now)).map(Number);
    const current = await this.current();
    const removed: number[] = [];
    for (const v of due) {
      if (v === current) continue;
      await this.removeVersion(v);
      removed.push(v);
    }
    return removed;
  }

  /** Deletes every key of a version (UNLINK: freed in the background). */
  async removeVersion(version: number): Promise<void> {
    const pattern = `${this.k('v', version)}:*`;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      if (keys.length) await this.redis.unlink(...keys);
    } while (cursor !== '0');
    await this.redis.multi().zrem(this.k('retired'), String(version)).zrem(this.k('versions'), String(version)).exec();
  }
}
