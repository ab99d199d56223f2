#!/usr/bin/env node
// The npm registry mirror this project is built against lacks some platform-specific
// optional packages (e.g. msgpackr-extract's darwin and win32 builds), so `npm install`
// leaves them out of package-lock.json and `npm ci` then refuses the lock as out of sync.
// This adds a lock entry (version, os, cpu, optional) for each missing optional dependency;
// npm skips them on other platforms without fetching, and fetches them where they apply.
import { readFileSync, writeFileSync } from 'node:fs';

const PLATFORM = /-(darwin|linux|win32|freebsd|android)-(arm64|x64|arm|ia32)(-|$)/;
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const at = `${path ? `${path}/` : ''}node_modules/${name}`;
    const top = `node_modules/${name}`;
    if (lock.packages[at] || lock.packages[top]) continue;
    const m = PLATFORM.exec(name);
    if (!m) continue;
    lock.packages[top] = { version, optional: true, os: [m[1]], cpu: [m[2]] };
    added++;
  }
}
writeFileSync('package-lock.json', `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} platform entries`);
