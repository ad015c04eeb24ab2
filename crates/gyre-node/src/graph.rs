//! The native model graph ([`gyre_core::graph::Graph`]): built from its JSON or a file's bytes;
//! an epoch of training, evaluation and prediction run off the JavaScript thread.

use crate::error::{contain, Result};
use crate::shared::{Native, Shared};
use gyre_core::graph::{
    self, Graph, GraphData, GraphEpochOptions, GraphInput, GraphLoss, GraphPrediction, GraphSpec, GraphTarget,
    GraphValues,
};
use gyre_core::optim::{Optimizer, OptimizerConfig};
use gyre_core::CoreError;
use napi::bindgen_prelude::{AsyncTask, Buffer, Float32Array, Uint32Array, Uint8Array};
use napi::Env;
use napi_derive::napi;

/// The native state of a [`NativeGraph`]: the graph, its optimizer once trained, epochs, `user` metadata.
pub struct GraphState {
    graph: Graph<f32>,
    optimizer: Option<Optimizer<f32>>,
    epochs: usize,
    user: Option<String>,
}

impl Native for GraphState {
    const BUSY: &'static str = "the model graph is running another call (training, evaluation or prediction)";

    fn bytes(&self) -> i64 {
        let params: usize = self.graph.sizes().iter().sum();
        let buffers = self.optimizer.as_ref().map_or(0, |o| o.config().buffer_names().len());
        (params * (1 + buffers) * std::mem::size_of::<f32>()) as i64
    }
}

/// A model graph in native memory (see `gyre_core::graph`).
#[napi(custom_finalize)]
pub struct NativeGraph {
    shared: Shared<GraphState>,
}

impl napi::bindgen_prelude::ObjectFinalize for NativeGraph {
    fn finalize(self, env: Env) -> napi::Result<()> {
        crate::model::report(&env, &self.shared.reported, 0);
        Ok(())
    }
}

/// One input's data for `samples` sequences.
#[napi(object)]
pub struct GraphInputArgs {
    /// `T`, the padded steps.
    pub steps: u32,
    /// `[samples]` each sequence's steps, 1 … `T`.
    pub lengths: Uint32Array,
    /// `[samples, T, features]` for an input of float steps.
    pub floats: Option<Float32Array>,
    /// `[samples, T]` for an input of token ids.
    pub tokens: Option<Uint32Array>,
}

/// One output's targets.
#[napi(object)]
pub struct GraphTargetArgs {
    /// Class ids (`[samples, T]` or `[samples]`) for the cross-entropy loss.
    pub classes: Option<Uint32Array>,
    /// Values (`[samples, T, W]` or `[samples, W]`) for the squared error.
    pub values: Option<Float32Array>,
}

/// A graph's data: one entry per input, in the graph's order, and per output for training.
#[napi(object)]
pub struct GraphDataArgs {
    /// Number of samples.
    pub samples: u32,
    /// One per graph input.
    pub inputs: Vec<GraphInputArgs>,
    /// One per graph output (training and evaluation).
    pub targets: Option<Vec<GraphTargetArgs>>,
}

/// Options of `NativeGraph.trainEpoch`.
#[napi(object)]
pub struct GraphEpochArgs {
    /// Samples per optimizer step.
    pub batch_size: u32,
    /// This epoch's learning rate.
    pub learning_rate: f64,
    /// Clip the gradient's global L2 norm to this; absent: no clipping.
    pub clip_norm: Option<f64>,
    /// One per output: `'mse'` or `'crossEntropy'`.
    pub losses: Vec<String>,
    /// Seeds the order of the samples; absent: in order.
    pub shuffle_seed: Option<u32>,
    /// Seeds the dropout nodes' masks (each batch its own from it).
    pub dropout_seed: u32,
    /// The optimizer's JSON form, used when the graph has none yet.
    pub optimizer: String,
}

/// One output of `NativeGraph.predict`.
#[napi(object)]
pub struct GraphOutput {
    /// `[samples, T, W]` or `[samples, W]`.
    pub shape: Vec<u32>,
    /// Row-major values.
    pub values: Float32Array,
}

/// One attention node's weights from `NativeGraph.predict`.
#[napi(object)]
pub struct GraphAttention {
    /// The node's name.
    pub name: String,
    /// `[samples, Tq, Tk]`.
    pub shape: Vec<u32>,
    /// Row-major weights, 0 past each memory's length.
    pub values: Float32Array,
}

/// What `NativeGraph.predict` resolves to.
#[napi(object)]
pub struct GraphPredictResult {
    /// One per graph output, in order.
    pub outputs: Vec<GraphOutput>,
    /// One per attention node, in node order.
    pub attention: Vec<GraphAttention>,
}

/// A parameter's name, shape and values.
#[napi(object)]
pub struct GraphParam {
    /// Its name (`enc.weight_ih_l0`, …).
    pub name: String,
    /// Its shape.
    pub shape: Vec<u32>,
    /// Its values, row-major.
    pub values: Float32Array,
}

fn losses(names: &[String]) -> gyre_core::Result<Vec<GraphLoss>> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| match n.as_str() {
            "mse" => Ok(GraphLoss::Mse),
            "crossEntropy" => Ok(GraphLoss::CrossEntropy),
            other => Err(CoreError::InvalidArgument {
                what: format!("loss[{i}]"),
                expected: "'mse' or 'crossEntropy'".into(),
                got: format!("{other:?}"),
            }),
        })
        .collect()
}

/// An owned copy of the data: tasks never read JavaScript memory after the call.
fn copy(d: &GraphDataArgs) -> gyre_core::Result<GraphData<f32>> {
    let mut inputs = Vec::with_capacity(d.inputs.len());
    for (i, a) in d.inputs.iter().enumerate() {
        let values = match (&a.floats, &a.tokens) {
            (Some(f), None) => GraphValues::Floats(f.to_vec()),
            (None, Some(t)) => GraphValues::Tokens(t.to_vec()),
            _ => {
                return Err(CoreError::InvalidArgument {
                    what: format!("inputs[{i}]"),
                    expected: "floats or tokens".into(),
                    got: "both or neither".into(),
                })
            }
        };
        inputs.push(GraphInput {
            steps: a.steps as usize,
            lengths: a.lengths.iter().map(|&l| l as usize).collect(),
            values,
        });
    }
    let mut targets = Vec::new();
    for (k, t) in d.targets.iter().flatten().enumerate() {
        targets.push(match (&t.classes, &t.values) {
            (Some(c), None) => GraphTarget::Classes(c.to_vec()),
            (None, Some(v)) => GraphTarget::Values(v.to_vec()),
            _ => {
                return Err(CoreError::InvalidArgument {
                    what: format!("targets[{k}]"),
                    expected: "classes or values".into(),
                    got: "both or neither".into(),
                })
            }
        });
    }
    Ok(GraphData { samples: d.samples as usize, inputs, targets })
}

fn to_js(p: GraphPrediction<f32>) -> GraphPredictResult {
    let dims = |s: &[usize]| s.iter().map(|&d| d as u32).collect();
    GraphPredictResult {
        outputs: p
            .outputs
            .into_iter()
            .map(|(s, v)| GraphOutput { shape: dims(&s), values: Float32Array::new(v) })
            .collect(),
        attention: p
            .attention
            .into_iter()
            .map(|(name, s, v)| GraphAttention { name, shape: dims(&s), values: Float32Array::new(v) })
            .collect(),
    }
}

fn same<T>(v: T) -> T {
    v
}

#[napi]
impl NativeGraph {
    /// A new graph from its JSON (`{ inputs, nodes, outputs, seed }`), weights from its seed.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, spec: String) -> Result<Self> {
        contain(|| {
            let graph = Graph::new(GraphSpec::from_json(&spec)?)?;
            let state = GraphState { graph, optimizer: None, epochs: 0, user: None };
            Ok(NativeGraph { shared: Shared::new(&env, state) })
        })
    }

    /// Loads a file's bytes (see `toSafetensors`), checked strictly.
    #[napi(factory, catch_unwind)]
    pub fn from_safetensors(env: Env, bytes: Uint8Array) -> Result<Self> {
        contain(|| {
            let saved = graph::load(&bytes)?;
            let state =
                GraphState { graph: saved.graph, optimizer: saved.optimizer, epochs: saved.epochs, user: saved.user };
            Ok(NativeGraph { shared: Shared::new(&env, state) })
        })
    }

    /// The file's bytes: weights, the graph, epochs, `user` metadata and, when asked for and
    /// present, the optimizer's state.
    #[napi(catch_unwind)]
    pub fn to_safetensors(&self, include_optimizer: bool, user: Option<String>) -> Result<Buffer> {
        contain(|| {
            let s = self.shared.held()?;
            let optimizer = if include_optimizer { s.optimizer.as_ref() } else { None };
            Ok(graph::save(&s.graph, s.epochs, optimizer, user.as_deref().or(s.user.as_deref()))?.into())
        })
    }

    /// Whether the graph holds an optimizer state (after training, or loaded with one).
    #[napi(catch_unwind)]
    pub fn has_optimizer(&self) -> Result<bool> {
        contain(|| Ok(self.shared.held()?.optimizer.is_some()))
    }

    /// The graph's JSON, every default written out.
    #[napi(getter, catch_unwind)]
    pub fn spec_json(&self) -> Result<String> {
        contain(|| Ok(self.shared.held()?.graph.spec().to_json()))
    }

    /// The `user` metadata the file was loaded with, if any.
    #[napi(getter, catch_unwind)]
    pub fn user(&self) -> Result<Option<String>> {
        contain(|| Ok(self.shared.held()?.user.clone()))
    }

    /// Epochs trained.
    #[napi(getter, catch_unwind)]
    pub fn epochs(&self) -> Result<u32> {
        contain(|| Ok(self.shared.held()?.epochs as u32))
    }

    /// Every parameter's name, shape and values (a copy), in the graph's order.
    #[napi(catch_unwind)]
    pub fn params(&self) -> Result<Vec<GraphParam>> {
        contain(|| {
            Ok(self
                .shared
                .held()?
                .graph
                .params()
                .map(|(n, s, v)| GraphParam {
                    name: n.to_string(),
                    shape: s.iter().map(|&d| d as u32).collect(),
                    values: Float32Array::new(v.to_vec()),
                })
                .collect())
        })
    }

    /// Replaces parameter `name`'s values (its number of values, finite).
    #[napi(catch_unwind)]
    pub fn set_param(&self, name: String, values: Float32Array) -> Result<()> {
        contain(|| Ok(self.shared.held()?.graph.set_param(&name, &values)?))
    }

    /// Frees the weights now; later calls fail with `GYRE_DISPOSED`.
    #[napi(catch_unwind)]
    pub fn dispose(&self, env: Env) -> Result<()> {
        contain(|| {
            self.shared.held()?.optimizer = None;
            self.shared.dispose(&env)
        })
    }

    /// One epoch of training; resolves to the epoch's mean loss (summed over the outputs).
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn train_epoch(
        &self,
        data: GraphDataArgs,
        options: GraphEpochArgs,
    ) -> Result<AsyncTask<crate::shared::Call<GraphState, f64, f64>>> {
        contain(|| {
            let data = copy(&data)?;
            let mut opts = GraphEpochOptions {
                batch_size: options.batch_size as usize,
                lr: options.learning_rate,
                clip_norm: options.clip_norm,
                losses: losses(&options.losses)?,
                shuffle: options.shuffle_seed.map(u64::from),
                dropout_seed: u64::from(options.dropout_seed),
                epoch: 0,
            };
            let optimizer = options.optimizer;
            let task = self.shared.task(
                move |s: &mut GraphState| {
                    if s.optimizer.is_none() {
                        let config: OptimizerConfig = gyre_core::train::optimizer_from_json(&optimizer)?;
                        s.optimizer = Some(Optimizer::new(config, &s.graph.sizes())?);
                    }
                    let Some(o) = s.optimizer.as_mut() else { return Ok(f64::NAN) };
                    opts.epoch = s.epochs + 1;
                    let loss = s.graph.train_epoch(o, &data, &opts)?;
                    s.epochs += 1;
                    Ok(loss)
                },
                same,
            )?;
            Ok(AsyncTask::new(task))
        })
    }

    /// The mean loss (summed over the outputs) of data with targets.
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn evaluate(
        &self,
        data: GraphDataArgs,
        loss_names: Vec<String>,
        batch_size: u32,
    ) -> Result<AsyncTask<crate::shared::Call<GraphState, f64, f64>>> {
        contain(|| {
            let data = copy(&data)?;
            let l = losses(&loss_names)?;
            let task =
                self.shared.task(move |s: &mut GraphState| s.graph.evaluate(&data, &l, batch_size as usize), same)?;
            Ok(AsyncTask::new(task))
        })
    }

    /// Every output for every sample, and every attention node's weights.
    #[napi(catch_unwind, ts_return_type = "Promise<GraphPredictResult>")]
    pub fn predict(
        &self,
        data: GraphDataArgs,
        batch_size: u32,
    ) -> Result<AsyncTask<crate::shared::Call<GraphState, GraphPrediction<f32>, GraphPredictResult>>> {
        contain(|| {
            let data = copy(&data)?;
            let task =
                self.shared.task(move |s: &mut GraphState| s.graph.predict(&data, batch_size as usize), to_js)?;
            Ok(AsyncTask::new(task))
        })
    }
}
