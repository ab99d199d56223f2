import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { curvePointsOf, type CurvePoint } from '../train/plot.js';

/**
 * The files a cluster run writes next to its checkpoints, in the Trainer's formats:
 * `metrics.jsonl` (one line per applied step and per validation: the step log) and the
 * curve points, plus `cluster.jsonl`, the membership and recovery events (joins, losses,
 * discarded attempts, rings, commits) with their times.
 */
export class RunLog {
  readonly curve: CurvePoint[] = [];

  constructor(readonly dir: string) {}

  get metricsFile(): string {
    return join(this.dir, 'metrics.jsonl');
  }

  get eventsFile(): string {
    return join(this.dir, 'cluster.jsonl');
  }

  start(): void {
    writeFileSync(this.metricsFile, '');
    writeFileSync(this.eventsFile, '');
  }

  /** Keeps the lines of steps up to `step` (what the checkpoint holds) and their curve points. */
  resumeAt(step: number): void {
    if (existsSync(this.metricsFile)) {
      const kept = readFileSync(this.metricsFile, 'utf8').split('\n').filter((line) => line && (JSON.parse(line) as { step: number }).step <= step);
      writeFileSync(this.metricsFile, kept.map((l) => `${l}\n`).join(''));
      for (const l of kept) this.addCurve(JSON.parse(l));
    }
    this.event('resume', { step });
  }

  record(entry: Record<string, unknown>): void {
    appendFileSync(this.metricsFile, `${JSON.stringify(entry)}\n`);
    this.addCurve(entry);
  }

  event(kind: string, fields: Record<string, unknown>): void {
    appendFileSync(this.eventsFile, `${JSON.stringify({ kind, time: Date.now(), ...fields })}\n`);
  }

  private addCurve(e: Record<string, unknown>): void {
    this.curve.push(...curvePointsOf(e));
  }
}
