/**
 * The option types TypeScript documents agree with those the native side declares (in Rust,
 * generated into native/binding.d.ts) and reads: checked by the compiler (`npm run lint` type-checks
 * the tests) and by vitest's type assertions.
 */
import type { FitOptions, LayerSpec, ModelSpec } from 'gyre';
import { describe, expectTypeOf, it } from 'vitest';
import type { FitOptions as NativeFitOptions, LayerSpec as NativeLayerSpec, ModelSpec as NativeModelSpec } from '../native/binding.js';

/** The options of `fit` read in TypeScript, never sent to the native side. */
type TypeScriptOnly = 'validationData' | 'validationSplit' | 'onProgress' | 'signal';
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
