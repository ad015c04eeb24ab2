//! The model binding: a native model object, training off the JavaScript thread with
//! progress events and cancellation, evaluation and prediction (async and sync).

use crate::error::{contain, BindingError, Failure, Result};
use gyre_core::model::{InputKind, Inputs, Model, ModelConfig};
use gyre_core::optim::{Optimizer, OptimizerConfig};
use gyre_core::train::{self, Dataset, FitConfig, History, Observer, Progress, Targets};
use gyre_core::train::{fit_from_json, loss_from_name};
use gyre_core::{threads, CoreError};
use napi::bindgen_prelude::{AsyncTask, Buffer, Float32Array, Uint32Array, Uint8Array};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status, Task};
use napi_derive::napi;
use ndarray::{Array2, Array3};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Native bytes a model holds: weights, and optimizer buffers when there is an optimizer.
fn native_bytes(t: &Trainable) -> i64 {
    let params = t.model.parameter_count();
    let buffers = t.optimizer.as_ref().map_or(0, |o| o.config().buffer_names().len());
    ((params * (1 + buffers) * std::mem::size_of::<f32>()) as i64).max(0)
}

/// Tells V8 how much native memory a model holds now.
fn report(env: &Env, reported: &AtomicI64, now: i64) {
    let delta = now - reported.swap(now, Ordering::SeqCst);
    if delta != 0 {
        let _ = env.adjust_external_memory(delta);
    }
}

/// A dataset as flat typed arrays: `samples` sequences of `steps` steps.
#[napi(object)]
pub struct DataArgs {
    /// Number of sequences `S`.
    pub samples: u32,
    /// Steps per sequence `T` (the padded length).
    pub steps: u32,
    /// `[S, T, I]` float features (models without an embedding).
    pub features: Option<Float32Array>,
    /// `[S, T]` token ids (models starting with an embedding).
    pub tokens: Option<Uint32Array>,
    /// `[S]` lengths, each in `1..=T` (default: all `T`).
    pub lengths: Option<Uint32Array>,
    /// Class ids: `[S]`, or `[S, T]` for a model that outputs a sequence.
    pub classes: Option<Uint32Array>,
    /// Float targets: `[S, O]`, or `[S, T, O]` for a model that outputs a sequence.
    pub values: Option<Float32Array>,
}

/// An owned copy of [`DataArgs`]: training never reads JavaScript memory after the call.
struct OwnedData {
    features: Option<Array3<f32>>,
    tokens: Option<Array2<u32>>,
    lengths: Option<Vec<usize>>,
    classes: Option<Vec<u32>>,
    values: Option<Vec<f32>>,
}

impl OwnedData {
    fn copy(d: &DataArgs, input: InputKind, what: &str) -> gyre_core::Result<Self> {
        let (s, t) = (d.samples as usize, d.steps as usize);
        gyre_core::tensor::positive(&format!("{what} samples"), s)?;
        gyre_core::tensor::positive(&format!("{what} steps"), t)?;
        let (features, tokens) = match input {
            InputKind::Features { size } => {
                let x = d.features.as_deref().ok_or_else(|| CoreError::Missing {
                    what: format!("{what} x"),
                    context: "as float features (the model has no embedding)".into(),
                })?;
                gyre_core::tensor::tensor3(&format!("{what} x"), x, s, t, size)?;
                let copy = Array3::from_shape_vec((s, t, size), threads::copied(x)?).map_err(|e| {
                    CoreError::ShapeMismatch {
                        what: format!("{what} x"),
                        expected: format!("[{s}, {t}, {size}]"),
                        got: e.to_string(),
                    }
                })?;
                (Some(copy), None)
            }
            InputKind::Tokens { .. } => {
                let x = d.tokens.as_deref().ok_or_else(|| CoreError::Missing {
                    what: format!("{what} x"),
                    context: "as token ids (the model starts with an embedding)".into(),
                })?;
                (None, Some(gyre_core::tensor::matrix(&format!("{what} x"), x, s, t)?.to_owned()))
            }
        };
        Ok(OwnedData {
            features,
            tokens,
            lengths: d.lengths.as_deref().map(|l| l.iter().map(|&v| v as usize).collect()),
            classes: d.classes.as_deref().map(<[u32]>::to_vec),
            values: d.values.as_deref().map(threads::copied).transpose()?,
        })
    }

    fn inputs(&self) -> gyre_core::Result<Inputs<'_, f32>> {
        match (&self.features, &self.tokens) {
            (Some(f), _) => Ok(Inputs::Features(f.view())),
            (None, Some(t)) => Ok(Inputs::Tokens(t.view())),
            (None, None) => Err(CoreError::Missing { what: "x".into(), context: "for every call".into() }),
        }
    }

    fn dataset(&self) -> gyre_core::Result<Dataset<'_, f32>> {
        let targets = match (&self.classes, &self.values) {
            (Some(c), _) => Targets::Classes(c),
            (None, Some(v)) => Targets::Values(v),
            (None, None) => {
                return Err(CoreError::Missing { what: "y".into(), context: "for training and evaluation".into() })
            }
        };
        Ok(Dataset { inputs: self.inputs()?, lengths: self.lengths.as_deref(), targets })
    }
}

/// One progress event of `fit`.
#[napi(object)]
#[derive(Clone)]
pub struct ProgressEvent {
    /// `"batch"` or `"epoch"`.
    pub kind: String,
    /// 1-based epoch.
    pub epoch: u32,
    /// 1-based batch (batch events).
    pub batch: Option<u32>,
    /// Batches per epoch (batch events).
    pub batches: Option<u32>,
    /// Loss of the batch, or mean loss of the epoch.
    pub loss: f64,
    /// Training accuracy of the epoch (cross-entropy).
    pub accuracy: Option<f64>,
    /// Validation loss (epoch events with validation data).
    pub val_loss: Option<f64>,
    /// Validation accuracy (cross-entropy).
    pub val_accuracy: Option<f64>,
    /// Learning rate of the epoch (epoch events).
    pub learning_rate: Option<f64>,
    /// Training samples per second.
    pub samples_per_second: f64,
}

fn event(p: &Progress) -> ProgressEvent {
    match *p {
        Progress::Batch { epoch, batch, batches, loss, samples_per_second } => ProgressEvent {
            kind: "batch".into(),
            epoch: epoch as u32,
            batch: Some(batch as u32),
            batches: Some(batches as u32),
            loss,
            accuracy: None,
            val_loss: None,
            val_accuracy: None,
            learning_rate: None,
            samples_per_second,
        },
        Progress::Epoch { epoch, loss, accuracy, validation, learning_rate, samples_per_second } => ProgressEvent {
            kind: "epoch".into(),
            epoch: epoch as u32,
            batch: None,
            batches: None,
            loss,
            accuracy,
            val_loss: validation.map(|v| v.loss),
            val_accuracy: validation.and_then(|v| v.accuracy),
            learning_rate: Some(learning_rate),
            samples_per_second,
        },
    }
}

/// What `fit` resolves to.
#[napi(object)]
pub struct FitHistory {
    /// One event per completed epoch.
    pub epochs: Vec<ProgressEvent>,
    /// Stopped by early stopping.
    pub stopped_early: bool,
    /// Stopped by `abortTraining` (an AbortSignal).
    pub aborted: bool,
}

/// Loss and accuracy over a dataset.
#[napi(object)]
pub struct EvaluationResult {
    /// Mean loss.
    pub loss: f64,
    /// Accuracy (cross-entropy only).
    pub accuracy: Option<f64>,
}

type ProgressFn = ThreadsafeFunction<ProgressEvent, (), ProgressEvent, Status, false>;

struct Trainable {
    model: Model<f32>,
    optimizer: Option<Optimizer<f32>>,
    user: Option<String>,
}

/// A sequential model living in native memory. Its weights (and optimizer state) are
/// reported to V8 as external memory, so the garbage collector sees their weight.
#[napi(custom_finalize)]
pub struct NativeModel {
    inner: Arc<Mutex<Trainable>>,
    training: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    disposed: Arc<AtomicBool>,
    /// Bytes reported to V8 so far.
    reported: Arc<AtomicI64>,
    input: InputKind,
    /// The configuration never changes: readable while training.
    config_json: String,
}

fn lock(m: &Mutex<Trainable>) -> Result<MutexGuard<'_, Trainable>> {
    m.try_lock().map_err(|e| match e {
        std::sync::TryLockError::WouldBlock => BindingError::busy(),
        std::sync::TryLockError::Poisoned(_) => {
            BindingError::internal("the model's lock was poisoned by an earlier panic")
        }
    })
}

impl NativeModel {
    /// The model for a call on the JavaScript thread: refused while a fit is pending or running
    /// (its task may not have taken the lock yet).
    fn held(&self) -> Result<MutexGuard<'_, Trainable>> {
        if self.disposed.load(Ordering::SeqCst) {
            return Err(BindingError::disposed());
        }
        if self.training.load(Ordering::SeqCst) {
            return Err(BindingError::busy());
        }
        lock(&self.inner)
    }

    fn wrap(env: &Env, t: Trainable) -> Self {
        let bytes = native_bytes(&t);
        let model = NativeModel {
            input: t.model.config().input,
            config_json: t.model.config().to_json(),
            inner: Arc::new(Mutex::new(t)),
            training: Arc::new(AtomicBool::new(false)),
            abort: Arc::new(AtomicBool::new(false)),
            disposed: Arc::new(AtomicBool::new(false)),
            reported: Arc::new(AtomicI64::new(0)),
        };
        report(env, &model.reported, bytes);
        model
    }
}

impl napi::bindgen_prelude::ObjectFinalize for NativeModel {
    fn finalize(self, env: Env) -> napi::Result<()> {
        report(&env, &self.reported, 0);
        Ok(())
    }
}

struct Forwarder<'a> {
    progress: Option<&'a ProgressFn>,
    abort: &'a AtomicBool,
}

impl Observer for Forwarder<'_> {
    fn progress(&mut self, p: Progress) {
        #[cfg(debug_assertions)]
        crate::debug::panic_in_progress();
        if let Some(f) = self.progress {
            // Non-blocking: training never waits for JavaScript.
            f.call(event(&p), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
    fn should_stop(&mut self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

/// The model's optimizer for `config`: the one it has when its configuration is the same
/// (its state carries over between calls), else a fresh one.
fn prepared_optimizer(
    t: &mut Trainable,
    config: OptimizerConfig,
) -> gyre_core::Result<(&mut Model<f32>, &mut Optimizer<f32>)> {
    let reuse = t.optimizer.as_ref().is_some_and(|o| *o.config() == config);
    if !reuse {
        t.optimizer = Some(train::optimizer_for(&t.model, config)?);
    }
    let optimizer = t
        .optimizer
        .as_mut()
        .ok_or_else(|| CoreError::Missing { what: "optimizer".into(), context: "to train".into() })?;
    Ok((&mut t.model, optimizer))
}

fn poisoned() -> CoreError {
    CoreError::InvalidArgument {
        what: "model".into(),
        expected: "usable".into(),
        got: "poisoned by an earlier panic".into(),
    }
}

/// What one `trainBatch` did.
#[napi(object)]
pub struct BatchResult {
    /// Mean loss of the batch over its counted rows.
    pub loss: f64,
    /// Rows the loss counts (sequences, steps or values, by loss and model).
    pub count: u32,
    /// Rows predicted right (cross-entropy; else 0).
    pub correct: u32,
    /// The learning rate of the update (the schedule's, at this epoch).
    pub learning_rate: f64,
}

/// Background task of `NativeModel.trainBatch`: one update on one batch.
pub struct TrainBatchTask {
    inner: Arc<Mutex<Trainable>>,
    reported: Arc<AtomicI64>,
    training: Arc<AtomicBool>,
    data: OwnedData,
    config: FitConfig,
    optimizer: OptimizerConfig,
    epoch: usize,
    batch: usize,
    failure: Failure,
}

impl Task for TrainBatchTask {
    type Output = train::BatchOutcome;
    type JsValue = BatchResult;

    fn compute(&mut self) -> napi::Result<train::BatchOutcome> {
        let r = contain(|| {
            let mut guard = self.inner.lock().map_err(|_| poisoned())?;
            let t = &mut *guard;
            let (model, optimizer) = prepared_optimizer(t, self.optimizer)?;
            let set = self.data.dataset()?;
            let (config, epoch, batch) = (&self.config, self.epoch, self.batch);
            Ok(threads::install(|| train::train_batch(model, optimizer, &set, config, epoch, batch))??)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<BatchResult> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, o: train::BatchOutcome) -> napi::Result<BatchResult> {
        Ok(BatchResult {
            loss: o.loss,
            count: o.count as u32,
            correct: o.correct as u32,
            learning_rate: o.learning_rate,
        })
    }

    fn finally(self, env: Env) -> napi::Result<()> {
        if let Ok(t) = self.inner.lock() {
            report(&env, &self.reported, native_bytes(&t));
        }
        self.training.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Background training task of `NativeModel.fit`.
pub struct FitTask {
    inner: Arc<Mutex<Trainable>>,
    reported: Arc<AtomicI64>,
    training: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    data: OwnedData,
    validation: Option<OwnedData>,
    config: FitConfig,
    optimizer: OptimizerConfig,
    progress: Option<ProgressFn>,
    failure: Failure,
}

impl FitTask {
    fn run(&mut self) -> gyre_core::Result<History> {
        let mut guard = self.inner.lock().map_err(|_| poisoned())?;
        let t = &mut *guard;
        let (model, optimizer) = prepared_optimizer(t, self.optimizer)?;
        let train_set = self.data.dataset()?;
        let val_set = self.validation.as_ref().map(OwnedData::dataset).transpose()?;
        let mut observer = Forwarder { progress: self.progress.as_ref(), abort: &self.abort };
        let config = &self.config;
        threads::install(|| train::fit(model, optimizer, &train_set, val_set.as_ref(), config, &mut observer))?
    }
}

impl Task for FitTask {
    type Output = History;
    type JsValue = FitHistory;

    fn compute(&mut self) -> napi::Result<History> {
        let r = contain(|| Ok(self.run()?));
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<FitHistory> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, h: History) -> napi::Result<FitHistory> {
        Ok(FitHistory {
            epochs: h.epochs.iter().map(event).collect(),
            stopped_early: h.stopped_early,
            aborted: h.aborted,
        })
    }

    fn finally(self, env: Env) -> napi::Result<()> {
        if let Ok(t) = self.inner.lock() {
            report(&env, &self.reported, native_bytes(&t));
        }
        self.training.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// Background prediction task of `NativeModel.predict`.
pub struct PredictTask {
    inner: Arc<Mutex<Trainable>>,
    data: OwnedData,
    batch_size: usize,
    failure: Failure,
}

fn predict_with(t: &Trainable, data: &OwnedData, batch_size: usize) -> gyre_core::Result<PredictResult> {
    let inputs = data.inputs()?;
    let p = threads::install(|| train::predict(&t.model, inputs, data.lengths.as_deref(), batch_size))??;
    let states = p
        .hidden
        .into_iter()
        .zip(p.cell)
        .map(|(h, c)| {
            let count = h.len() as u32;
            let cell: Vec<f32> = c.into_iter().flatten().collect();
            LayerState {
                count,
                hidden: Float32Array::new(h.into_iter().flatten().collect()),
                cell: (!cell.is_empty()).then(|| Float32Array::new(cell)),
            }
        })
        .collect();
    Ok(PredictResult { output: Float32Array::new(p.output), states })
}

/// Final states of one recurrent layer.
#[napi(object)]
pub struct LayerState {
    /// Number of stacked layers × directions `K`.
    pub count: u32,
    /// `[K, S, H]` final hidden states (PyTorch's `h_n` order: layer by layer, forward then reverse).
    pub hidden: Float32Array,
    /// `[K, S, H]` final cell states (LSTM only).
    pub cell: Option<Float32Array>,
}

/// Output of `predict`.
#[napi(object)]
pub struct PredictResult {
    /// `[S, T, O]` or `[S, O]`.
    pub output: Float32Array,
    /// Final states, one entry per recurrent layer.
    pub states: Vec<LayerState>,
}

impl Task for PredictTask {
    type Output = PredictResult;
    type JsValue = PredictResult;

    fn compute(&mut self) -> napi::Result<PredictResult> {
        let r = contain(|| {
            let guard = self.inner.lock().map_err(|_| BindingError::internal("the model's lock was poisoned"))?;
            Ok(predict_with(&guard, &self.data, self.batch_size)?)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<PredictResult> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, out: PredictResult) -> napi::Result<PredictResult> {
        Ok(out)
    }
}

/// Background evaluation task of `NativeModel.evaluate`.
pub struct EvaluateTask {
    inner: Arc<Mutex<Trainable>>,
    data: OwnedData,
    loss: String,
    batch_size: usize,
    failure: Failure,
}

fn evaluate_with(
    t: &Trainable,
    data: &OwnedData,
    loss: &str,
    batch_size: usize,
) -> gyre_core::Result<EvaluationResult> {
    let loss = loss_from_name(loss)?;
    let set = data.dataset()?;
    let e = threads::install(|| train::evaluate(&t.model, &set, loss, batch_size))??;
    Ok(EvaluationResult { loss: e.loss, accuracy: e.accuracy })
}

impl Task for EvaluateTask {
    type Output = EvaluationResult;
    type JsValue = EvaluationResult;

    fn compute(&mut self) -> napi::Result<EvaluationResult> {
        let r = contain(|| {
            let guard = self.inner.lock().map_err(|_| BindingError::internal("the model's lock was poisoned"))?;
            Ok(evaluate_with(&guard, &self.data, &self.loss, self.batch_size)?)
        });
        self.failure.keep(r)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<EvaluationResult> {
        self.failure.reject(env, err)
    }

    fn resolve(&mut self, _env: Env, out: EvaluationResult) -> napi::Result<EvaluationResult> {
        Ok(out)
    }
}

fn checked_batch_size(v: u32) -> Result<usize> {
    Ok(gyre_core::tensor::positive("batchSize", v as usize)?)
}

#[napi]
impl NativeModel {
    /// Builds a model from its JSON configuration, with weights initialised from `seed`
    /// (a non-negative integer below 2^53).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, config_json: String, seed: f64) -> Result<Self> {
        if !(seed.is_finite() && seed >= 0.0 && seed.fract() == 0.0 && seed < 9_007_199_254_740_992.0) {
            return Err(BindingError::from(CoreError::InvalidArgument {
                what: "seed".into(),
                expected: "an integer in [0, 2^53)".into(),
                got: seed.to_string(),
            }));
        }
        let config = ModelConfig::from_json(&config_json)?;
        let model = Model::new(config, seed as u64)?;
        Ok(Self::wrap(&env, Trainable { model, optimizer: None, user: None }))
    }

    /// Loads a model file's bytes (see `toSafetensors`), checking them strictly.
    #[napi(factory, catch_unwind)]
    pub fn from_safetensors(env: Env, bytes: Uint8Array) -> Result<Self> {
        let saved = gyre_core::io::model_file::load(&bytes)?;
        Ok(Self::wrap(&env, Trainable { model: saved.model, optimizer: saved.optimizer, user: saved.user }))
    }

    /// Frees the weights now instead of at garbage collection; every later call fails with
    /// `GYRE_DISPOSED`. Refused while training.
    #[napi(catch_unwind)]
    pub fn dispose(&self, env: Env) -> Result<()> {
        let mut g = self.held()?;
        self.disposed.store(true, Ordering::SeqCst);
        for t in &mut g.model.tensors {
            t.data = Vec::new();
        }
        g.optimizer = None;
        report(&env, &self.reported, 0);
        Ok(())
    }

    /// Bytes of native memory this model holds (weights and optimizer state), as reported to
    /// V8 with `napi_adjust_external_memory`.
    #[napi(getter, catch_unwind)]
    pub fn native_bytes(&self) -> f64 {
        self.reported.load(Ordering::SeqCst) as f64
    }

    /// Whether `dispose` was called.
    #[napi(getter, catch_unwind)]
    pub fn is_disposed(&self) -> bool {
        self.disposed.load(Ordering::SeqCst)
    }

    /// The bytes of a `.safetensors` file holding the model (weights, configuration, trained
    /// epochs), its optimizer state when `includeOptimizer` and one exists, and `user`.
    #[napi(catch_unwind)]
    pub fn to_safetensors(&self, include_optimizer: bool, user: Option<String>) -> Result<Buffer> {
        let g = self.held()?;
        let optimizer = if include_optimizer { g.optimizer.as_ref() } else { None };
        let user = user.or_else(|| g.user.clone());
        let bytes = gyre_core::io::model_file::save(&g.model, optimizer, user.as_deref())?;
        Ok(Buffer::from(bytes))
    }

    /// Layer `layer`'s tensors as a `.safetensors` file named as the PyTorch module's `state_dict`.
    #[napi(catch_unwind)]
    pub fn export_layer(&self, layer: u32) -> Result<Buffer> {
        let g = self.held()?;
        Ok(Buffer::from(gyre_core::io::model_file::export_layer(&g.model, layer as usize)?))
    }

    /// Reads a PyTorch `state_dict` (`.safetensors` bytes) into layer `layer`; tensor names
    /// start with `prefix`.
    #[napi(catch_unwind)]
    pub fn import_layer(&self, layer: u32, bytes: Uint8Array, prefix: String) -> Result<()> {
        let mut g = self.held()?;
        Ok(gyre_core::io::model_file::import_layer(&mut g.model, layer as usize, &bytes, &prefix)?)
    }

    /// The `user` metadata the model was loaded with or last saved with.
    #[napi(catch_unwind)]
    pub fn user_metadata(&self) -> Result<Option<String>> {
        Ok(self.held()?.user.clone())
    }

    /// Epochs of training completed so far.
    #[napi(catch_unwind)]
    pub fn trained_epochs(&self) -> Result<u32> {
        Ok(self.held()?.model.trained_epochs as u32)
    }

    /// The model's configuration as JSON, every default written out.
    #[napi(catch_unwind)]
    pub fn config_json(&self) -> Result<String> {
        Ok(self.config_json.clone())
    }

    /// Names of the parameter tensors, in order (PyTorch style: `0.weight_ih_l0`, `1.weight`).
    #[napi(catch_unwind)]
    pub fn parameter_names(&self) -> Result<Vec<String>> {
        Ok(self.held()?.model.tensors.iter().map(|t| t.name.clone()).collect())
    }

    /// Shape of a parameter tensor.
    #[napi(catch_unwind)]
    pub fn parameter_shape(&self, name: String) -> Result<Vec<u32>> {
        let g = self.held()?;
        let t = g.model.tensors.iter().find(|t| t.name == name).ok_or_else(|| unknown_parameter(&name))?;
        Ok(t.shape.iter().map(|&d| d as u32).collect())
    }

    /// A copy of a parameter tensor's values (row-major).
    #[napi(catch_unwind)]
    pub fn get_parameter(&self, name: String) -> Result<Float32Array> {
        let g = self.held()?;
        let t = g.model.tensors.iter().find(|t| t.name == name).ok_or_else(|| unknown_parameter(&name))?;
        Ok(Float32Array::new(t.data.clone()))
    }

    /// Replaces a parameter tensor's values; the length must match.
    #[napi(catch_unwind)]
    pub fn set_parameter(&self, name: String, values: Float32Array) -> Result<()> {
        let mut g = self.held()?;
        let t = g.model.tensors.iter_mut().find(|t| t.name == name).ok_or_else(|| unknown_parameter(&name))?;
        if values.len() != t.data.len() {
            return Err(BindingError::from(CoreError::ShapeMismatch {
                what: name,
                expected: format!("{:?} ({} values)", t.shape, t.data.len()),
                got: format!("{} values", values.len()),
            }));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(BindingError::from(CoreError::InvalidArgument {
                what: format!("{name}[{i}]"),
                expected: "a finite number".into(),
                got: values[i].to_string(),
            }));
        }
        t.data.copy_from_slice(&values);
        Ok(())
    }

    /// Total number of parameter values.
    #[napi(catch_unwind)]
    pub fn parameter_count(&self) -> Result<u32> {
        Ok(self.held()?.model.parameter_count() as u32)
    }

    /// Whether a `fit` is running.
    #[napi(getter, catch_unwind)]
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::SeqCst)
    }

    /// Trains off the JavaScript thread. The data are copied before this returns. Rejects with
    /// `GYRE_BUSY` if a fit is already running on this model.
    #[napi(catch_unwind, ts_return_type = "Promise<FitHistory>")]
    pub fn fit(
        &self,
        data: DataArgs,
        validation: Option<DataArgs>,
        options_json: String,
        on_progress: Option<ThreadsafeFunction<ProgressEvent, (), ProgressEvent, Status, false>>,
    ) -> Result<AsyncTask<FitTask>> {
        if self.disposed.load(Ordering::SeqCst) {
            return Err(BindingError::disposed());
        }
        let (config, optimizer) = fit_from_json(&options_json)?;
        let data = OwnedData::copy(&data, self.input, "train")?;
        let validation = validation.map(|v| OwnedData::copy(&v, self.input, "validation")).transpose()?;
        {
            let g = self.held()?;
            config.validate(&g.model)?;
            train::check_dataset(&g.model, &data.dataset()?, config.loss, "train")?;
            if let Some(v) = &validation {
                train::check_dataset(&g.model, &v.dataset()?, config.loss, "validation")?;
            }
        }
        if self.training.swap(true, Ordering::SeqCst) {
            return Err(BindingError::busy());
        }
        self.abort.store(false, Ordering::SeqCst);
        Ok(AsyncTask::new(FitTask {
            inner: self.inner.clone(),
            reported: self.reported.clone(),
            training: self.training.clone(),
            abort: self.abort.clone(),
            data,
            validation,
            config,
            optimizer,
            progress: on_progress,
            failure: Failure::default(),
        }))
    }

    /// One training update on the whole batch `data` (no shuffling; `optionsJson` as for
    /// `fit`, whose `epochs`, `batchSize`, `shuffle` and `earlyStopping` are not used), as batch
    /// `batch` of epoch `epoch` (both 1-based; they pick the learning rate of the schedule and
    /// seed dropout). Runs off the JavaScript thread; the model is busy until it settles. The
    /// building block of training from a stream of batches.
    #[napi(catch_unwind, ts_return_type = "Promise<BatchResult>")]
    pub fn train_batch(
        &self,
        data: DataArgs,
        options_json: String,
        epoch: u32,
        batch: u32,
    ) -> Result<AsyncTask<TrainBatchTask>> {
        if self.disposed.load(Ordering::SeqCst) {
            return Err(BindingError::disposed());
        }
        let (config, optimizer) = fit_from_json(&options_json)?;
        let data = OwnedData::copy(&data, self.input, "")?;
        {
            let g = self.held()?;
            config.validate(&g.model)?;
            gyre_core::tensor::positive("epoch", epoch as usize)?;
            gyre_core::tensor::positive("batch", batch as usize)?;
            train::check_dataset(&g.model, &data.dataset()?, config.loss, "")?;
        }
        if self.training.swap(true, Ordering::SeqCst) {
            return Err(BindingError::busy());
        }
        Ok(AsyncTask::new(TrainBatchTask {
            inner: self.inner.clone(),
            reported: self.reported.clone(),
            training: self.training.clone(),
            data,
            config,
            optimizer,
            epoch: epoch as usize,
            batch: batch as usize,
            failure: Failure::default(),
        }))
    }

    /// Records that `epochs` epochs of training are complete (training from a stream counts
    /// its own epochs); saved with the model and used to number later epochs.
    #[napi(catch_unwind)]
    pub fn set_trained_epochs(&self, epochs: u32) -> Result<()> {
        self.held()?.model.trained_epochs = epochs as usize;
        Ok(())
    }

    /// Asks a running `fit` to stop before its next batch (the Promise then resolves with
    /// `aborted: true`); does nothing when no fit is running.
    #[napi(catch_unwind)]
    pub fn abort_training(&self) {
        if self.training.load(Ordering::SeqCst) {
            self.abort.store(true, Ordering::SeqCst);
        }
    }

    /// The model's output, `[S, T, O]` or `[S, O]`, computed off the JavaScript thread.
    #[napi(catch_unwind, ts_return_type = "Promise<PredictResult>")]
    pub fn predict(&self, data: DataArgs, batch_size: u32) -> Result<AsyncTask<PredictTask>> {
        drop(self.held()?);
        let data = OwnedData::copy(&data, self.input, "")?;
        Ok(AsyncTask::new(PredictTask {
            inner: self.inner.clone(),
            data,
            batch_size: checked_batch_size(batch_size)?,
            failure: Failure::default(),
        }))
    }

    /// Zero state for `batch` independent streams.
    #[napi(catch_unwind)]
    pub fn create_state(&self, batch: u32) -> Result<StreamState> {
        gyre_core::tensor::positive("batch", batch as usize)?;
        let state = self.held()?.model.stream_state(batch as usize)?;
        Ok(StreamState { state, batch })
    }

    /// Restores a state saved with `StreamState.toArray` (its length must match).
    #[napi(catch_unwind)]
    pub fn state_from_array(&self, batch: u32, values: Float32Array) -> Result<StreamState> {
        let mut s = self.create_state(batch)?;
        let want: usize = s.state.hidden.iter().chain(&s.state.cell).flatten().map(Vec::len).sum();
        if values.len() != want {
            return Err(BindingError::from(CoreError::ShapeMismatch {
                what: "state".into(),
                expected: format!("{want} values for {batch} streams"),
                got: format!("{} values", values.len()),
            }));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(BindingError::from(CoreError::InvalidArgument {
                what: format!("state[{i}]"),
                expected: "a finite number".into(),
                got: values[i].to_string(),
            }));
        }
        let mut at = 0;
        for v in s.state.hidden.iter_mut().chain(s.state.cell.iter_mut()).flatten() {
            let n = v.len();
            v.copy_from_slice(&values[at..at + n]);
            at += n;
        }
        Ok(s)
    }

    /// One time step of every stream of `state`: `input` holds `[B, I]` features (or `[B]`
    /// token ids); returns the output `[B, O]` and advances `state` in place.
    #[napi(catch_unwind)]
    pub fn step(
        &self,
        state: &mut StreamState,
        features: Option<Float32Array>,
        tokens: Option<Uint32Array>,
    ) -> Result<Float32Array> {
        let b = state.batch as usize;
        let g = self.held()?;
        // A step's work is about one multiply-add per weight and stream.
        let work = b.saturating_mul(g.model.parameter_count());
        let out = match (self.input, features.as_deref(), tokens.as_deref()) {
            (InputKind::Features { size }, Some(x), _) => {
                let x = gyre_core::tensor::tensor3("input", x, b, 1, size)?;
                threads::install_sized(work, || g.model.step(Inputs::Features(x), &mut state.state)).and_then(|r| r)
            }
            (InputKind::Tokens { .. }, _, Some(x)) => {
                let x = gyre_core::tensor::matrix("input", x, b, 1)?;
                threads::install_sized(work, || g.model.step(Inputs::Tokens(x), &mut state.state)).and_then(|r| r)
            }
            (InputKind::Features { .. }, ..) => {
                Err(CoreError::Missing { what: "input".into(), context: "as a Float32Array of features".into() })
            }
            (InputKind::Tokens { .. }, ..) => {
                Err(CoreError::Missing { what: "input".into(), context: "as a Uint32Array of token ids".into() })
            }
        }?;
        Ok(Float32Array::new(out))
    }

    /// The model's output, `[S, T, O]` or `[S, O]`, on the calling thread.
    #[napi(catch_unwind)]
    pub fn predict_sync(&self, data: DataArgs, batch_size: u32) -> Result<PredictResult> {
        let data = OwnedData::copy(&data, self.input, "")?;
        let g = self.held()?;
        Ok(predict_with(&g, &data, checked_batch_size(batch_size)?)?)
    }

    /// Mean loss (and accuracy) over a dataset, computed off the JavaScript thread.
    #[napi(catch_unwind, ts_return_type = "Promise<EvaluationResult>")]
    pub fn evaluate(&self, data: DataArgs, loss: String, batch_size: u32) -> Result<AsyncTask<EvaluateTask>> {
        drop(self.held()?);
        let data = OwnedData::copy(&data, self.input, "")?;
        Ok(AsyncTask::new(EvaluateTask {
            inner: self.inner.clone(),
            data,
            loss,
            batch_size: checked_batch_size(batch_size)?,
            failure: Failure::default(),
        }))
    }

    /// Mean loss (and accuracy) over a dataset, on the calling thread.
    #[napi(catch_unwind)]
    pub fn evaluate_sync(&self, data: DataArgs, loss: String, batch_size: u32) -> Result<EvaluationResult> {
        let data = OwnedData::copy(&data, self.input, "")?;
        let g = self.held()?;
        Ok(evaluate_with(&g, &data, &loss, checked_batch_size(batch_size)?)?)
    }
}

/// The recurrent state of `batch` independent streams of one model, for step-by-step
/// inference (a server keeping many live sequences holds one per sequence or per group).
#[napi]
pub struct StreamState {
    state: gyre_core::model::ModelState<f32>,
    batch: u32,
}

#[napi]
impl StreamState {
    /// Number of streams.
    #[napi(getter, catch_unwind)]
    pub fn batch(&self) -> u32 {
        self.batch
    }

    /// Sets every state back to zeros (the start of new sequences).
    #[napi(catch_unwind)]
    pub fn reset(&mut self) {
        for v in self.state.hidden.iter_mut().chain(self.state.cell.iter_mut()).flatten() {
            v.fill(0.0);
        }
    }

    /// An independent copy.
    #[napi(catch_unwind)]
    pub fn copy(&self) -> StreamState {
        StreamState { state: self.state.clone(), batch: self.batch }
    }

    /// All state values in one array (hidden then cell states, layer by layer); pass it to
    /// `NativeModel.stateFromArray` to restore.
    #[napi(catch_unwind)]
    pub fn to_array(&self) -> Float32Array {
        let flat: Vec<f32> = self.state.hidden.iter().chain(&self.state.cell).flatten().flatten().copied().collect();
        Float32Array::new(flat)
    }
}

fn unknown_parameter(name: &str) -> BindingError {
    BindingError::from(CoreError::InvalidArgument {
        what: "parameter name".into(),
        expected: "one of the model's parameterNames()".into(),
        got: format!("{name:?}"),
    })
}

/// Sets the number of threads native calls run on (`GYRE_NUM_THREADS` sets the default).
#[napi(catch_unwind)]
pub fn set_num_threads(threads: u32) -> Result<()> {
    Ok(threads::set_num_threads(threads as usize)?)
}

/// The number of threads native calls run on.
#[napi(catch_unwind)]
pub fn get_num_threads() -> Result<u32> {
    Ok(threads::num_threads()? as u32)
}

/// Index of the first value of `data` that is NaN or infinite, or -1. `data` holds sequences of
/// `per` values each; only the first `counts[s]` values of sequence `s` are read (all `per`
/// without `counts`: padded steps are never read by a model, so they are not checked). A bit
/// test per value that the compiler vectorizes, then a scan of the block that failed: the
/// inputs' check runs at memory speed instead of one JavaScript comparison per value.
#[napi(catch_unwind)]
pub fn first_non_finite(data: Float32Array, per: u32, counts: Option<Uint32Array>) -> i64 {
    const EXPONENT: u32 = 0x7f80_0000;
    let per = per as usize;
    let bad_in =
        |block: &[f32]| block.iter().fold(0u32, |acc, &v| acc | u32::from(v.to_bits() & EXPONENT == EXPONENT)) != 0;
    let first = |start: usize, len: usize| -> Option<usize> {
        let slice = data.get(start..(start + len).min(data.len()))?;
        let mut at = start;
        for block in slice.chunks(4096) {
            if bad_in(block) {
                return block.iter().position(|v| !v.is_finite()).map(|i| at + i);
            }
            at += block.len();
        }
        None
    };
    // Blocks of at most 64K values (within one sequence's range), searched side by side on the
    // pool for a large input; the leftmost failing block gives the index.
    const BLOCK: usize = 1 << 16;
    let ranges: Vec<(usize, usize)> = match (&counts, per) {
        (Some(c), p) if p > 0 => c.iter().enumerate().map(|(s, &n)| (s * p, (n as usize).min(p))).collect(),
        _ => vec![(0, data.len())],
    };
    let blocks: Vec<(usize, usize)> =
        ranges.iter().flat_map(|&(s, n)| (0..n).step_by(BLOCK).map(move |o| (s + o, (n - o).min(BLOCK)))).collect();
    let search = || {
        use rayon::prelude::*;
        blocks.par_iter().find_map_first(|&(s, n)| first(s, n))
    };
    let serial = || blocks.iter().find_map(|&(s, n)| first(s, n));
    let found = if data.len() < 1 << 20 { serial() } else { threads::install(search).unwrap_or_else(|_| serial()) };
    found.map_or(-1, |i| i as i64)
}
