/**
 * The option types TypeScript documents agree with those the native side declares (in Rust,
 * generated into native/binding.d.ts) and reads: checked by the compiler (`npm run lint` type-checks
 * the tests) and by vitest's type assertions. The native readers (serde structs in gyre-core) are
 * declared apart from the types (napi declarations in gyre-node): the last tests hold the options
 * each reader accepts, as its unknown-option error lists them, to the keys of the declared types.
 */
import type { FitOptions, LayerSpec, ModelSpec, OptimizerSpec, ScheduleSpec } from 'gyre';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type EarlyStoppingOptions as NativeEarlyStopping,
  type FitOptions as NativeFitOptions,
  type FeatureInputSpec as NativeFeatureInput,
  type LayerSpec as NativeLayerSpec,
  type ModelSpec as NativeModelSpec,
  NativeModel,
  type MetricsOptions as NativeMetrics,
  type OptimizerOptions as NativeOptimizer,
  type ScheduleOptions as NativeSchedule,
  type TokenInputSpec as NativeTokenInput,
} from '../native/binding.js';

/** The options of `fit` read in TypeScript, never sent to the native side. */
type TypeScriptOnly = 'validationData' | 'validationSplit' | 'onProgress' | 'signal' | 'checkpoint' | 'sampleWeight';
type Sent = Omit<FitOptions, TypeScriptOnly>;

describe('training option types', () => {
  it('FitOptions has the native options and those read in TypeScript, no others', () => {
    expectTypeOf<keyof Sent>().toEqualTypeOf<keyof NativeFitOptions>();
  });

  it('every FitOptions value is a value of the native type', () => {
    expectTypeOf<Sent>().toExtend<NativeFitOptions>();
    expectTypeOf<NonNullable<Sent['optimizer']>>().toExtend<NonNullable<NativeFitOptions['optimizer']>>();
    expectTypeOf<NonNullable<Sent['schedule']>>().toExtend<NonNullable<NativeFitOptions['schedule']>>();
    expectTypeOf<NonNullable<Sent['earlyStopping']>>().toExtend<NonNullable<NativeFitOptions['earlyStopping']>>();
    expectTypeOf<NonNullable<NativeFitOptions['earlyStopping']>>().toEqualTypeOf<NonNullable<Sent['earlyStopping']>>();
    expectTypeOf<NativeFitOptions['loss']>().toEqualTypeOf<Sent['loss']>();
  });
});

/** The layer of type `T`, as TypeScript and as the native side declare it. */
type Layer<T extends LayerSpec['type']> = Extract<LayerSpec, { type: T }>;
type NativeLayer<T extends NativeLayerSpec['type']> = Extract<NativeLayerSpec, { type: T }>;

describe('model spec types', () => {
  it('ModelSpec has the keys of the native spec, and each accepts every value of the other', () => {
    expectTypeOf<keyof ModelSpec>().toEqualTypeOf<keyof NativeModelSpec>();
    expectTypeOf<ModelSpec>().toExtend<NativeModelSpec>();
    expectTypeOf<NativeModelSpec>().toExtend<ModelSpec>();
    expectTypeOf<ModelSpec['input']>().toExtend<NativeModelSpec['input']>();
    expectTypeOf<NativeModelSpec['input']>().toExtend<ModelSpec['input']>();
    expectTypeOf<ModelSpec['seed']>().toEqualTypeOf<NativeModelSpec['seed']>();
  });

  it('the same layer types, each with the same options of the same types', () => {
    expectTypeOf<LayerSpec['type']>().toEqualTypeOf<NativeLayerSpec['type']>();
    expectTypeOf<keyof Layer<'embedding'>>().toEqualTypeOf<keyof NativeLayer<'embedding'>>();
    expectTypeOf<keyof Layer<'rnn'>>().toEqualTypeOf<keyof NativeLayer<'rnn'>>();
    expectTypeOf<keyof Layer<'lstm'>>().toEqualTypeOf<keyof NativeLayer<'lstm'>>();
    expectTypeOf<keyof Layer<'gru'>>().toEqualTypeOf<keyof NativeLayer<'gru'>>();
    expectTypeOf<keyof Layer<'dense'>>().toEqualTypeOf<keyof NativeLayer<'dense'>>();
    expectTypeOf<Layer<'embedding'>>().toExtend<NativeLayer<'embedding'>>();
    expectTypeOf<NativeLayer<'embedding'>>().toExtend<Layer<'embedding'>>();
    expectTypeOf<Layer<'rnn'>>().toExtend<NativeLayer<'rnn'>>();
    expectTypeOf<NativeLayer<'rnn'>>().toExtend<Layer<'rnn'>>();
    expectTypeOf<Layer<'lstm'>>().toExtend<NativeLayer<'lstm'>>();
    expectTypeOf<NativeLayer<'lstm'>>().toExtend<Layer<'lstm'>>();
    expectTypeOf<Layer<'gru'>>().toExtend<NativeLayer<'gru'>>();
    expectTypeOf<NativeLayer<'gru'>>().toExtend<Layer<'gru'>>();
    expectTypeOf<Layer<'dense'>>().toExtend<NativeLayer<'dense'>>();
    expectTypeOf<NativeLayer<'dense'>>().toExtend<Layer<'dense'>>();
  });
});

/** The options the native reader accepts where `probe` puts an unknown one, from its error: `unknown option ~; expected one of a, b`. */
function accepted(probe: () => unknown): string[] {
  let message = '';
  try {
    probe();
  } catch (e) {
    message = (e as Error).message;
  }
  const list = /^unknown option (?:\S+\.)?~; expected (?:one of )?(.*)$/.exec(message)?.[1];
  if (list === undefined) throw new Error(`not an unknown-option error: ${message}`);
  return list === 'no options' ? [] : list.split(', ');
}

/** The keys of a record `satisfies Record<keyof T, true>` (the compiler checks there are no others). */
const keysOf = (r: Record<string, true>): string[] => Object.keys(r);
const sorted = (a: string[]): string[] => [...a].sort();
const withoutType = (a: string[]): string[] => a.filter((k) => k !== 'type');

describe('what the native readers accept is what the declared types say', () => {
  const model = new NativeModel({ input: { features: 1 }, layers: [{ type: 'dense', units: 1 }] });
  const readsFit = (options: Record<string, unknown>) => accepted(() => model.fitSettings({ loss: 'mse', ...options } as never));
  const readsSpec = (s: Record<string, unknown>) => accepted(() => new NativeModel(s as never));
  const probe = { '~': 1 };

  it('training options', () => {
    const fitKeys = {
      loss: true,
      epochs: true,
      batchSize: true,
      shuffle: true,
      seed: true,
      optimizer: true,
      schedule: true,
      warmupEpochs: true,
      clipNorm: true,
      clipValue: true,
      tbpttSteps: true,
      earlyStopping: true,
      metrics: true,
      classWeight: true,
    } satisfies Record<keyof NativeFitOptions, true>;
    expect(sorted(readsFit(probe))).toEqual(sorted(keysOf(fitKeys)));
    const earlyStopping = { patience: true, minDelta: true, restoreBest: true } satisfies Record<keyof NativeEarlyStopping, true>;
    expect(sorted(readsFit({ earlyStopping: probe }))).toEqual(sorted(keysOf(earlyStopping)));
    const metrics = { topK: true, confusion: true } satisfies Record<keyof NativeMetrics, true>;
    expect(sorted(readsFit({ metrics: probe }))).toEqual(sorted(keysOf(metrics)));
  });

  it('optimizers: each type its own options, together the declared ones', () => {
    const byType = {
      sgd: { learningRate: true, momentum: true, dampening: true, nesterov: true, weightDecay: true } satisfies Record<
        Exclude<keyof Extract<OptimizerSpec, { type: 'sgd' }>, 'type'>,
        true
      >,
      adam: { learningRate: true, beta1: true, beta2: true, eps: true, weightDecay: true } satisfies Record<
        Exclude<keyof Extract<OptimizerSpec, { type: 'adam' }>, 'type'>,
        true
      >,
      adamw: { learningRate: true, beta1: true, beta2: true, eps: true, weightDecay: true } satisfies Record<
        Exclude<keyof Extract<OptimizerSpec, { type: 'adamw' }>, 'type'>,
        true
      >,
      rmsprop: { learningRate: true, alpha: true, eps: true, momentum: true, centered: true, weightDecay: true } satisfies Record<
        Exclude<keyof Extract<OptimizerSpec, { type: 'rmsprop' }>, 'type'>,
        true
      >,
    } satisfies Record<OptimizerSpec['type'], Record<string, true>>;
    const declared = {
      type: true,
      learningRate: true,
      momentum: true,
      dampening: true,
      nesterov: true,
      beta1: true,
      beta2: true,
      eps: true,
      alpha: true,
      centered: true,
      weightDecay: true,
    } satisfies Record<keyof NativeOptimizer, true>;
    const all = new Set<string>();
    for (const [type, keys] of Object.entries(byType)) {
      const read = readsFit({ optimizer: { type, ...probe } });
      expect(sorted(read), type).toEqual(sorted(keysOf(keys)));
      for (const k of read) all.add(k);
    }
    expect(sorted([...all])).toEqual(sorted(withoutType(keysOf(declared))));
  });

  it('schedules: each type its own options, together the declared ones', () => {
    const byType = {
      constant: {} satisfies Record<Exclude<keyof Extract<ScheduleSpec, { type: 'constant' }>, 'type'>, true>,
      step: { stepSize: true, gamma: true } satisfies Record<Exclude<keyof Extract<ScheduleSpec, { type: 'step' }>, 'type'>, true>,
      exponential: { gamma: true } satisfies Record<Exclude<keyof Extract<ScheduleSpec, { type: 'exponential' }>, 'type'>, true>,
      cosine: { tMax: true, etaMin: true } satisfies Record<Exclude<keyof Extract<ScheduleSpec, { type: 'cosine' }>, 'type'>, true>,
      reduceOnPlateau: {
        factor: true,
        patience: true,
        threshold: true,
        thresholdMode: true,
        cooldown: true,
        minLr: true,
      } satisfies Record<Exclude<keyof Extract<ScheduleSpec, { type: 'reduceOnPlateau' }>, 'type'>, true>,
    } satisfies Record<ScheduleSpec['type'], Record<string, true>>;
    const declared = {
      type: true,
      stepSize: true,
      gamma: true,
      tMax: true,
      etaMin: true,
      factor: true,
      patience: true,
      threshold: true,
      thresholdMode: true,
      cooldown: true,
      minLr: true,
    } satisfies Record<keyof NativeSchedule, true>;
    const all = new Set<string>();
    for (const [type, keys] of Object.entries(byType)) {
      const read = readsFit({ schedule: { type, ...probe } });
      expect(sorted(read), type).toEqual(sorted(keysOf(keys)));
      for (const k of read) all.add(k);
    }
    expect(sorted([...all])).toEqual(sorted(withoutType(keysOf(declared))));
  });

  it('the model spec, its input and each layer type', () => {
    const dense = { type: 'dense', units: 1 };
    const specKeys = { input: true, layers: true, seed: true } satisfies Record<keyof NativeModelSpec, true>;
    expect(sorted(readsSpec({ input: { features: 1 }, layers: [dense], ...probe }))).toEqual(sorted(keysOf(specKeys)));
    const features = { features: true, maskValue: true } satisfies Record<keyof NativeFeatureInput, true>;
    expect(readsSpec({ input: { features: 1, ...probe }, layers: [dense] })).toEqual(keysOf(features));
    const tokens = { vocabSize: true, maskZero: true } satisfies Record<keyof NativeTokenInput, true>;
    expect(readsSpec({ input: { vocabSize: 2, ...probe }, layers: [dense] })).toEqual(keysOf(tokens));
    const r = {
      hiddenSize: true,
      numLayers: true,
      bidirectional: true,
      merge: true,
      returnSequences: true,
      dropout: true,
      inputDropout: true,
      recurrentDropout: true,
      zoneout: true,
      goBackwards: true,
      trainable: true,
    } as const;
    const byType = {
      embedding: { type: true, dim: true, trainable: true } satisfies Record<keyof NativeLayer<'embedding'>, true>,
      rnn: { type: true, ...r, nonlinearity: true } satisfies Record<keyof NativeLayer<'rnn'>, true>,
      lstm: { type: true, ...r, recurrentActivation: true } satisfies Record<keyof NativeLayer<'lstm'>, true>,
      gru: { type: true, ...r, resetAfter: true, recurrentActivation: true } satisfies Record<keyof NativeLayer<'gru'>, true>,
      dense: { type: true, units: true, activation: true, trainable: true } satisfies Record<keyof NativeLayer<'dense'>, true>,
    } satisfies Record<NativeLayerSpec['type'], Record<string, true>>;
    const required: Record<string, Record<string, number>> = { embedding: { dim: 1 }, dense: { units: 1 } };
    for (const [type, keys] of Object.entries(byType)) {
      const layer = { type, ...(required[type] ?? { hiddenSize: 1 }), ...probe };
      expect(sorted(readsSpec({ input: { features: 1 }, layers: [layer] })), type).toEqual(sorted(withoutType(keysOf(keys))));
    }
  });
});
