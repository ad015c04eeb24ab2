/**
 * Argument checks shared by the API modules: each error names the argument, what was expected
 * and what was received.
 */
import { InvalidArgumentError } from '../errors.js';

/** A short description of a received value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of length ${(v as Float32Array).length ?? '?'}`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** `v` as a plain object, or an error naming `what`. */
export function object(what: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new InvalidArgumentError(`${what} must be an object, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

/** Rejects keys of `obj` outside `allowed` (`what` prefixes the key in the message). */
export function checkKeys(what: string, obj: object, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(`unknown option ${what}${key}; expected one of ${allowed.join(', ')}`);
    }
  }
}

/** `v` as an integer in `min..max`, or an error naming `what`. */
export function intIn(what: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}..${max}`;
    throw new InvalidArgumentError(`${what} must be an integer ${range}, got ${describe(v)}`);
  }
  return v;
}
