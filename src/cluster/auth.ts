import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
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

function mac(secret: string, side: 'client' | 'server', c: ProofContext): Buffer {
  const h = createHmac('sha256', secret);
  h.update(`panther-auth-1|${side}|${c.purpose}|${c.server}|${c.client}|${c.gen}|`);
  h.update(c.serverNonce);
  h.update('|');
  h.update(c.clientNonce);
  return h.digest();
}

export const clientProof = (secret: string, c: ProofContext): Buffer => mac(secret, 'client', c);
export const serverProof = (secret: string, c: ProofContext): Buffer => mac(secret, 'server', c);

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.byteLength === expected.byteLength && timingSafeEqual(expected, got);
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
