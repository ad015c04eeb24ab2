/**
 * gyre: recurrent neural networks (RNN, LSTM, GRU) for Node.js, with the math in Rust.
 * @packageDocumentation
 */
export * from './functional.js';
export * from './errors.js';
