//! The native model object: building and loading a model, its parameters and files, and the
//! calls that train, evaluate, predict and step it (the work itself runs in [`crate::tasks`]).

use crate::data::{DataArgs, OwnedData};
use crate::error::{contain, BindingError, Failure, Result};
use crate::options::{read_js, MetricsOptions};
use crate::progress::ProgressEvent;
use crate::stream::StreamState;
use crate::tasks::{
    evaluate_with, metrics_of, predict_with, EvaluateTask, EvaluationResult, FitTask, PredictResult, PredictTask,
    TrainBatchTask,
};
use gyre_core::model::{spec_from_value, InputKind, Inputs, Model, ModelSpec};
use gyre_core::optim::Optimizer;
use gyre_core::train::{self, fit_from_value, loss_from_name};
use gyre_core::{threads, CoreError};
use napi::bindgen_prelude::{AsyncTask, Buffer, Float32Array, Float32ArraySlice, Uint32Array, Uint8Array, Unknown};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Native bytes a model holds: weights, and optimizer buffers when there is an optimizer.
pub(crate) fn native_bytes(t: &Trainable) -> i64 {
    let params = t.model.parameter_count();
    let buffers = t.optimizer.as_ref().map_or(0, |o| o.config().buffer_names().len());
    ((params * (1 + buffers) * std::mem::size_of::<f32>()) as i64).max(0)
}

/// Tells V8 how much native memory a model holds now.
pub(crate) fn report(env: &Env, reported: &AtomicI64, now: i64) {
    let delta = now - reported.swap(now, Ordering::SeqCst);
    if delta != 0 {
        let _ = env.adjust_external_memory(delta);
    }
}

pub(crate) struct Trainable {
    pub(crate) model: Model<f32>,
    pub(crate) optimizer: Option<Optimizer<f32>>,
    pub(crate) user: Option<String>,
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
    /// The architecture never changes: readable while training.
    config: ModelSpec,
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

    pub(crate) fn wrap(env: &Env, t: Trainable) -> Self {
        let bytes = native_bytes(&t);
        let model = NativeModel {
            input: t.model.config().input,
            config: t.model.config().clone(),
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

fn checked_batch_size(v: u32) -> Result<usize> {
    Ok(gyre_core::tensor::positive("batchSize", v as usize)?)
}

#[napi]
impl NativeModel {
    /// Builds a model from its spec (checked here: unknown options and bad values are errors
    /// naming the option's path), with weights initialised from its `seed`.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, #[napi(ts_arg_type = "ModelSpec")] spec: Unknown<'_>) -> Result<Self> {
        contain(|| {
            let (config, seed) = spec_from_value(read_js(&env, "model spec", spec)?)?;
            let model = Model::new(config, seed)?;
            Ok(Self::wrap(&env, Trainable { model, optimizer: None, user: None }))
        })
    }

    /// Loads a model file's bytes (see `toSafetensors`), checking them strictly.
    #[napi(factory, catch_unwind)]
    pub fn from_safetensors(env: Env, bytes: Uint8Array) -> Result<Self> {
        contain(|| {
            let saved = gyre_core::io::model_file::load(&bytes)?;
            Ok(Self::wrap(&env, Trainable { model: saved.model, optimizer: saved.optimizer, user: saved.user }))
        })
    }

    /// Frees the weights now instead of at garbage collection; every later call fails with
    /// `GYRE_DISPOSED`. Refused while training.
    #[napi(catch_unwind)]
    pub fn dispose(&self, env: Env) -> Result<()> {
        contain(|| {
            let mut g = self.held()?;
            self.disposed.store(true, Ordering::SeqCst);
            for t in &mut g.model.tensors {
                t.data = Vec::new();
            }
            g.optimizer = None;
            report(&env, &self.reported, 0);
            Ok(())
        })
    }

    /// Bytes of native memory this model holds (weights and optimizer state), as reported to
    /// V8 with `napi_adjust_external_memory`.
    #[napi(getter, catch_unwind)]
    pub fn native_bytes(&self) -> Result<f64> {
        contain(|| Ok(self.reported.load(Ordering::SeqCst) as f64))
    }

    /// Whether `dispose` was called.
    #[napi(getter, catch_unwind)]
    pub fn is_disposed(&self) -> Result<bool> {
        contain(|| Ok(self.disposed.load(Ordering::SeqCst)))
    }

    /// The bytes of a `.safetensors` file holding the model (weights, configuration, trained
    /// epochs), its optimizer state when `includeOptimizer` and one exists, and `user`.
    #[napi(catch_unwind)]
    pub fn to_safetensors(&self, include_optimizer: bool, user: Option<String>) -> Result<Buffer> {
        contain(|| {
            let g = self.held()?;
            let optimizer = if include_optimizer { g.optimizer.as_ref() } else { None };
            let user = user.or_else(|| g.user.clone());
            let bytes = gyre_core::io::model_file::save(&g.model, optimizer, user.as_deref())?;
            Ok(Buffer::from(bytes))
        })
    }

    /// Layer `layer`'s tensors as a `.safetensors` file named as the PyTorch module's `state_dict`.
    #[napi(catch_unwind)]
    pub fn export_layer(&self, layer: u32) -> Result<Buffer> {
        contain(|| {
            let g = self.held()?;
            Ok(Buffer::from(gyre_core::io::model_file::export_layer(&g.model, layer as usize)?))
        })
    }

    /// Reads a PyTorch `state_dict` (`.safetensors` bytes) into layer `layer`; tensor names
    /// start with `prefix`.
    #[napi(catch_unwind)]
    pub fn import_layer(&self, layer: u32, bytes: Uint8Array, prefix: String) -> Result<()> {
        contain(|| {
            let mut g = self.held()?;
            Ok(gyre_core::io::model_file::import_layer(&mut g.model, layer as usize, &bytes, &prefix)?)
        })
    }

    /// The `user` metadata the model was loaded with or last saved with.
    #[napi(catch_unwind)]
    pub fn user_metadata(&self) -> Result<Option<String>> {
        contain(|| Ok(self.held()?.user.clone()))
    }

    /// Epochs of training completed so far.
    #[napi(catch_unwind)]
    pub fn trained_epochs(&self) -> Result<u32> {
        contain(|| Ok(self.held()?.model.trained_epochs as u32))
    }

    /// The model's spec with every default written out (without a seed): `new NativeModel(spec)`
    /// builds the same architecture.
    #[napi(catch_unwind, ts_return_type = "ModelSpec")]
    pub fn spec(&self, env: Env) -> Result<Unknown<'_>> {
        contain(|| Ok(env.to_js_value(&self.config.to_object())?))
    }

    /// Features per row of the model's output (per step, or per sequence): its last layer's width.
    #[napi(getter, catch_unwind)]
    pub fn output_width(&self) -> Result<u32> {
        contain(|| Ok(self.config.output_width() as u32))
    }

    /// Whether the model outputs a sequence `[S, T, O]` (one target row per step) rather than
    /// `[S, O]` (one per sequence).
    #[napi(getter, catch_unwind)]
    pub fn outputs_sequence(&self) -> Result<bool> {
        contain(|| Ok(self.config.outputs_sequence()))
    }

    /// Checks that `loss` (`crossEntropy`, `mse`, `binaryCrossEntropy`) fits the model's last
    /// layer; readable while training.
    #[napi(catch_unwind)]
    pub fn check_loss(&self, loss: String) -> Result<()> {
        contain(|| Ok(train::check_loss(&self.config, loss_from_name(&loss)?)?))
    }

    /// Names of the parameter tensors, in order (PyTorch style: `0.weight_ih_l0`, `1.weight`).
    #[napi(catch_unwind)]
    pub fn parameter_names(&self) -> Result<Vec<String>> {
        contain(|| Ok(self.held()?.model.tensors.iter().map(|t| t.name.clone()).collect()))
    }

    /// Shape of a parameter tensor.
    #[napi(catch_unwind)]
    pub fn parameter_shape(&self, name: String) -> Result<Vec<u32>> {
        contain(|| {
            let g = self.held()?;
            let t = g.model.tensors.iter().find(|t| t.name == name).ok_or_else(|| unknown_parameter(&name))?;
            Ok(t.shape.iter().map(|&d| d as u32).collect())
        })
    }

    /// A copy of a parameter tensor's values (row-major).
    #[napi(catch_unwind)]
    pub fn get_parameter(&self, name: String) -> Result<Float32Array> {
        contain(|| {
            let g = self.held()?;
            let t = g.model.tensors.iter().find(|t| t.name == name).ok_or_else(|| unknown_parameter(&name))?;
            Ok(Float32Array::new(t.data.clone()))
        })
    }

    /// Replaces a parameter tensor's values; the length must match.
    #[napi(catch_unwind)]
    pub fn set_parameter(&self, name: String, values: Float32Array) -> Result<()> {
        contain(|| {
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
        })
    }

    /// Total number of parameter values.
    #[napi(catch_unwind)]
    pub fn parameter_count(&self) -> Result<u32> {
        contain(|| Ok(self.held()?.model.parameter_count() as u32))
    }

    /// Whether a `fit` is running.
    #[napi(getter, catch_unwind)]
    pub fn is_training(&self) -> Result<bool> {
        contain(|| Ok(self.training.load(Ordering::SeqCst)))
    }

    /// Trains off the JavaScript thread. The data are copied before this returns. Rejects with
    /// `GYRE_BUSY` if a fit is already running on this model. With `snapshots`, each epoch
    /// event given to `onProgress` carries a copy of the model as it was at the epoch's end
    /// (weights, optimizer state, trained epochs and metadata), a `NativeModel` of its own.
    #[napi(catch_unwind, ts_return_type = "Promise<FitHistory>")]
    pub fn fit(
        &self,
        data: DataArgs,
        validation: Option<DataArgs>,
        env: Env,
        #[napi(ts_arg_type = "FitOptions")] options: Unknown<'_>,
        on_progress: Option<ThreadsafeFunction<ProgressEvent, (), ProgressEvent, Status, false>>,
        snapshots: Option<bool>,
    ) -> Result<AsyncTask<FitTask>> {
        contain(|| {
            if self.disposed.load(Ordering::SeqCst) {
                return Err(BindingError::disposed());
            }
            let (config, optimizer) = fit_from_value(read_js(&env, "training options", options)?)?;
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
                snapshots: snapshots.unwrap_or(false),
                failure: Failure::default(),
            }))
        })
    }

    /// One training update on the whole batch `data` (no shuffling; `options` as for
    /// `fit`, whose `epochs`, `batchSize`, `shuffle` and `earlyStopping` are not used), as batch
    /// `batch` of epoch `epoch` (both 1-based; they pick the learning rate of the schedule and
    /// seed dropout). Runs off the JavaScript thread; the model is busy until it settles. The
    /// building block of training from a stream of batches.
    #[napi(catch_unwind, ts_return_type = "Promise<BatchResult>")]
    pub fn train_batch(
        &self,
        env: Env,
        data: DataArgs,
        #[napi(ts_arg_type = "FitOptions")] options: Unknown<'_>,
        epoch: u32,
        batch: u32,
    ) -> Result<AsyncTask<TrainBatchTask>> {
        contain(|| {
            if self.disposed.load(Ordering::SeqCst) {
                return Err(BindingError::disposed());
            }
            let (config, optimizer) = fit_from_value(read_js(&env, "training options", options)?)?;
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
        })
    }

    /// Checks training options (as for `fit`) against the model and returns what
    /// training from a stream of batches needs of them, every default applied.
    #[napi(catch_unwind)]
    pub fn fit_settings(
        &self,
        env: Env,
        #[napi(ts_arg_type = "FitOptions")] options: Unknown<'_>,
    ) -> Result<FitSettings> {
        contain(|| {
            let (config, _) = fit_from_value(read_js(&env, "training options", options)?)?;
            config.validate(&self.held()?.model)?;
            Ok(FitSettings {
                epochs: config.epochs as f64,
                batch_size: config.batch_size as f64,
                early_stopping: config.early_stopping.map(|e| EarlyStoppingSettings {
                    patience: e.patience as f64,
                    min_delta: e.min_delta,
                    restore_best: e.restore_best,
                }),
            })
        })
    }

    /// Records that `epochs` epochs of training are complete (training from a stream counts
    /// its own epochs); saved with the model and used to number later epochs.
    #[napi(catch_unwind)]
    pub fn set_trained_epochs(&self, epochs: u32) -> Result<()> {
        contain(|| {
            self.held()?.model.trained_epochs = epochs as usize;
            Ok(())
        })
    }

    /// Asks a running `fit` to stop before its next batch (the Promise then resolves with
    /// `aborted: true`); does nothing when no fit is running.
    #[napi(catch_unwind)]
    pub fn abort_training(&self) -> Result<()> {
        contain(|| {
            if self.training.load(Ordering::SeqCst) {
                self.abort.store(true, Ordering::SeqCst);
            }
            Ok(())
        })
    }

    /// The model's output, `[S, T, O]` or `[S, O]`, computed off the JavaScript thread.
    #[napi(catch_unwind, ts_return_type = "Promise<PredictResult>")]
    pub fn predict(&self, data: DataArgs, batch_size: u32) -> Result<AsyncTask<PredictTask>> {
        contain(|| {
            drop(self.held()?);
            let data = OwnedData::copy(&data, self.input, "")?;
            Ok(AsyncTask::new(PredictTask {
                inner: self.inner.clone(),
                data,
                batch_size: checked_batch_size(batch_size)?,
                failure: Failure::default(),
            }))
        })
    }

    /// Zero state for `batch` independent streams.
    #[napi(catch_unwind)]
    pub fn create_state(&self, batch: u32) -> Result<StreamState> {
        contain(|| {
            gyre_core::tensor::positive("batch", batch as usize)?;
            let state = self.held()?.model.stream_state(batch as usize)?;
            Ok(StreamState { state, batch })
        })
    }

    /// Restores a state saved with `StreamState.toArray` (its length must match).
    #[napi(catch_unwind)]
    pub fn state_from_array(&self, batch: u32, values: Float32Array) -> Result<StreamState> {
        contain(|| {
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
        })
    }

    /// One time step of every stream of `state`: `input` holds `[B, I]` features (or `[B]`
    /// token ids); returns the output `[B, O]` and advances `state` in place.
    #[napi(catch_unwind)]
    pub fn step<'env>(
        &self,
        env: &'env Env,
        state: &mut StreamState,
        features: Option<Float32Array>,
        tokens: Option<Uint32Array>,
    ) -> Result<Float32ArraySlice<'env>> {
        contain(|| {
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
            // Copied into memory V8 owns: handing the `Vec` over as an external buffer kept each
            // step's output alive until a garbage collection, so the allocator took fresh pages
            // (and the kernel zeroed them) at every step.
            Ok(Float32ArraySlice::copy_from(env, out)?)
        })
    }

    /// The model's output, `[S, T, O]` or `[S, O]`, on the calling thread.
    #[napi(catch_unwind)]
    pub fn predict_sync(&self, data: DataArgs, batch_size: u32) -> Result<PredictResult> {
        contain(|| {
            let data = OwnedData::copy(&data, self.input, "")?;
            let g = self.held()?;
            Ok(predict_with(&g, &data, checked_batch_size(batch_size)?)?)
        })
    }

    /// Mean loss and metrics over a dataset, computed off the JavaScript thread.
    #[napi(catch_unwind, ts_return_type = "Promise<EvaluationResult>")]
    pub fn evaluate(
        &self,
        data: DataArgs,
        loss: String,
        batch_size: u32,
        metrics: Option<MetricsOptions>,
    ) -> Result<AsyncTask<EvaluateTask>> {
        contain(|| {
            drop(self.held()?);
            let data = OwnedData::copy(&data, self.input, "")?;
            Ok(AsyncTask::new(EvaluateTask {
                inner: self.inner.clone(),
                data,
                loss,
                batch_size: checked_batch_size(batch_size)?,
                metrics: metrics_of(metrics.as_ref()),
                failure: Failure::default(),
            }))
        })
    }

    /// Mean loss and metrics over a dataset, on the calling thread.
    #[napi(catch_unwind)]
    pub fn evaluate_sync(
        &self,
        data: DataArgs,
        loss: String,
        batch_size: u32,
        metrics: Option<MetricsOptions>,
    ) -> Result<EvaluationResult> {
        contain(|| {
            let data = OwnedData::copy(&data, self.input, "")?;
            let g = self.held()?;
            Ok(evaluate_with(&g, &data, &loss, checked_batch_size(batch_size)?, metrics_of(metrics.as_ref()))?)
        })
    }
}

/// Training options with their defaults applied: what `fitDataset` reads of them.
#[napi(object)]
pub struct FitSettings {
    /// Passes over the data (default 1).
    pub epochs: f64,
    /// Sequences per batch (default 32).
    pub batch_size: f64,
    /// Early stopping, when the options ask for it.
    pub early_stopping: Option<EarlyStoppingSettings>,
}

/// Early stopping with its defaults applied.
#[napi(object)]
pub struct EarlyStoppingSettings {
    /// Epochs without improvement before stopping (default 1).
    pub patience: f64,
    /// Smallest decrease that counts as an improvement (default 0).
    pub min_delta: f64,
    /// Put back the best epoch's weights when stopping (default true).
    pub restore_best: bool,
}

fn unknown_parameter(name: &str) -> BindingError {
    BindingError::from(CoreError::InvalidArgument {
        what: "parameter name".into(),
        expected: "one of the model's parameterNames()".into(),
        got: format!("{name:?}"),
    })
}
