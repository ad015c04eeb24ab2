/**
 * The text toolkit's public API: tokenizers, encodings, sampling, generation, and the
 * brain.js-style {@link TextGenerator} and {@link TextClassifier}. The modules beside this one
 * also share internal helpers, which are not exported from here.
 */
export {
  TextClassifier,
  type Classification,
  type ClassifierEvaluation,
  type TextClassifierOptions,
  type TextLabel,
} from './classifier.js';
export { oneHot, textSequences, type TextSequenceOptions } from './encoding.js';
export { generateText, type GenerateOptions } from './generate.js';
export { NgramModel } from './ngram.js';
export { TextGenerator } from './generator.js';
export {
  editDistance,
  Seq2Seq,
  Seq2SeqStream,
  type Seq2SeqEpoch,
  type Seq2SeqFitOptions,
  type Seq2SeqEvaluation,
  type Seq2SeqTrainOptions,
  type TextPair,
  type TransduceOptions,
  type TransduceResult,
  type Transduction,
} from './seq2seq.js';
export { sampleFrom, type SampleOptions } from './sampling.js';
export {
  CharTokenizer,
  END_ID,
  END_TEXT,
  tokenizerFromJSON,
  UNKNOWN_ID,
  UNKNOWN_TEXT,
  WordTokenizer,
  type CorpusOptions,
  type EncodeOptions,
  type Tokenizer,
  type TokenizerJSON,
  type UnknownTokens,
} from './tokenizers.js';
export type { TextCell, TextModelOptions, TextTrainOptions } from './training.js';
export { loadWordVectors, type WordVectors, type WordVectorsOptions } from './vectors.js';
