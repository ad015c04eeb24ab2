/** {@link Stream}: the live state of sequences fed one step at a time. */
import { InvalidArgumentError } from '../errors.js';
import * as native from '../native.js';
import { describe, intIn } from '../util/check.js';

/**
 * The live state of `batch` independent sequences for step-by-step inference: feed one time
 * step at a time with {@link Stream.step}. Create with {@link Model.createStream}.
 */
export class Stream {
  readonly #model: native.NativeModel;
  readonly #state: native.StreamState;
  readonly #tokens: boolean;
  readonly #features: number;

  /** @internal */
  constructor(model: native.NativeModel, state: native.StreamState, tokens: boolean, features: number) {
    this.#model = model;
    this.#state = state;
    this.#tokens = tokens;
    this.#features = features;
  }

  /** Number of independent sequences. */
  get batch(): number {
    return this.#state.batch;
  }

  /**
   * Advances every sequence by one step. `input`: per sequence one feature vector
   * (`number[][]` `[batch][features]`, `number[]` when batch is 1, or a flat Float32Array), or
   * one token id (`number[]` / Uint32Array, or a number when batch is 1).
   * @returns the model's output for this step, `[batch, units]` flat.
   */
  step(input: number | number[] | number[][] | Float32Array | Uint32Array): Float32Array {
    const b = this.batch;
    if (this.#tokens) {
      const ids = typeof input === 'number' ? [input] : input;
      if (!(ids instanceof Uint32Array) && !(Array.isArray(ids) && ids.every((v) => typeof v === 'number'))) {
        throw new InvalidArgumentError(`step input must be ${b} token id(s), got ${describe(input)}`);
      }
      const arr = ids instanceof Uint32Array ? ids : Uint32Array.from(ids as number[], (v, i) => intIn(`input[${i}]`, v, 0, 0xfffffffe));
      return native.guard(() => this.#model.step(this.#state, undefined, arr));
    }
    let flat: Float32Array;
    if (input instanceof Float32Array) flat = input;
    else if (Array.isArray(input) && input.every((v) => typeof v === 'number') && b === 1) flat = Float32Array.from(input as number[]);
    else if (Array.isArray(input) && input.every(Array.isArray)) flat = Float32Array.from((input as number[][]).flat());
    else throw new InvalidArgumentError(`step input must be ${b} vector(s) of ${this.#features} features, got ${describe(input)}`);
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i])) throw new InvalidArgumentError(`step input[${i}] must be a finite number, got ${flat[i]}`);
    }
    return native.guard(() => this.#model.step(this.#state, flat, undefined));
  }

  /** Starts every sequence afresh (zero state). */
  reset(): void {
    this.#state.reset();
  }

  /** An independent copy of this stream's state. */
  copy(): Stream {
    return new Stream(this.#model, this.#state.copy(), this.#tokens, this.#features);
  }

  /** The state as one array, to keep elsewhere and restore with {@link Model.restoreStream}. */
  toArray(): Float32Array {
    return this.#state.toArray();
  }
}
