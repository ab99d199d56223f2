// The parts of autocannon (which ships no types) that the latency benchmark uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    interface Options {
      url: string;
      method?: string;
      headers?: Record<string, string>;
      connections?: number;
      duration?: number;
      overallRate?: number;
      timeout?: number;
      requests?: { setupRequest?: (req: Record<string, unknown>) => Record<string, unknown> }[];
    }
    interface Result {
      duration: number;
      errors: number;
      timeouts: number;
      requests: { total: number };
      latency: { p50: number; p99: number };
    }
    interface Instance extends EventEmitter {
      stop(): void;
    }
  }
  function autocannon(options: autocannon.Options): autocannon.Instance;
  export default autocannon;
}
