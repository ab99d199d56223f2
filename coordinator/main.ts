/**
 * Entry point of a coordinator process:
 *   PANTHER_CLUSTER_SECRET=... node --import tsx coordinator/main.ts --config cluster.yaml [--resume]
 * Waits for `cluster.workers` workers, trains, checkpoints. The logic lives in src/cluster/.
 */
import { parseArgs } from 'node:util';
import { coordinatorCommand } from '../src/cli/cluster-commands.js';
import { loadClusterConfig } from '../src/config/load.js';
import { PantherError } from '../src/errors.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: 'cluster.yaml' },
    resume: { type: 'boolean' },
    'checkpoint-dir': { type: 'string' },
    'max-steps': { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
  },
});

try {
  await coordinatorCommand(loadClusterConfig(values.config), {
    resume: values.resume, checkpointDir: values['checkpoint-dir'],
    maxSteps: values['max-steps'] ? Number.parseInt(values['max-steps'], 10) : undefined,
    host: values.host, port: values.port ? Number.parseInt(values.port, 10) : undefined,
  });
  process.exit(0);
} catch (err) {
  const e = err as Error;
  process.stderr.write(`panther coordinator: ${err instanceof PantherError ? `${err.code}: ` : ''}${e.message}\n`);
  process.exit(err instanceof PantherError ? 2 : 1);
}
