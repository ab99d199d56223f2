import { writeFileSync } from 'node:fs';
import type { ClusterConfig } from '../config/schema.js';
import { gpuOptionsFrom } from '../config/gpu.js';
import { Gpu } from '../gpu/runtime.js';
import { kernelCases } from '../bench/cases.js';
import { timeCase } from '../bench/harness.js';
import { loadTfjsPeer, type Peer } from '../bench/peer.js';

export interface BenchRow {
  kernel: string;
  shape: string;
  gpuMs: number | null;
  wallMs: number;
  gflops: number | null;
  gbps: number | null;
  peer?: string;
  peerWallMs?: number;
  /** peer wall time / our wall time: above 1 means we are faster. */
  speedup?: number;
}

function parseMatmulShape(shape: string): [number, number, number, number] | null {
  const m = /^(\d+)x(\d+)x(\d+)x(\d+)$/.exec(shape);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] : null;
}

function parseAttentionShape(shape: string): [number, number, number, number] | null {
  const m = /^B(\d+) H(\d+) L(\d+) D(\d+)$/.exec(shape);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] : null;
}

async function peerMs(peer: Peer, kernel: string, shape: string, reps: number): Promise<number | undefined> {
  if (kernel === 'matmul') {
    const s = parseMatmulShape(shape);
    return s ? peer.matmulMs(...s, reps) : undefined;
  }
  if (kernel === 'attention') {
    const s = parseAttentionShape(shape);
    return s ? peer.attentionMs(...s, reps) : undefined;
  }
  return undefined;
}

const fmt = (v: number | null | undefined, digits = 2) => (v === null || v === undefined ? '-' : v.toFixed(digits));

export async function benchKernels(
  config: ClusterConfig,
  opts: { json?: string; reps: number; only?: string; peer: boolean },
): Promise<number> {
  const gpu = await Gpu.create(gpuOptionsFrom(config.gpu));
  const only = opts.only?.split(',').map((s) => s.trim());
  const rows: BenchRow[] = [];
  let peer: Peer | null = null;
  try {
    if (opts.peer) peer = await loadTfjsPeer(gpu);
    process.stderr.write(`adapter: ${gpu.description.description || gpu.description.device} (timestamps: ${gpu.hasTimestamps ? 'yes' : 'no'})\n`);
    for (const c of kernelCases()) {
      if (only && !only.includes(c.kernel)) continue;
      const instance = c.setup(gpu);
      const t = await timeCase(gpu, instance.run, opts.reps);
      instance.dispose();
      const ms = t.gpuMs ?? t.wallMs;
      const row: BenchRow = {
        kernel: c.kernel,
        shape: c.shape,
        gpuMs: t.gpuMs,
        wallMs: t.wallMs,
        gflops: c.flops ? c.flops / ms / 1e6 : null,
        gbps: c.bytes ? c.bytes / ms / 1e6 : null,
      };
      if (peer && !c.shape.includes('ᵀ')) {
        const p = await peerMs(peer, c.kernel, c.shape, Math.max(3, Math.ceil(opts.reps / 2)));
        if (p !== undefined) {
          row.peer = peer.name;
          row.peerWallMs = p;
          row.speedup = p / t.wallMs;
        }
      }
      rows.push(row);
      process.stderr.write(`  ${row.kernel} ${row.shape}: ${fmt(ms)} ms\n`);
    }
  } finally {
    peer?.dispose();
    gpu.destroy();
  }
  const header = ['kernel', 'shape', 'gpu ms', 'wall ms', 'GFLOP/s', 'GB/s', 'peer wall ms', 'vs peer'];
  const table = rows.map((r) => [
    r.kernel, r.shape, fmt(r.gpuMs, 3), fmt(r.wallMs, 3), fmt(r.gflops), fmt(r.gbps),
    fmt(r.peerWallMs, 3), r.speedup ? `${r.speedup.toFixed(2)}x` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  process.stdout.write(`${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${table.map(line).join('\n')}\n`);
  const json = JSON.stringify({ adapter: gpu.description, timestamps: gpu.hasTimestamps, rows }, null, 2);
  if (opts.json) writeFileSync(opts.json, `${json}\n`);
  else process.stdout.write(`${json}\n`);
  return 0;
}
