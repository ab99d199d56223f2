import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { loadClusterConfig, defaultClusterConfig } from '../config/load.js';
import type { ClusterConfig } from '../config/schema.js';
import { PantherError } from '../errors.js';
import { doctor } from './doctor.js';
import { benchKernels } from './bench-kernels.js';
import { pretrain } from './pretrain.js';

function configFrom(path: string | undefined): ClusterConfig {
  if (path) return loadClusterConfig(path);
  return existsSync('cluster.yaml') ? loadClusterConfig('cluster.yaml') : defaultClusterConfig();
}

export function buildCli(): Command {
  const program = new Command('panther')
    .description('Distributed WebGPU pretraining of generative models of user behaviour')
    .option('-c, --config <file>', 'cluster configuration (default: ./cluster.yaml when present)')
    .showHelpAfterError();

  program
    .command('doctor')
    .description('show the WebGPU adapter Dawn picked, its features and limits, and whether Redis is reachable')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await doctor(configFrom(program.opts().config), Boolean(opts.json));
    });

  program
    .command('pretrain')
    .description('pretrain on this machine: progress, validation with early stopping, checkpoints, final metrics')
    .option('--baseline', 'train the plain-transformer baseline (SPRM and profile fusion off)')
    .option('--resume', 'continue from the last checkpoint in the checkpoint folder')
    .option('--checkpoint-dir <dir>', 'where checkpoints, metrics and curves go (default: train.checkpointDir)')
    .option('--max-steps <n>', 'stop after this many steps', (v) => Number.parseInt(v, 10))
    .action(async (opts: { baseline?: boolean; resume?: boolean; checkpointDir?: string; maxSteps?: number }) => {
      await pretrain(configFrom(program.opts().config), opts);
    });

  const bench = program.command('bench').description('performance tests');
  bench
    .command('kernels')
    .description('time every kernel on the current adapter, next to TensorFlow.js WebGPU where it has the same op')
    .option('--json <file>', 'also write the results as JSON to this file')
    .option('--reps <n>', 'timed repetitions per case', (v) => Number.parseInt(v, 10), 10)
    .option('--only <names>', 'comma-separated kernel names to run')
    .addOption(new Option('--no-peer', 'skip the TensorFlow.js comparison'))
    .action(async (opts: { json?: string; reps: number; only?: string; peer: boolean }) => {
      process.exitCode = await benchKernels(configFrom(program.opts().config), opts);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof PantherError) {
      process.stderr.write(`panther: ${err.code}: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}

await main(process.argv);
