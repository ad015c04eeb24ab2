/**
 * The `checkpoint` option of `fit` and `fitDataset`: which epoch ends to write, where, and the
 * writes themselves, one after another, so that `fit` can settle only once they are on disk.
 * @module
 */
import { InvalidArgumentError } from '../errors.js';
import { bool, checkKeys, nonEmptyString, object, oneOf, positiveInt } from '../util/check.js';
import { writeAtomically } from '../util/files.js';
import type { Model } from './model.js';
import type { EpochProgressEvent } from './training.js';

/** @internal A checked `checkpoint` option and the state of its writes. */
export class Checkpointer {
  readonly #path: string;
  readonly #monitor: 'loss' | 'valLoss';
  readonly #saveBestOnly: boolean;
  readonly #every: number;
  readonly #includeOptimizer: boolean;
  #best = Number.POSITIVE_INFINITY;
  #writes: Promise<void> = Promise.resolve();
  #failure: { error: unknown } | undefined;

  /** Checks `value` (the `checkpoint` option); `validation`: the fit has validation data. */
  constructor(value: unknown, validation: boolean) {
    const o = object('checkpoint', value);
    checkKeys('checkpoint.', o, ['path', 'monitor', 'saveBestOnly', 'every', 'includeOptimizer']);
    this.#path = nonEmptyString('checkpoint.path', o.path);
    this.#monitor =
      o.monitor === undefined ? (validation ? 'valLoss' : 'loss') : oneOf('checkpoint.monitor', o.monitor, ['loss', 'valLoss']);
    if (this.#monitor === 'valLoss' && !validation) {
      throw new InvalidArgumentError("checkpoint.monitor 'valLoss' needs validation data (validationData or validationSplit)");
    }
    this.#saveBestOnly = o.saveBestOnly === undefined ? false : bool('checkpoint.saveBestOnly', o.saveBestOnly);
    this.#every = o.every === undefined ? 1 : positiveInt('checkpoint.every', o.every);
    this.#includeOptimizer = o.includeOptimizer === undefined ? true : bool('checkpoint.includeOptimizer', o.includeOptimizer);
  }

  /** The file epoch `e` goes to, or `undefined` when it is not to be written. */
  #due(e: EpochProgressEvent): string | undefined {
    if (e.epoch % this.#every !== 0) return undefined;
    if (this.#saveBestOnly) {
      const monitored = this.#monitor === 'valLoss' ? e.valLoss : e.loss;
      if (monitored === undefined || !(monitored < this.#best)) return undefined;
      this.#best = monitored;
    }
    return this.#path.replaceAll('{epoch}', String(e.epoch));
  }

  /**
   * `fit`: queues the write of `model` (the epoch's snapshot, read now) when epoch `e` is due.
   * On the first failure `stop` is called (training ends) and later epochs are not written.
   */
  consider(e: EpochProgressEvent, model: Model, stop: () => void): void {
    if (this.#failure) return;
    const path = this.#due(e);
    if (path === undefined) return;
    const bytes = model.toBuffer({ includeOptimizer: this.#includeOptimizer });
    this.#writes = this.#writes.then(async () => {
      if (this.#failure) return;
      try {
        await writeAtomically(path, bytes, 'write checkpoint');
      } catch (error) {
        this.#failure = { error };
        stop();
      }
    });
  }

  /** `fitDataset`: writes `model` now when epoch `e` is due (the model is not training between batches). */
  async writeNow(e: EpochProgressEvent, model: Model): Promise<void> {
    const path = this.#due(e);
    if (path !== undefined) await writeAtomically(path, model.toBuffer({ includeOptimizer: this.#includeOptimizer }), 'write checkpoint');
  }

  /** Resolves once every queued write has finished (never rejects). */
  idle(): Promise<void> {
    return this.#writes;
  }

  /** Throws the error of the first failed write, if one failed. */
  rethrow(): void {
    if (this.#failure) throw this.#failure.error;
  }
}
