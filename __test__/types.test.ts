/**
 * The option types TypeScript documents agree with those the native side declares (in Rust,
 * generated into native/binding.d.ts) and reads: checked by the compiler (`npm run lint` type-checks
 * the tests) and by vitest's type assertions.
 */
import type { FitOptions } from 'gyre';
import { describe, expectTypeOf, it } from 'vitest';
import type { FitOptions as NativeFitOptions } from '../native/binding.js';

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
