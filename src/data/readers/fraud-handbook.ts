import path from 'node:path';
import { parse } from 'csv-parse';
import { PantherError } from '../../errors.js';
import { countDataset, historiesFrom, type BehaviorEvent, type Dataset } from '../events.js';
import { describeSource, openInput, sha256Of } from '../files.js';

/** TX_TIME_SECONDS counts from here (README: seconds since 2018-04-01 00:00:00). */
export const HANDBOOK_EPOCH = Date.UTC(2018, 3, 1) / 1000;

const COLUMNS = ['TRANSACTION_ID', 'TX_DATETIME', 'CUSTOMER_ID', 'TERMINAL_ID', 'TX_AMOUNT', 'TX_TIME_SECONDS', 'TX_FRAUD', 'TX_FRAUD_SCENARIO'] as const;

/**
 * The Fraud Detection Handbook's simulated card payments (transactions.csv.gz, 1.75M rows),
 * stream-parsed. Each row is a 'payment' at a terminal (the item) with an amount, the fraud
 * label and scenario (1 amount > 220, 2 compromised terminal, 3 leaked credentials). No
 * profiles, categories or channels exist in this data. Same-second ties are ordered by
 * TRANSACTION_ID, as its README advises.
 */
export async function readFraudHandbook(dir: string): Promise<Dataset> {
  const file = path.join(dir, 'transactions.csv.gz');
  const parser = openInput(file).pipe(parse({ delimiter: ',' }));

  const byUser = new Map<string, BehaviorEvent[]>();
  const terminals = new Map<string, string>(); // interned, so 1.75M events share 10k strings
  const scenarios = [0, 0, 0, 0];
  let col: Record<(typeof COLUMNS)[number], number> | undefined;
  let line = 0;
  const bad = (field: string, message: string): never => {
    throw new PantherError('E_DATA', `${field}: ${message}`, `${file}:${line}`);
  };

  for await (const row of parser as AsyncIterable<string[]>) {
    line++;
    if (!col) {
      const index = Object.fromEntries(COLUMNS.map((c) => [c, row.indexOf(c)])) as Record<(typeof COLUMNS)[number], number>;
      const missing = COLUMNS.filter((c) => index[c] < 0);
      if (missing.length) bad(missing.join(', '), 'missing column in the header');
      col = index;
      continue;
    }
    const amount = Number(row[col.TX_AMOUNT]);
    if (!(amount >= 0) || row[col.TX_AMOUNT] === '') bad('TX_AMOUNT', `not a non-negative number: ${JSON.stringify(row[col.TX_AMOUNT])}`);
    const seconds = Number(row[col.TX_TIME_SECONDS]);
    if (!Number.isInteger(seconds) || row[col.TX_TIME_SECONDS] === '') bad('TX_TIME_SECONDS', `not an integer: ${JSON.stringify(row[col.TX_TIME_SECONDS])}`);
    const fraud = row[col.TX_FRAUD];
    if (fraud !== '0' && fraud !== '1') bad('TX_FRAUD', `not 0 or 1: ${JSON.stringify(fraud)}`);
    const scenario = Number(row[col.TX_FRAUD_SCENARIO]);
    if (!(scenario >= 0 && scenario <= 3) || !Number.isInteger(scenario)) bad('TX_FRAUD_SCENARIO', `not 0-3: ${JSON.stringify(row[col.TX_FRAUD_SCENARIO])}`);
    const customer = row[col.CUSTOMER_ID];
    if (customer === '' || customer === undefined) bad('CUSTOMER_ID', 'empty');
    const terminalRaw = row[col.TERMINAL_ID];
    let terminal = terminals.get(terminalRaw);
    if (terminal === undefined) terminals.set(terminalRaw, (terminal = terminalRaw));

    let events = byUser.get(customer);
    if (!events) byUser.set(customer, (events = []));
    scenarios[scenario]++;
    events.push({
      user: customer,
      time: HANDBOOK_EPOCH + seconds,
      type: 'payment',
      amount,
      item: terminal,
      label: fraud === '1' ? 1 : 0,
      scenario,
      id: row[col.TRANSACTION_ID],
    });
  }
  if (!col) throw new PantherError('E_DATA', 'empty file', file);

  // The map's key is the one shared copy of each customer id.
  for (const [user, events] of byUser) for (const e of events) e.user = user;
  const users = historiesFrom(byUser, { tieBreak: (a, b) => Number(a.id) - Number(b.id) });
  const sources = [await describeSource(file)];
  return {
    meta: {
      name: 'fraud-handbook',
      sources,
      sha256: sha256Of(sources.map((s) => s.sha256)),
      counts: countDataset(users),
      clock: 'unix',
      defaultTarget: 'item-amount',
      itemNoun: 'terminal',
      profileFields: [],
      skipped: {},
      skippedExamples: [],
      extra: { eventsPerScenario: scenarios, terminals: terminals.size },
    },
    users,
    items: new Map(),
  };
}
