/**
 * gyre: recurrent neural networks (RNN, LSTM, GRU) for Node.js, with the math in Rust.
 * @packageDocumentation
 */
export * from './functional.js';
export * from './errors.js';
export * from './model.js';
export * from './dataset.js';
export type { SequenceInput, SequenceTensor, TargetInput } from './data.js';
export * from './onnx.js';
export * from './tfjs.js';
export * from './text.js';
export * from './timeseries.js';
