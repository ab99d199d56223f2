import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
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

export function formatIssues(issues: z.core.$ZodIssue[], file: string, where: (path: PropertyKey[]) => number | undefined): string {
  return issues
    .map((i) => {
      const path = i.path.length ? i.path.map(String).join('.') : '(top level)';
      const line = where(i.path);
      return `${file}${line ? `:${line}` : ''}: ${path}: ${i.message}`;
    })
    .join('\n');
}

/** Parses and validates YAML text; errors name the file, line and field path. */
export function parseClusterConfig(text: string, file = 'cluster.yaml'): ClusterConfig {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    throw new PantherError('E_CONFIG', `invalid YAML: ${e.message.split('\n')[0]}`, `${file}${line ? `:${line}` : ''}`);
  }
  const raw = doc.toJS() ?? {};
  const result = ClusterConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new PantherError('E_CONFIG', `\n${formatIssues(result.error.issues, file, (p) => lineOf(doc, counter, p))}`, file);
  }
  return result.data;
}

export function loadClusterConfig(path: string): ClusterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PantherError('E_CONFIG', `cannot read the config file (${(err as Error).message})`, path);
  }
  return parseClusterConfig(text, path);
}

export function defaultClusterConfig(): ClusterConfig {
  return ClusterConfigSchema.parse({});
}
