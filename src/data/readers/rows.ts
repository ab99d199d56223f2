import { parse, type Info } from 'csv-parse';
import { PantherError } from '../../errors.js';
import { openInput, readLines } from '../files.js';

export type TableFormat = 'csv' | 'jsonl';

/** A row of a CSV or JSON-lines table: values by column name, or why the row is unreadable. */
export interface TableRow {
  line: number;
  values: Record<string, unknown>;
  /** Set when the row itself is malformed (short CSV row, invalid JSON); `values` is then partial. */
  problem?: { reason: string; field: string; message: string };
}

export function formatFromName(file: string): TableFormat | undefined {
  const name = file.toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.csv') || name.endsWith('.tsv') || name.endsWith('.txt')) return 'csv';
  if (name.endsWith('.jsonl') || name.endsWith('.ndjson') || name.endsWith('.json')) return 'jsonl';
  return undefined;
}

/**
 * Streams a table. CSV: the first record is the header and every column in `required` must
 * be in it (else an error at line 1, whatever the bad-row policy: the file cannot be read).
 * Line numbers are the file's own (1-based; a quoted field spanning lines reports the
 * record's last line), so messages point at the right place.
 */
export async function* readTable(file: string, format: TableFormat, required: readonly string[], delimiter = ','): AsyncGenerator<TableRow> {
  if (format === 'jsonl') {
    for await (const { line, text } of readLines(file)) {
      if (text.trim() === '') continue;
      let values: unknown;
      try {
        values = JSON.parse(text);
      } catch (err) {
        yield { line, values: {}, problem: { reason: 'invalid JSON', field: '(row)', message: `invalid JSON (${(err as Error).message})` } };
        continue;
      }
      if (values === null || typeof values !== 'object' || Array.isArray(values)) {
        yield { line, values: {}, problem: { reason: 'invalid JSON', field: '(row)', message: 'a line must be one JSON object' } };
        continue;
      }
      yield { line, values: values as Record<string, unknown> };
    }
    return;
  }

  const parser = openInput(file).pipe(parse({ delimiter, bom: true, info: true, relax_column_count: true, skip_empty_lines: true }));
  let header: string[] | undefined;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: Info }>) {
      if (!header) {
        header = record.map((h) => h.trim());
        const missing = required.filter((c) => !header!.includes(c));
        if (missing.length) {
          throw new PantherError('E_DATA', `${missing.join(', ')}: missing column in the header (found: ${header.join(', ')})`, `${file}:${info.lines}`);
        }
        continue;
      }
      const values: Record<string, unknown> = {};
      for (let i = 0; i < header.length && i < record.length; i++) values[header[i]] = record[i];
      if (record.length < header.length) {
        const absent = required.find((c) => header!.indexOf(c) >= record.length) ?? header[record.length];
        yield { line: info.lines, values, problem: { reason: 'missing column', field: absent, message: `missing column (the row has ${record.length} fields, the header ${header.length})` } };
      } else if (record.length > header.length) {
        yield { line: info.lines, values, problem: { reason: 'too many fields', field: '(row)', message: `too many fields (the row has ${record.length}, the header ${header.length})` } };
      } else {
        yield { line: info.lines, values };
      }
    }
  } catch (err) {
    if (err instanceof PantherError) throw err;
    const e = err as Error & { lines?: number };
    throw new PantherError('E_DATA', `(row): not valid CSV (${e.message})`, `${file}${e.lines ? `:${e.lines}` : ''}`);
  }
  if (!header) throw new PantherError('E_DATA', 'empty file: expected a header line', file);
}
