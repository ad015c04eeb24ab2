/**
 * The argument checks of the TypeScript API, one set used by every module. Each checker returns
 * the value (narrowed) or throws an {@link InvalidArgumentError} whose message names the argument,
 * what was expected and the value received, shown by {@link describe}:
 * `hiddenSize must be a positive integer, got -3`. `what` is the argument's name as the caller
 * wrote it (`layers[0].hiddenSize`), with any prefix naming the call (`lstmForward: hiddenSize`).
 */
import { InvalidArgumentError } from '../errors.js';

/**
 * How a received value is shown in error messages: `null`, `undefined`, numbers and booleans as
 * themselves (`NaN`, `-3`), strings quoted (cut at 40 characters), `an array of length 3`,
 * `a Float64Array of length 6`, `a function`, `an object`.
 */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) {
    const length = (v as { length?: unknown }).length;
    return typeof length === 'number' ? `a ${v.constructor.name} of length ${length}` : `a ${v.constructor.name}`;
  }
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** `v` as a plain object (not null, not an array), or an error naming `what`. */
export function object(what: string, v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new InvalidArgumentError(`${what} must be an object, got ${describe(v)}`);
  }
  return v as Record<string, unknown>;
}

/**
 * Rejects keys of `obj` outside `allowed`: `unknown option <prefix><key>; expected one of ...`.
 * `prefix` locates the object (`layers[0].`, `lstmForward: weights.`); unknown options are
 * errors, never ignored.
 */
export function checkKeys(prefix: string, obj: object, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(`unknown option ${prefix}${key}; expected one of ${allowed.join(', ')}`);
    }
  }
}

/** An options argument: `{}` when absent, else a plain object with only `allowed` keys (see {@link checkKeys}). */
export function options(what: string, v: unknown, allowed: readonly string[], prefix = ''): Record<string, unknown> {
  if (v === undefined) return {};
  const o = object(what, v);
  checkKeys(prefix, o, allowed);
  return o;
}

/** `v` as an integer in `min..max` (bounds included), or an error naming `what`. */
export function intIn(what: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const bounded = max !== Number.MAX_SAFE_INTEGER;
    const range =
      min === 1 && !bounded
        ? 'a positive integer'
        : min === 0 && !bounded
          ? 'a non-negative integer'
          : bounded
            ? `an integer in ${min}..${max}`
            : `an integer ≥ ${min}`;
    throw new InvalidArgumentError(`${what} must be ${range}, got ${describe(v)}`);
  }
  return v;
}

/**
 * `v` as an integer ≥ 1: `hiddenSize must be a positive integer, got -3`. With `max` (a size's
 * native limit), a larger integer is refused as `must be a positive integer ≤ max`.
 */
export function positiveInt(what: string, v: unknown, max?: number): number {
  return bounded(what, v, 1, 'a positive integer', max);
}

/** `v` as an integer ≥ 0 (a seed, a count that may be zero); `max` as in {@link positiveInt}. */
export function nonNegativeInt(what: string, v: unknown, max?: number): number {
  return bounded(what, v, 0, 'a non-negative integer', max);
}

function bounded(what: string, v: unknown, min: number, name: string, max: number | undefined): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new InvalidArgumentError(`${what} must be ${name}, got ${describe(v)}`);
  if (max !== undefined && v > max) throw new InvalidArgumentError(`${what} must be ${name} ≤ ${max}, got ${describe(v)}`);
  return v;
}

/** `fallback` when `v` is undefined, else `v` checked as {@link intIn}. */
export function optInt(what: string, v: unknown, fallback: number, min: number, max?: number): number {
  return v === undefined ? fallback : intIn(what, v, min, max);
}

/** `v` as a finite number (not NaN or ±Infinity). */
export function finite(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(`${what} must be a finite number, got ${describe(v)}`);
  return v;
}

/**
 * `v` as a number between `min` and `max`, each bound included or not as `bounds` says in
 * interval notation: `numberIn('dropout', v, 0, 1, '[)')` → `dropout must be a number in [0, 1)`.
 * With `max` Infinity the number must be finite: `numberIn('temperature', v, 0, Infinity, '[)')`
 * → `temperature must be a finite number ≥ 0`.
 */
export function numberIn(what: string, v: unknown, min: number, max: number, bounds: '[]' | '[)' | '(]' | '()'): number {
  const lowOk = (x: number) => (bounds[0] === '[' ? x >= min : x > min);
  const highOk = (x: number) => (max === Number.POSITIVE_INFINITY ? Number.isFinite(x) : bounds[1] === ']' ? x <= max : x < max);
  if (typeof v !== 'number' || Number.isNaN(v) || !lowOk(v) || !highOk(v)) {
    const expected =
      max === Number.POSITIVE_INFINITY
        ? `a finite number ${bounds[0] === '[' ? '≥' : '>'} ${min}`
        : `a number in ${bounds[0]}${min}, ${max}${bounds[1]}`;
    throw new InvalidArgumentError(`${what} must be ${expected}, got ${describe(v)}`);
  }
  return v;
}

/** `v` as a boolean. */
export function bool(what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${what} must be a boolean, got ${describe(v)}`);
  return v;
}

/** `fallback` when `v` is undefined, else `v` checked as a boolean. */
export function optBool(what: string, v: unknown, fallback: boolean): boolean {
  return v === undefined ? fallback : bool(what, v);
}

/** `v` as one of the strings `allowed`: `cell must be one of 'lstm', 'gru', 'rnn', got "tcn"`. */
export function oneOf<T extends string>(what: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) {
    throw new InvalidArgumentError(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}`);
  }
  return v as T;
}

/** `v` as a string. */
export function string(what: string, v: unknown): string {
  if (typeof v !== 'string') throw new InvalidArgumentError(`${what} must be a string, got ${describe(v)}`);
  return v;
}

/** `v` as a non-empty string (a path, a name). */
export function nonEmptyString(what: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0) throw new InvalidArgumentError(`${what} must be a non-empty string, got ${describe(v)}`);
  return v;
}
