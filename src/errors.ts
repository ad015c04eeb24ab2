/**
 * Errors thrown by gyre. Every error is a `GyreError` with a stable `code`; messages name the
 * argument, the expected value and the value received.
 */

/** Stable codes of {@link GyreError}. */
export type GyreErrorCode =
  | 'GYRE_INVALID_ARGUMENT'
  | 'GYRE_SHAPE_MISMATCH'
  | 'GYRE_MISSING_ARGUMENT'
  | 'GYRE_NATIVE_UNAVAILABLE'
  | 'GYRE_NON_FINITE'
  | 'GYRE_BUSY'
  | 'GYRE_ABORTED'
  | 'GYRE_BAD_FILE'
  | 'GYRE_FILE'
  | 'GYRE_DISPOSED'
  | 'GYRE_INTERNAL';

const CODES: Record<GyreErrorCode, true> = {
  GYRE_INVALID_ARGUMENT: true,
  GYRE_SHAPE_MISMATCH: true,
  GYRE_MISSING_ARGUMENT: true,
  GYRE_NATIVE_UNAVAILABLE: true,
  GYRE_NON_FINITE: true,
  GYRE_BUSY: true,
  GYRE_ABORTED: true,
  GYRE_BAD_FILE: true,
  GYRE_FILE: true,
  GYRE_DISPOSED: true,
  GYRE_INTERNAL: true,
};

/** Every {@link GyreErrorCode}. */
export const gyreErrorCodes: readonly GyreErrorCode[] = Object.freeze(Object.keys(CODES) as GyreErrorCode[]);

/** Base class of every error gyre throws. `code` is stable across versions. */
export class GyreError extends Error {
  readonly code: GyreErrorCode;

  constructor(code: GyreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An option or size has a value outside its domain (wrong type, not a positive integer, ...). */
export class InvalidArgumentError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_INVALID_ARGUMENT', message, options);
  }
}

/** An array's length or shape disagrees with the sizes given or with another array. */
export class ShapeMismatchError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_SHAPE_MISMATCH', message, options);
  }
}

/** A required argument, such as a weight tensor, is absent. */
export class MissingArgumentError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_MISSING_ARGUMENT', message, options);
  }
}

/** Training produced a NaN or infinite loss or gradient; the model kept the weights of the last good batch. */
export class NonFiniteError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_NON_FINITE', message, options);
  }
}

/** The model is training; the call must wait for fit() to settle. */
export class BusyError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_BUSY', message, options);
  }
}

/** A model file or buffer is malformed or does not match its configuration. */
export class BadFileError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_BAD_FILE', message, options);
  }
}

/**
 * A file could not be read or written (missing, a directory, no permission, disk full). The
 * message names the path and the reason; `cause` is Node's error (`code` `ENOENT`, ...).
 * A file that was read but is malformed is a {@link BadFileError}.
 */
export class FileError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_FILE', message, options);
  }
}

/** The model was disposed: its native memory is gone. */
export class DisposedError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_DISPOSED', message, options);
  }
}

/** The native addon could not be loaded for this platform. */
export class NativeUnavailableError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_NATIVE_UNAVAILABLE', message, options);
  }
}

/** A failure inside gyre that is not the caller's input (a caught native panic, for one). */
export class InternalError extends GyreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GYRE_INTERNAL', message, options);
  }
}

/** The GyreError class of each code the native addon sets. */
const byCode: Record<string, new (message: string, options?: { cause?: unknown }) => GyreError> = {
  GYRE_INVALID_ARGUMENT: InvalidArgumentError,
  GYRE_SHAPE_MISMATCH: ShapeMismatchError,
  GYRE_MISSING_ARGUMENT: MissingArgumentError,
  GYRE_NON_FINITE: NonFiniteError,
  GYRE_BUSY: BusyError,
  GYRE_BAD_FILE: BadFileError,
  GYRE_DISPOSED: DisposedError,
  GYRE_INTERNAL: InternalError,
};

/**
 * @internal
 * Turns an error thrown by the native addon into a {@link GyreError}. The addon's errors carry
 * gyre's code as their `code` property (`GYRE_SHAPE_MISMATCH`, ...) and the message alone; a
 * failed argument conversion of napi-rs (`code` `InvalidArg`, `NumberExpected`, ...) becomes an
 * {@link InvalidArgumentError}, anything else (a panic napi-rs caught) an {@link InternalError};
 * both keep the original as `cause`.
 */
export function fromNative(err: unknown): GyreError {
  if (err instanceof GyreError) return err;
  let message = err instanceof Error ? err.message : String(err);
  let code = (err as { code?: unknown } | null)?.code;
  // The WebAssembly build's asynchronous calls reject with the code at the head of the message.
  const tagged = code === 'GenericFailure' ? /^\[(GYRE_[A-Z_]+)\] /.exec(message) : null;
  if (tagged) {
    code = tagged[1];
    message = message.slice(tagged[0].length);
  }
  const Ctor = typeof code === 'string' ? byCode[code] : undefined;
  if (Ctor) return new Ctor(message, { cause: err });
  if (code === 'InvalidArg' || code === 'NumberExpected' || code === 'ObjectExpected') {
    return new InvalidArgumentError(message, { cause: err });
  }
  return new InternalError(`native error: ${message}`, { cause: err });
}
