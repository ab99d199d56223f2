import { pino, type Logger } from 'pino';

/** Structured logs on stderr (stdout stays free for tables and JSON). */
export function createLogger(name: string, level = process.env.PANTHER_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}
