/**
 * Errors carry a stable code, what went wrong, and where (a file and line, a field path,
 * a message type or an op name), so callers can react to the code and people can act on
 * the message.
 */
export type ErrorCode =
  | 'E_NO_ADAPTER'
  | 'E_DEVICE_LOST'
  | 'E_SHAPE'
  | 'E_DTYPE'
  | 'E_LIMIT'
  | 'E_BUFFER_TOO_LARGE'
  | 'E_KERNEL'
  | 'E_DISPOSED'
  | 'E_AUTOGRAD'
  | 'E_CONFIG'
  | 'E_ARGUMENT'
  | 'E_DATA'
  | 'E_PROTOCOL'
  | 'E_AUTH'
  | 'E_CLUSTER'
  | 'E_DIVERGED'
  | 'E_REQUEST'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_NO_VERSION'
  | 'E_JOB';

export class PantherError extends Error {
  readonly code: ErrorCode;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, where?: string) {
    super(where ? `${where}: ${message}` : message);
    this.name = 'PantherError';
    this.code = code;
    this.where = where;
  }
}

export function fail(code: ErrorCode, message: string, where?: string): never {
  throw new PantherError(code, message, where);
}
