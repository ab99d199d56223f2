import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { loadClusterConfig, defaultClusterConfig } from '../config/load.js';
import type { ClusterConfig } from '../config/schema.js';
import { PantherError } from '../errors.js';
import { doctor } from './doctor.js';
import { benchKernels } from './bench-kernels.js';
import { benchStep } from './bench-step.js';
import { pretrain } from './pretrain.js';
import { evalCommand, experimentCommand, inspectCommand, tokenizeCommand } from './model-commands.js';

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

  program
    .command('eval')
    .description('rank held-out events against the full vocabulary: HR@1, HR@10, NDCG@10, HR@50, for a model and a baseline')
    .requiredOption('--checkpoint <file>', 'the model to evaluate')
    .option('--baseline-checkpoint <file>', 'a baseline to compare with (relative gains are printed)')
    .addOption(new Option('--split <split>', 'held-out events to rank').choices(['valid', 'test']).default('test'))
    .option('--json <file>', 'also write the results as JSON')
    .action(async (opts: { checkpoint: string; baselineCheckpoint?: string; split: 'valid' | 'test'; json?: string }) => {
      await evalCommand(configFrom(program.opts().config), opts);
    });

  program
    .command('inspect')
    .description("a user's prototype weights (which habits they match) and the likeliest next events")
    .requiredOption('--user <id>', 'user id as in the data')
    .option('--checkpoint <file>', 'model checkpoint', 'runs/latest/best.safetensors')
    .option('--top <n>', 'next events to list', (v) => Number.parseInt(v, 10), 10)
    .action(async (opts: { user: string; checkpoint: string; top: number }) => {
      await inspectCommand(configFrom(program.opts().config), opts);
    });

  program
    .command('tokenize')
    .description('fit (or load from the cache) the structured tokenizer and show how events become tokens')
    .option('--explain', "show a user's history as token names (with --user)")
    .option('--user <id>', 'user id as in the data')
    .option('--limit <n>', 'last N events of the user', (v) => Number.parseInt(v, 10), 30)
    .action(async (opts: { explain?: boolean; user?: string; limit: number }) => {
      await tokenizeCommand(configFrom(program.opts().config), { user: opts.explain || opts.user ? opts.user : undefined, limit: opts.limit });
    });

  program
    .command('experiment')
    .description('train PANTHER and the plain-transformer baseline with the same budget and compare them on the test split')
    .option('--out <dir>', 'where both runs and experiment.json go', 'runs/experiment')
    .action(async (opts: { out: string }) => {
      await experimentCommand(configFrom(program.opts().config), opts);
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

  bench
    .command('step')
    .description('time full training steps on the configured data and model, with the GPU time per kernel')
    .option('--steps <n>', 'timed steps', (v) => Number.parseInt(v, 10), 5)
    .option('--baseline', 'the plain-transformer baseline')
    .option('--json', 'print JSON')
    .action(async (opts: { steps: number; baseline?: boolean; json?: boolean }) => {
      await benchStep(configFrom(program.opts().config), opts);
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
