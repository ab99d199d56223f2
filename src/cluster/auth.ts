import { createCipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PantherError } from '../errors.js';

/**
 * Challenge-response authentication with a shared secret (HMAC-SHA256). The listening side
 * sends a fresh random nonce; the connecting side answers with its own nonce and
 * HMAC(secret, context) over both nonces, the purpose and the identity it claims; the
 * listener answers with its own proof over the same nonces, so both ends know the other
 * holds the secret. Fresh nonces on both sides make a recorded exchange useless.
 */

export const MIN_SECRET_LENGTH = 16;

export interface ProofContext {
  purpose: 'control' | 'ring';
  /** Who listens (coordinator, or the worker whose ring port this is). */
  server: string;
  /** Who connects and what it claims to be. */
  client: string;
  /** Ring generation the connection is for (0 on the control channel). */
  gen: number;
  serverNonce: Uint8Array;
  clientNonce: Uint8Array;
}

/** HMAC-SHA256(secret) over a label and the whole context: proofs and frame keys alike. */
function contextMac(secret: string, label: string, c: ProofContext): Buffer {
  const h = createHmac('sha256', secret);
  h.update(`${label}|${c.purpose}|${c.server}|${c.client}|${c.gen}|`);
  h.update(c.serverNonce);
  h.update('|');
  h.update(c.clientNonce);
  return h.digest();
}

export const clientProof = (secret: string, c: ProofContext): Buffer => contextMac(secret, 'panther-auth-1|client', c);
export const serverProof = (secret: string, c: ProofContext): Buffer => contextMac(secret, 'panther-auth-1|server', c);

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.byteLength === expected.byteLength && timingSafeEqual(expected, got);
}

/** Bytes of the tag every frame carries after the handshake. */
export const TAG_BYTES = 16;

/**
 * Integrity of every frame after the handshake, on ws as on wss: each direction of a
 * connection has its own key, derived from the secret and both fresh nonces (so it exists
 * only for this connection), and each frame carries a Poly1305 tag (ChaCha20-Poly1305 with
 * the frame as associated data and no plaintext) over its bytes and its sequence number in
 * that direction. A frame changed, injected, dropped, replayed or reordered by someone
 * without the secret fails the check. Nonces never repeat under a key: the sequence number
 * is the nonce.
 */
export class FrameSeal {
  private sent = 0n;
  private received = 0n;

  constructor(private readonly sendKey: Buffer, private readonly receiveKey: Buffer) {}

  private static tag(key: Buffer, seq: bigint, frame: Uint8Array): Buffer {
    const nonce = Buffer.alloc(12);
    nonce.writeBigUInt64LE(seq, 4);
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
    c.setAAD(frame, { plaintextLength: 0 });
    c.final();
    return c.getAuthTag();
  }

  /** The frame followed by its tag. */
  seal(frame: Buffer): Buffer {
    return Buffer.concat([frame, FrameSeal.tag(this.sendKey, this.sent++, frame)]);
  }

  /** Seals a frame built with TAG_BYTES of room at its end: the tag goes there, nothing is copied. */
  sealInPlace(buffer: Buffer): Buffer {
    if (buffer.byteLength < TAG_BYTES) throw new RangeError(`a ${buffer.byteLength}-byte buffer has no room for a ${TAG_BYTES}-byte tag`);
    const frame = buffer.subarray(0, buffer.byteLength - TAG_BYTES);
    FrameSeal.tag(this.sendKey, this.sent++, frame).copy(buffer, frame.byteLength);
    return buffer;
  }

  /** The frame without its tag, or null when the tag does not match (nothing is consumed then). */
  open(sealed: Buffer): Buffer | null {
    if (sealed.byteLength < TAG_BYTES) return null;
    const frame = sealed.subarray(0, sealed.byteLength - TAG_BYTES);
    const expected = FrameSeal.tag(this.receiveKey, this.received, frame);
    if (!timingSafeEqual(expected, sealed.subarray(frame.byteLength))) return null;
    this.received++;
    return frame;
  }
}

/** The seal of one end of an authenticated connection (`side`: which end this is). */
export function frameSeal(secret: string, side: 'client' | 'server', c: ProofContext): FrameSeal {
  const up = contextMac(secret, 'panther-frames-1|client-to-server', c);
  const down = contextMac(secret, 'panther-frames-1|server-to-client', c);
  return side === 'client' ? new FrameSeal(up, down) : new FrameSeal(down, up);
}

export function newNonce(): Buffer {
  return randomBytes(32);
}

/** The shared secret from the environment variable the config names (never from the file). */
export function readSecret(envName: string, env: NodeJS.ProcessEnv = process.env): string {
  const secret = env[envName];
  if (!secret) {
    throw new PantherError('E_AUTH', `the shared cluster secret is not set: export ${envName}=<at least ${MIN_SECRET_LENGTH} random characters> on the coordinator and every worker`, `env ${envName}`);
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new PantherError('E_AUTH', `the shared cluster secret has ${secret.length} characters; use at least ${MIN_SECRET_LENGTH}`, `env ${envName}`);
  }
  return secret;
}

/** A random secret for a run that starts its own workers. */
export function randomSecret(): string {
  return randomBytes(24).toString('base64url');
}
