import { createHash } from 'node:crypto';
import type { HostTrainingState } from '../train/checkpoint.js';
import type { Channel } from './channel.js';
import { bytesOf, ProtocolError, typedView, type Message } from './protocol.js';
import type { ManifestEntry } from './replica.js';

/**
 * Moving a replica's parameters and optimizer state over a channel (checkpoints pull it
 * from one replica; resume pushes it to all): each tensor in parts of at most `partBytes`,
 * then an end message with the counts and a checksum. The receiver checks every part
 * against the model's manifest, so a tensor of the wrong shape is a protocol violation.
 */

/** sha256 over each parameter's name and bytes in manifest order (what replicas compare). */
export function parameterChecksum(entries: Iterable<[string, Float32Array]>): string {
  const h = createHash('sha256');
  for (const [name, data] of entries) {
    h.update(name);
    h.update(bytesOf(data));
  }
  return h.digest('hex');
}

export function hostChecksum(host: HostTrainingState, manifest: readonly ManifestEntry[]): string {
  return parameterChecksum(manifest.map((e) => [e.name, host.params.get(e.name)!.data]));
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function sendState(channel: Channel, request: number, host: HostTrainingState, manifest: readonly ManifestEntry[], partBytes: number): void {
  const per = Math.max(1, Math.floor(partBytes / 4));
  let parts = 0;
  const send = (name: string, kind: 'param' | 'm' | 'v', data: Float32Array) => {
    let offset = 0;
    do {
      channel.send({ t: 'state-part', request, name, kind, offset, total: data.length, data: bytesOf(data.subarray(offset, offset + per)) });
      parts++;
      offset += per;
    } while (offset < data.length);
  };
  for (const e of manifest) {
    send(e.name, 'param', host.params.get(e.name)!.data);
    if (host.optimizer) {
      const s = host.optimizer.states.get(e.name)!;
      send(e.name, 'm', s.m);
      send(e.name, 'v', s.v);
    }
  }
  channel.send({
    t: 'state-end', request, parts,
    optimizerSteps: host.optimizer ? host.optimizer.stepCount : null,
    paramSteps: host.optimizer ? bytesOf(Int32Array.from(manifest, (e) => host.optimizer!.states.get(e.name)!.step)) : null,
    checksum: hostChecksum(host, manifest),
  });
}

/** Collects the parts of one transfer and checks them against the manifest. */
export class StateAssembler {
  private readonly arrays = new Map<string, { data: Float32Array; filled: number }>();
  private readonly index: Map<string, ManifestEntry>;
  private parts = 0;

  constructor(readonly request: number, private readonly manifest: readonly ManifestEntry[], private readonly where: string) {
    this.index = new Map(manifest.map((e) => [e.name, e]));
  }

  add(m: Message<'state-part'>): void {
    if (m.request !== this.request) throw new ProtocolError(`state part for request ${m.request}, expected ${this.request}`, this.where);
    const entry = this.index.get(m.name);
    if (!entry) throw new ProtocolError(`state part for '${m.name.slice(0, 80)}', which the model does not have`, this.where);
    const size = sizeOf(entry.shape);
    if (m.total !== size) throw new ProtocolError(`state part for '${m.name}' says ${m.total} values, the model's [${entry.shape}] has ${size}`, this.where);
    const n = m.data.byteLength / 4;
    if (m.offset + n > size) throw new ProtocolError(`state part for '${m.name}' covers [${m.offset}, ${m.offset + n}) of ${size} values`, this.where);
    const k = `${m.kind}:${m.name}`;
    let slot = this.arrays.get(k);
    if (!slot) this.arrays.set(k, (slot = { data: new Float32Array(size), filled: 0 }));
    slot.data.set(typedView(m.data, Float32Array, this.where), m.offset);
    slot.filled += n;
    this.parts++;
  }

  /** The state, once the end message confirms every part arrived and the checksum matches. */
  finish(end: Message<'state-end'>): HostTrainingState {
    if (end.parts !== this.parts) throw new ProtocolError(`state transfer announced ${end.parts} parts, ${this.parts} arrived`, this.where);
    const withOptimizer = end.optimizerSteps !== null;
    const steps = end.paramSteps ? typedView(end.paramSteps, Int32Array, this.where) : null;
    if (withOptimizer && (!steps || steps.length !== this.manifest.length)) {
      throw new ProtocolError(`optimizer state needs ${this.manifest.length} per-parameter step counts`, this.where);
    }
    const take = (kind: string, e: ManifestEntry) => {
      const slot = this.arrays.get(`${kind}:${e.name}`);
      const size = sizeOf(e.shape);
      if (!slot || slot.filled !== size) throw new ProtocolError(`state of '${e.name}' (${kind}) is incomplete: ${slot?.filled ?? 0} of ${size} values`, this.where);
      return slot.data;
    };
    const host: HostTrainingState = { params: new Map(), optimizer: withOptimizer ? { stepCount: end.optimizerSteps!, states: new Map() } : null };
    this.manifest.forEach((e, i) => {
      host.params.set(e.name, { data: take('param', e), shape: [...e.shape] });
      if (withOptimizer) host.optimizer!.states.set(e.name, { m: take('m', e), v: take('v', e), step: steps![i] });
    });
    const sum = hostChecksum(host, this.manifest);
    if (sum !== end.checksum) throw new ProtocolError(`state checksum ${sum.slice(0, 12)} does not match the sender's ${end.checksum.slice(0, 12)}`, this.where);
    return host;
  }
}
