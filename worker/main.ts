/**
 * Entry point of a worker process (for a fleet's process manager):
 *   PANTHER_CLUSTER_SECRET=... node --import tsx worker/main.ts --coordinator ws://HOST:PORT
 * The logic lives in src/cluster/worker.ts.
 */
import { parseArgs } from 'node:util';
import { workerCommand } from '../src/cli/cluster-commands.js';
import { PantherError } from '../src/errors.js';

const { values } = parseArgs({
  options: {
    coordinator: { type: 'string' },
    name: { type: 'string' },
    'secret-env': { type: 'string', default: 'PANTHER_CLUSTER_SECRET' },
    ca: { type: 'string' },
    listen: { type: 'string' },
    advertise: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});

if (!values.coordinator) {
  process.stderr.write('usage: worker/main.ts --coordinator ws://HOST:PORT [--name N] [--secret-env VAR] [--ca FILE] [--listen HOST] [--advertise HOST] [--tls-cert FILE --tls-key FILE]\n');
  process.exit(2);
}

try {
  await workerCommand({
    coordinator: values.coordinator, name: values.name, secretEnv: values['secret-env'], ca: values.ca,
    listen: values.listen, advertise: values.advertise, tlsCert: values['tls-cert'], tlsKey: values['tls-key'],
  });
  process.exit(0);
} catch (err) {
  const e = err as Error;
  process.stderr.write(`panther worker: ${err instanceof PantherError ? `${err.code}: ` : ''}${e.message}\n`);
  process.exit(1);
}
