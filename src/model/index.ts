/**
 * The model's public API: {@link sequential} and its specification, {@link Model}, training
 * options and events, streams, loading. The modules beside this one share internal helpers,
 * which are not exported from here.
 */
export { backend, fromBuffer, getNumThreads, loadModel, Model, type SaveOptions, sequential, setNumThreads, simdLevel } from './model.js';
export type { FeatureInputSpec, LayerSpec, ModelSpec, RecurrentActivation, RecurrentLayerSpec, TokenInputSpec } from './spec.js';
export { RECURRENT_ACTIVATIONS } from './spec.js';
export {
  graph,
  GraphBuilder,
  type GraphAttentionScore,
  type GraphEpoch,
  type GraphFitOptions,
  type GraphInputs,
  type GraphInputSpec,
  type GraphLayerSpec,
  type GraphLossName,
  GraphModel,
  type GraphNodeSpec,
  type GraphPrediction,
  type GraphRecurrentOptions,
  type GraphSpec,
  type GraphStateRef,
  type GraphTargets,
  type GraphValue,
  type GraphValueKind,
  type RecurrentValue,
} from './graph.js';
export { Stream } from './stream.js';
export type { ClassPrediction, ClassScore, LayerSummary, ModelSummary } from './summary.js';
export {
  type BatchProgressEvent,
  type CheckpointOptions,
  type EpochProgressEvent,
  type EvaluateOptions,
  type Evaluation,
  type FitDatasetOptions,
  type FitHistory,
  type FitOptions,
  type LossName,
  type MetricsOptions,
  type OptimizerSpec,
  type Prediction,
  type PredictOptions,
  type ProgressEvent,
  type ScheduleSpec,
  TrainingAbortedError,
} from './training.js';
