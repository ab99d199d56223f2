import { readFileSync } from 'node:fs';
import { isMap, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { PantherError } from '../errors.js';
import { ClusterConfigSchema, type ClusterConfig } from './schema.js';

/** Line of a field path in the YAML document, for error messages. */
function lineOf(doc: ReturnType<typeof parseDocument>, counter: LineCounter, path: PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return counter.linePos(node.range[0]).line;
  }
  return undefined;
}

/** Issues as lines "LOCATION: field.path: message"; `where` names a field's location (the file and line by default). */
export function formatIssues(issues: z.core.$ZodIssue[], file: string, where: (path: PropertyKey[]) => string | undefined): string {
  return issues
    .map((i) => {
      const path = i.path.length ? i.path.map(String).join('.') : '(top level)';
      return `${where(i.path) ?? file}: ${path}: ${i.message}`;
    })
    .join('\n');
}

/** A command-line override KEY=VALUE: a dotted field path and a YAML value. */
interface Override {
  text: string;
  path: string[];
  value: unknown;
}

function parseOverride(text: string): Override {
  const eq = text.indexOf('=');
  const key = eq > 0 ? text.slice(0, eq).trim() : '';
  const path = key.split('.');
  if (!key || path.some((p) => p === '')) {
    throw new PantherError('E_CONFIG', 'expected KEY=VALUE with a dotted field path, e.g. model.sprm.prototypes=0', `--set ${text}`);
  }
  const valueText = text.slice(eq + 1);
  const value = parseDocument(valueText);
  if (value.errors.length) throw new PantherError('E_CONFIG', `invalid YAML value: ${value.errors[0].message.split('\n')[0]}`, `--set ${text}`);
  return { text, path, value: value.toJS() };
}

const startsWith = (a: readonly PropertyKey[], b: readonly PropertyKey[]) => b.every((k, i) => String(a[i]) === String(k));

/**
 * Parses and validates YAML text, after applying command-line overrides ("model.sprm.prototypes=0",
 * values in YAML); errors name the file, line and field path, or the override that set the field.
 */
export function parseClusterConfig(text: string, file = 'cluster.yaml', overrides: readonly string[] = []): ClusterConfig {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new PantherError('E_CONFIG', `invalid YAML: ${e.message.split('\n')[0]}`, `${file}${line ? `:${line}` : ''}`);
  }
  const applied = overrides.map(parseOverride);
  for (const o of applied) {
    for (let n = 1; n < o.path.length; n++) {
      const parent = doc.getIn(o.path.slice(0, n));
      if (parent !== undefined && !isMap(parent)) {
        throw new PantherError('E_CONFIG', `${o.path.slice(0, n).join('.')} is a value, not a section`, `--set ${o.text}`);
      }
    }
    doc.setIn(o.path, doc.createNode(o.value));
  }
  const raw = doc.toJS() ?? {};
  const result = ClusterConfigSchema.safeParse(raw);
  if (!result.success) {
    const where = (path: PropertyKey[]) => {
      // The last override touching the field (or its section) set it.
      const o = applied.findLast((a) => startsWith(path, a.path) || startsWith(a.path, path));
      if (o) return `--set ${o.text}`;
      const line = lineOf(doc, counter, path);
      return `${file}${line ? `:${line}` : ''}`;
    };
    throw new PantherError('E_CONFIG', `\n${formatIssues(result.error.issues, file, where)}`, file);
  }
  return result.data;
}

export function loadClusterConfig(path: string, overrides: readonly string[] = []): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PantherError('E_CONFIG', `cannot read the config file (${(err as Error).message})`, path);
  }
  return parseClusterConfig(text, path, overrides);
}

/** The schema's defaults (no file), with command-line overrides. */
export function defaultClusterConfig(overrides: readonly string[] = []): ClusterConfig {
  return parseClusterConfig('', '(defaults)', overrides);
}
