/**
 * gyre: recurrent neural networks (RNN, LSTM, GRU) for Node.js, with the math in Rust.
 * @packageDocumentation
 */
export * from './functional.js';
export * from './errors.js';
export * from './model/index.js';
export * from './data/dataset.js';
export type { SequenceInput, SequenceTensor, TargetInput } from './data/flatten.js';
export * from './interop/onnx.js';
export * from './interop/tfjs.js';
export * from './interop/tfjs-graph.js';
export * from './interop/keras.js';
export * from './text/index.js';
export * from './data/timeseries.js';
export { seededRandom } from './util/random.js';
