import path from 'node:path';
import type { DataSource, OnBadRow } from './config.js';
import type { Dataset } from './events.js';
import { dataRoot } from './files.js';
import { readEventSource } from './readers/event-source.js';
import { readFraudHandbook } from './readers/fraud-handbook.js';
import { readMovieLens100k } from './readers/movielens.js';
import { readSasrecGames } from './readers/sasrec-games.js';
import { readS3Rec } from './readers/s3rec.js';
import { generateSynthetic } from './synthetic.js';

/** Picks the reader for a `data.source` and says which files it reads. */
export interface LoadOptions {
  /** Folder of the shared data sets; default `dataRoot()` (PANTHER_DATA_ROOT or ../shared/data). */
  dataRoot?: string;
  /** Relative paths of the user's own files are resolved against it (the config file's folder); default cwd. */
  baseDir?: string;
  /** For sources that do not set their own (data.onBadRow). */
  onBadRow?: OnBadRow;
}

const FOLDERS = {
  'movielens-100k': 'movielens-100k',
  s3rec: 's3rec-seqrec-benchmarks',
  'sasrec-games': 'sasrec-amazon-games',
  'fraud-handbook': 'fraud-handbook-simulated',
} as const;

function folderOf(source: Exclude<DataSource, { kind: 'synthetic' | 'events' }>, options: LoadOptions): string {
  return path.resolve(options.baseDir ?? process.cwd(), source.dir ?? path.join(options.dataRoot ?? dataRoot(), FOLDERS[source.kind]));
}

/** The files a source reads (empty for synthetic data): their contents key the cache. */
export function inputFiles(source: DataSource, options: LoadOptions = {}): string[] {
  const base = options.baseDir ?? process.cwd();
  switch (source.kind) {
    case 'synthetic':
      return [];
    case 'movielens-100k': {
      const dir = folderOf(source, options);
      return ['u.data', 'u.item', 'u.user', 'u.genre'].map((f) => path.join(dir, f));
    }
    case 's3rec': {
      const dir = folderOf(source, options);
      return [`${source.dataset}.txt`, `${source.dataset}_item2attributes.json`].map((f) => path.join(dir, f));
    }
    case 'sasrec-games':
      return [path.join(folderOf(source, options), 'Video.txt')];
    case 'fraud-handbook':
      return [path.join(folderOf(source, options), 'transactions.csv.gz')];
    case 'events':
      return [path.resolve(base, source.path), ...(source.profile ? [path.resolve(base, source.profile.path)] : [])];
  }
}

export async function loadDataset(source: DataSource, options: LoadOptions = {}): Promise<Dataset> {
  switch (source.kind) {
    case 'synthetic': {
      const { kind: _, ...generatorOptions } = source;
      return generateSynthetic(generatorOptions);
    }
    case 'movielens-100k':
      return readMovieLens100k(folderOf(source, options));
    case 's3rec':
      return readS3Rec(folderOf(source, options), source.dataset);
    case 'sasrec-games':
      return readSasrecGames(folderOf(source, options));
    case 'fraud-handbook':
      return readFraudHandbook(folderOf(source, options));
    case 'events': {
      const { kind: _, ...config } = source;
      return readEventSource(config, { baseDir: options.baseDir, onBadRow: options.onBadRow });
    }
  }
}
