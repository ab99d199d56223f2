import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { loadClusterConfig, defaultClusterConfig } from '../config/load.js';
import type { ClusterConfig } from '../config/schema.js';
import { PantherError } from '../errors.js';
import { doctor } from './doctor.js';
import { benchKernels } from './bench-kernels.js';
import { benchStep } from './bench-step.js';
import { benchAllreduce, coordinatorCommand, runPretraining, workerCommand } from './cluster-commands.js';
import { evalCommand, experimentCommand, inspectCommand, tokenizeCommand } from './model-commands.js';
import { benchServeCommand, embedCommand, fraudEvalCommand, jobsCommand, jobWorkerCommand, merchantsCommand, serveCommand } from './serve-commands.js';

interface GlobalOptions {
  config?: string;
  set: string[];
}

function configFrom(o: GlobalOptions): ClusterConfig {
  if (o.config) return loadClusterConfig(o.config, o.set);
  return existsSync('cluster.yaml') ? loadClusterConfig('cluster.yaml', o.set) : defaultClusterConfig(o.set);
}

export function buildCli(): Command {
  const program = new Command('panther')
    .description('Distributed WebGPU pretraining of generative models of user behaviour')
    .option('-c, --config <file>', 'cluster configuration (default: ./cluster.yaml when present)')
    .option('--set <key=value>', 'override a configuration field with a YAML value, e.g. --set model.sprm.prototypes=0 (repeatable)',
      (v: string, all: string[]) => [...all, v], [] as string[])
    .showHelpAfterError();
  const config = () => configFrom(program.opts<GlobalOptions>());

  program
    .command('doctor')
    .description('show the WebGPU adapter Dawn picked, its features and limits, and whether Redis is reachable')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await doctor(config(), Boolean(opts.json));
    });

  program
    .command('pretrain')
    .description('pretrain on this machine: progress, validation with early stopping, checkpoints, final metrics')
    .option('--baseline', 'train the plain-transformer baseline (SPRM and profile fusion off)')
    .option('--resume', 'continue from the last checkpoint in the checkpoint folder')
    .option('--checkpoint-dir <dir>', 'where checkpoints, metrics and curves go (default: train.checkpointDir)')
    .option('--max-steps <n>', 'stop after this many steps', (v) => Number.parseInt(v, 10))
    .action(async (opts: { baseline?: boolean; resume?: boolean; checkpointDir?: string; maxSteps?: number }) => {
      await runPretraining(config(), opts);
    });

  program
    .command('coordinator')
    .description('coordinate data-parallel pretraining: wait for cluster.workers workers, drive the steps, checkpoint')
    .option('--resume', 'continue from the last checkpoint in the checkpoint folder')
    .option('--checkpoint-dir <dir>', 'where checkpoints, metrics and curves go (default: train.checkpointDir)')
    .option('--max-steps <n>', 'stop after this many steps', (v) => Number.parseInt(v, 10))
    .option('--host <host>', 'listen address (default: cluster.coordinator.host)')
    .option('--port <port>', 'listen port (default: cluster.coordinator.port)', (v) => Number.parseInt(v, 10))
    .action(async (opts: { resume?: boolean; checkpointDir?: string; maxSteps?: number; host?: string; port?: number }) => {
      await coordinatorCommand(config(), opts);
    });

  program
    .command('eval')
    .description('rank held-out events against the full vocabulary: HR@1, HR@10, NDCG@10, HR@50, for a model and a baseline')
    .requiredOption('--checkpoint <file>', 'the model to evaluate')
    .option('--baseline-checkpoint <file>', 'a baseline to compare with (relative gains are printed)')
    .addOption(new Option('--split <split>', 'held-out events to rank').choices(['valid', 'test']).default('test'))
    .option('--json <file>', 'also write the results as JSON')
    .action(async (opts: { checkpoint: string; baselineCheckpoint?: string; split: 'valid' | 'test'; json?: string }) => {
      await evalCommand(config(), opts);
    });

  program
    .command('inspect')
    .description("a user's prototype weights (which habits they match) and the likeliest next events")
    .requiredOption('--user <id>', 'user id as in the data')
    .option('--checkpoint <file>', 'model checkpoint', 'runs/latest/best.safetensors')
    .option('--top <n>', 'next events to list', (v) => Number.parseInt(v, 10), 10)
    .action(async (opts: { user: string; checkpoint: string; top: number }) => {
      await inspectCommand(config(), opts);
    });

  program
    .command('tokenize')
    .description('fit (or load from the cache) the structured tokenizer and show how events become tokens')
    .option('--explain', "show a user's history as token names (with --user)")
    .option('--user <id>', 'user id as in the data')
    .option('--limit <n>', 'last N events of the user', (v) => Number.parseInt(v, 10), 30)
    .action(async (opts: { explain?: boolean; user?: string; limit: number }) => {
      await tokenizeCommand(config(), { user: opts.explain || opts.user ? opts.user : undefined, limit: opts.limit });
    });

  program
    .command('experiment')
    .description('train PANTHER and the plain-transformer baseline with the same budget and compare them on the test split')
    .option('--out <dir>', 'where both runs and experiment.json go', 'runs/experiment')
    .option('--reuse', 'keep runs that finished in the output folder (same model config) instead of training them again')
    .option('--max-steps <n>', 'the same step budget for both runs', (v) => Number.parseInt(v, 10))
    .action(async (opts: { out: string; reuse?: boolean; maxSteps?: number }) => {
      await experimentCommand(config(), opts);
    });

  const int = (v: string) => Number.parseInt(v, 10);
  program
    .command('embed')
    .description('enqueue an embedding regeneration (BullMQ flow: one job per user shard, a parent that flips the version)')
    .requiredOption('--checkpoint <file>', 'the pretrained model')
    .option('--users <file|all>', 'user ids, one per line, or all users of the data', 'all')
    .option('--before <date>', 'read only events before this time (ISO)')
    .option('--wait', 'run the jobs in this process and wait (always so without a configured Redis)')
    .action(async (opts: { checkpoint: string; users: string; before?: string; wait?: boolean }) => {
      await embedCommand(config(), opts);
    });

  program
    .command('worker')
    .description('a worker process; --jobs: take embedding regeneration jobs from the queue')
    .option('--jobs', 'consume embedding regeneration jobs')
    .option('--coordinator <url>', 'join a pretraining coordinator at ws://HOST:PORT (or wss://)')
    .option('--name <name>', 'name in the coordinator\'s logs')
    .option('--secret-env <var>', 'environment variable holding the cluster secret', 'PANTHER_CLUSTER_SECRET')
    .option('--ca <file>', 'PEM certificate to trust for wss (a self-signed coordinator certificate)')
    .option('--listen <host>', 'address of this worker\'s ring port', '127.0.0.1')
    .option('--advertise <host>', 'address ring neighbours connect to (default: --listen)')
    .option('--tls-cert <file>', "PEM certificate of this worker's ring port (clusters with cluster.tls)")
    .option('--tls-key <file>', "PEM private key of this worker's ring port")
    .action(async (opts: { jobs?: boolean; coordinator?: string; name?: string; secretEnv?: string; ca?: string; listen?: string; advertise?: string; tlsCert?: string; tlsKey?: string }) => {
      if (opts.coordinator) return workerCommand({ ...opts, coordinator: opts.coordinator });
      if (!opts.jobs) throw new PantherError('E_ARGUMENT', 'say what the worker does: --coordinator URL or --jobs', 'worker');
      await jobWorkerCommand(config());
    });

  program
    .command('jobs')
    .description('embedding regenerations: shards done, users done, users/s (with --watch, progress bars until they finish)')
    .option('--watch', 'follow the running ones with progress bars')
    .option('--limit <n>', 'versions to list', int, 10)
    .action(async (opts: { watch?: boolean; limit: number }) => {
      await jobsCommand(config(), opts);
    });

  program
    .command('serve')
    .description('the HTTP fraud scorer over the cached embeddings and behaviour priors')
    .option('--model <file>', 'discriminative model (panther fraud-eval --save-model)')
    .option('--host <host>', 'address to listen on')
    .option('--port <n>', 'port (0: any free one)', int)
    .option('--checkpoint <file>', 'without a configured Redis: embed this model into a private one first')
    .action(async (opts: { model?: string; host?: string; port?: number; checkpoint?: string }) => {
      await serveCommand(config(), opts);
    });

  program
    .command('fraud-eval')
    .description("the handbook protocol: (a) baseline features vs (b) plus the behaviour prior; AUC, AP, CP@100, recall at 0.1% / 1%, per scenario")
    .option('--checkpoint <file>', 'pretrained model for (b) (pretrained on this data section: no look-ahead)')
    .addOption(new Option('--prior <mode>', 'prior before each event (fresh) or as of the previous midnight (daily)').choices(['fresh', 'daily']).default('fresh'))
    .option('--lag-days <n>', 'with --prior daily: the prior as of N days earlier still (older than a recent compromise)', int, 0)
    .option('--components <n>', 'PCA components of the embedding used as features', int, 8)
    .option('--min-context <n>', 'events of history each prior reads at least (default half the window; the window length reproduces the cached prior exactly, slower)', int)
    .option('--rounds <n>', 'boosting rounds', int)
    .option('--seeds <n>', 'train (a) and (b) with tree-ensemble seeds 1..N and report each, their mean and range', int)
    .option('--save-model <file>', 'write the scoring model for panther serve')
    .option('--json <file>', 'also write the results as JSON')
    .action(async (opts: { checkpoint?: string; prior: 'fresh' | 'daily'; lagDays: number; components: number; minContext?: number; rounds?: number; seeds?: number; saveModel?: string; json?: string }) => {
      await fraudEvalCommand(config(), opts);
    });

  program
    .command('merchants')
    .description("rank terminals per day by how much their customers' events deviate from their own priors; precision@10/50 against the compromised ones")
    .requiredOption('--checkpoint <file>', 'pretrained model')
    .option('--from <date>', 'first day (default: the test window)')
    .option('--days <n>', 'days to rank', int)
    .option('--quantile <q>', 'quantile of the deviations', Number.parseFloat, 0.9)
    .option('--min-events <n>', 'events (or customers) a terminal needs that day', int, 2)
    .option('--lookback-days <n>', 'days of visits (visitors ranking) and of labels (label-rate baseline)', int, 7)
    .option('--json <file>', 'also write the results as JSON')
    .action(async (opts: { checkpoint: string; from?: string; days?: number; quantile: number; minEvents: number; lookbackDays: number; json?: string }) => {
      await merchantsCommand(config(), opts);
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
      process.exitCode = await benchKernels(config(), opts);
    });

  bench
    .command('allreduce')
    .description('all-reduce bus bandwidth of 4 local workers next to raw loopback WebSocket throughput; steps/s and events/s on 1, 2, 4 workers')
    .option('--workers <n>', 'workers in the all-reduce ring', (v) => Number.parseInt(v, 10), 4)
    .option('--mib <n>', 'MiB all-reduced per repetition', (v) => Number.parseFloat(v), 16)
    .option('--reps <n>', 'timed repetitions', (v) => Number.parseInt(v, 10), 5)
    .option('--bucket-mib <n>', 'bucket size (default: cluster.bucketBytes)', (v) => Number.parseFloat(v))
    .option('--train <list>', 'worker counts of the training runs ("" to skip)', '1,2,4')
    .option('--steps <n>', 'steps per training run', (v) => Number.parseInt(v, 10), 20)
    .addOption(new Option('--no-recovery', 'skip timing the recovery from a killed worker'))
    .action(async (opts: { workers: number; mib: number; reps: number; bucketMib?: number; train: string; steps: number; recovery: boolean }) => {
      const train = opts.train.split(',').filter(Boolean).map((v) => Number.parseInt(v, 10));
      await benchAllreduce(config(), {
        workers: opts.workers, bytes: opts.mib * 2 ** 20, reps: opts.reps, bucketBytes: opts.bucketMib ? opts.bucketMib * 2 ** 20 : undefined, train, steps: opts.steps, recovery: opts.recovery,
      });
    });

  bench
    .command('step')
    .description('time full training steps on the configured data and model, with the GPU time per kernel')
    .option('--steps <n>', 'timed steps', (v) => Number.parseInt(v, 10), 5)
    .option('--baseline', 'the plain-transformer baseline')
    .option('--json', 'print JSON')
    .action(async (opts: { steps: number; baseline?: boolean; json?: boolean }) => {
      await benchStep(config(), opts);
    });

  bench
    .command('serve')
    .description('latency of panther serve at a fixed request rate, with a real HTTP load generator on loopback (p50/p99)')
    .option('--model <file>', 'discriminative model (panther fraud-eval --save-model)')
    .option('--rate <n>', 'requests per second', int, 1000)
    .option('--seconds <n>', 'measured seconds', int, 10)
    .option('--connections <n>', 'HTTP connections', int, 16)
    .option('--json <file>', 'also write the figures as JSON')
    .action(async (opts: { model?: string; rate: number; seconds: number; connections: number; json?: string }) => {
      await benchServeCommand(config(), { ...opts, configPath: program.opts<GlobalOptions>().config, overrides: program.opts<GlobalOptions>().set });
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
