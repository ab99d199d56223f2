import { PantherError } from '../errors.js';
import { ATTR_NONE, ATTR_UNK, ATTRIBUTE_SPECIALS, EXTRA_PREFIX, WEEKPARTS, type AttributeVocab } from './attributes.js';
import type { ItemInfo } from './events.js';

/**
 * Attribute combinations, the second half of structured tokenization. The fields a
 * composite token can combine are the input attributes plus `weekpart` (weekday / weekend,
 * derived from the weekday). A combination of value ids is one exact integer (mixed radix
 * over the fields the back-off levels use), so counting and lookup are cheap even for the
 * 1.75M handbook events; it decodes back to named values for saving and for names.
 */
export const WEEKPART = 'weekpart';
const WEEKPART_VALUES = [...ATTRIBUTE_SPECIALS, ...WEEKPARTS];
const DISPLAY_ORDER = ['item', 'type', 'hour', WEEKPART, 'weekday', 'gap', 'channel', 'amount', 'category'];

export class CombinationSpace {
  /** Attribute names, then weekpart; ids arrays passed to `key` follow this order. */
  readonly fields: string[];
  /** Per back-off level (finest first): field indices. */
  readonly levels: number[][];
  private readonly index: Map<string, number>;
  private readonly strides: number[];
  private readonly decodeOrder: { stride: number; field: number }[];

  constructor(private readonly attributes: AttributeVocab[], levels: string[][]) {
    this.fields = [...attributes.map((a) => a.name), WEEKPART];
    this.index = new Map(this.fields.map((n, i) => [n, i]));
    this.levels = levels.map((level, li) =>
      level
        .map((f) => {
          const i = this.index.get(f);
          if (i === undefined) {
            throw new PantherError('E_CONFIG', `unknown field ${JSON.stringify(f)} (fields: ${this.fields.join(', ')})`, `data.tokenizer.levels.${li}`);
          }
          return i;
        })
        .sort((a, b) => a - b),
    );
    const sizes = [...attributes.map((a) => a.values.length), WEEKPART_VALUES.length];
    const used = [...new Set(this.levels.flat())].sort((a, b) => a - b);
    this.strides = sizes.map(() => 0);
    let stride = 1;
    for (const i of used) {
      this.strides[i] = stride;
      stride *= sizes[i];
    }
    if (stride > Number.MAX_SAFE_INTEGER) {
      throw new PantherError('E_CONFIG', 'the levels combine too many large vocabularies; lower maxAttributeVocab or use fewer fields per level', 'data.tokenizer.levels');
    }
    this.decodeOrder = used.map((field) => ({ stride: this.strides[field], field })).reverse();
  }

  /** Position of the derived weekpart id in an ids array. */
  get weekpartIndex(): number {
    return this.attributes.length;
  }

  /**
   * The combination of a level as one integer, or -1 when it says nothing (no field with a
   * known value: all absent or <unk>). Absent fields are left out, so levels that differ
   * only by absent fields give the same combination, hence the same token.
   */
  key(ids: Int32Array, level: number): number {
    const fields = this.levels[level];
    let key = 0;
    let known = 0;
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k];
      const id = ids[f];
      if (id === ATTR_NONE) continue;
      if (id !== ATTR_UNK) known++;
      key += id * this.strides[f];
    }
    return known === 0 ? -1 : key;
  }

  /** How many fields a combination pins down (coarser = fewer). */
  width(key: number): number {
    return this.decode(key).length;
  }

  /** Named values of a combination: { type: 'payment', amount: '20-50' }. */
  fieldsOf(key: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [f, id] of this.decode(key)) out[this.fields[f]] = this.valueName(f, id);
    return out;
  }

  /** Inverse of `fieldsOf` (loading a saved vocabulary). */
  keyOf(values: Record<string, string>): number {
    let key = 0;
    for (const [name, value] of Object.entries(values)) {
      const f = this.index.get(name);
      const id = f === undefined ? -1 : this.valueId(f, value);
      if (f === undefined || id < 0 || this.strides[f] === 0) {
        throw new PantherError('E_DATA', `token field ${name}=${JSON.stringify(value)} does not fit this tokenizer's vocabularies or levels`, 'tokenizer');
      }
      key += id * this.strides[f];
    }
    return key;
  }

  /** "payment / evening / card / 20-50 / cinema": the values in display order. */
  nameOf(values: Record<string, string>, itemNoun: string, items?: Map<string, ItemInfo>): string {
    const keys = Object.keys(values).sort((a, b) => displayRank(a) - displayRank(b) || (a < b ? -1 : 1));
    return keys
      .map((k) => {
        const v = values[k];
        const bare = k.startsWith(EXTRA_PREFIX) ? k.slice(EXTRA_PREFIX.length) : k;
        if (v === '<unk>') return `other ${bare}`;
        if (k === 'item') return items?.get(v)?.name ?? `${itemNoun} ${v}`;
        if (k === 'gap') return v === 'first' ? 'first event' : `gap ${v}`;
        if (k !== bare) return `${bare} ${v}`;
        return v;
      })
      .join(' / ');
  }

  /** (field, value id) pairs of a key, in field order. */
  private decode(key: number): [number, number][] {
    const pairs: [number, number][] = [];
    let rest = key;
    for (const { stride, field } of this.decodeOrder) {
      const id = Math.floor(rest / stride);
      rest -= id * stride;
      if (id !== 0) pairs.push([field, id]);
    }
    return pairs.reverse();
  }

  private valueName(f: number, id: number): string {
    return f < this.attributes.length ? this.attributes[f].values[id] : WEEKPART_VALUES[id];
  }

  private valueId(f: number, value: string): number {
    if (f < this.attributes.length) return this.attributes[f].index.get(value) ?? -1;
    return (WEEKPART_VALUES as readonly string[]).indexOf(value);
  }
}

function displayRank(field: string): number {
  const i = DISPLAY_ORDER.indexOf(field);
  return i < 0 ? DISPLAY_ORDER.length : i;
}
