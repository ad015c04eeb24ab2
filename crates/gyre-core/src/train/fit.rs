//! Training, evaluation and prediction of a [`Model`] over a whole dataset: seeded shuffling,
//! batching, forward, loss, backward, clipping and the optimizer update, with truncated
//! backpropagation through time, validation, early stopping, progress events and
//! cancellation between batches.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::model::{Activation, Inputs, Model, ModelState, PackedBatch};
use crate::optim::{clip_grad_norm, clip_grad_value, Optimizer, OptimizerConfig, Param, Schedule};
use crate::random::Rng;
use crate::train::loss::{binary_cross_entropy_with_logits, mean_squared_error, softmax_cross_entropy};
use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;
use std::time::Instant;

/// The loss a model is trained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy over the last layer's units with integer class targets, per
    /// sequence or per step (padded steps are not counted). The last layer must be dense
    /// with a `linear` or `softmax` activation; the loss reads its logits.
    CrossEntropy,
    /// Mean squared error of the model's output against float targets.
    MeanSquaredError,
    /// Binary cross-entropy of float targets in `[0, 1]`; the last layer must be dense with a
    /// `linear` or `sigmoid` activation; the loss reads its logits.
    BinaryCrossEntropy,
}

/// Targets of a dataset, batch-first, for all `S` samples.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, F> {
    /// Class ids: `[S]` for a model that outputs one row per sequence, `[S, T]` per step.
    Classes(&'a [u32]),
    /// Values: `[S, O]`, or `[S, T, O]` per step.
    Values(&'a [F]),
}

/// A dataset held in memory: inputs `[S, T, I]` (or token ids `[S, T]`), optional lengths `[S]`
/// and targets.
#[derive(Clone, Copy, Debug)]
pub struct Dataset<'a, F> {
    /// The input sequences.
    pub inputs: Inputs<'a, F>,
    /// Each sequence's length (default: all `T`).
    pub lengths: Option<&'a [usize]>,
    /// The targets.
    pub targets: Targets<'a, F>,
}

impl<F: Real> Dataset<'_, F> {
    /// Number of samples `S`.
    pub fn len(&self) -> usize {
        self.inputs.dims().0
    }

    /// Whether the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Early stopping on the validation loss (the training loss when there is no validation data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without an improvement of more than `min_delta` before stopping.
    pub patience: usize,
    /// Smallest decrease that counts as an improvement.
    pub min_delta: f64,
    /// Put back the weights of the best epoch when stopping.
    pub restore_best: bool,
}

/// Options of [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Shuffle the training samples every epoch.
    pub shuffle: bool,
    /// Seed of the shuffles and dropout masks.
    pub seed: u64,
    /// The loss.
    pub loss: LossKind,
    /// The learning-rate schedule, ticked once per epoch.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    pub clip_norm: Option<f64>,
    /// Clip every gradient element to `[-v, v]`.
    pub clip_value: Option<f64>,
    /// Truncated BPTT: update after every chunk of this many steps, carrying the state.
    pub tbptt_steps: Option<usize>,
    /// Early stopping.
    pub early_stopping: Option<EarlyStopping>,
}

/// Loss and metrics over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss over every counted row.
    pub loss: f64,
    /// Fraction of rows whose largest output is the target class (cross-entropy only).
    pub accuracy: Option<f64>,
}

/// A progress event of [`fit`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Progress {
    /// After every batch.
    Batch {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// This batch's loss.
        loss: f64,
        /// Training samples per second so far in this epoch.
        samples_per_second: f64,
    },
    /// After every epoch.
    Epoch {
        /// 1-based epoch.
        epoch: usize,
        /// Mean training loss of the epoch.
        loss: f64,
        /// Training accuracy (cross-entropy only).
        accuracy: Option<f64>,
        /// Validation loss and accuracy.
        validation: Option<Evaluation>,
        /// Learning rate used in the epoch.
        learning_rate: f64,
        /// Samples per second over the epoch.
        samples_per_second: f64,
    },
}

/// Receives progress and may stop training between batches.
pub trait Observer {
    /// Called after every batch and epoch.
    fn progress(&mut self, event: Progress);
    /// Polled before every batch; `true` stops training, leaving the weights of the last
    /// completed batch.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// What [`fit`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// One `Progress::Epoch` per completed epoch.
    pub epochs: Vec<Progress>,
    /// Stopped by early stopping.
    pub stopped_early: bool,
    /// Stopped by the observer.
    pub aborted: bool,
}

fn invalid(what: &str, expected: &str, got: impl ToString) -> CoreError {
    CoreError::InvalidArgument { what: what.into(), expected: expected.into(), got: got.to_string() }
}

impl FitConfig {
    /// Checks every field against the model; errors name the option.
    pub fn validate<F: Real>(&self, model: &Model<F>) -> Result<()> {
        crate::kernels::tensor::positive("epochs", self.epochs)?;
        crate::kernels::tensor::positive("batchSize", self.batch_size)?;
        self.schedule.validate()?;
        for (what, v) in [("clipNorm", self.clip_norm), ("clipValue", self.clip_value)] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(invalid(what, "a positive finite number", v));
                }
            }
        }
        if let Some(k) = self.tbptt_steps {
            crate::kernels::tensor::positive("tbpttSteps", k)?;
            if !model.outputs_sequence() {
                return Err(invalid("tbpttSteps", "used with a model that outputs a sequence", k));
            }
        }
        if let Some(es) = self.early_stopping {
            if !(es.min_delta.is_finite() && es.min_delta >= 0.0) {
                return Err(invalid("earlyStopping.minDelta", "a finite number >= 0", es.min_delta));
            }
        }
        check_loss(model, self.loss)
    }
}

/// Checks that `loss` fits the model's last layer.
pub fn check_loss<F: Real>(model: &Model<F>, loss: LossKind) -> Result<()> {
    let act = model.final_activation();
    match loss {
        LossKind::CrossEntropy if !matches!(act, Some(Activation::Linear | Activation::Softmax)) => Err(invalid(
            "loss",
            "a model ending in a dense layer with 'linear' or 'softmax' activation",
            "crossEntropy",
        )),
        LossKind::CrossEntropy if model.output_width() < 2 => {
            Err(invalid("loss", "a last layer of at least 2 units (classes)", "crossEntropy"))
        }
        LossKind::BinaryCrossEntropy if !matches!(act, Some(Activation::Linear | Activation::Sigmoid)) => Err(invalid(
            "loss",
            "a model ending in a dense layer with 'linear' or 'sigmoid' activation",
            "binaryCrossEntropy",
        )),
        _ => Ok(()),
    }
}

/// Checks that the dataset's arrays fit the model and each other; `set` names the dataset in
/// messages (`"train"`, `"validation"`, or `""`).
pub fn check_dataset<F: Real>(model: &Model<F>, data: &Dataset<F>, loss: LossKind, set: &str) -> Result<()> {
    let prefixed = if set.is_empty() { String::new() } else { format!("{set} ") };
    let what = prefixed.as_str();
    let (s, t) = data.inputs.dims();
    crate::kernels::tensor::positive(&format!("{what}samples"), s)?;
    if let Some(l) = data.lengths {
        if l.len() != s {
            return Err(CoreError::shape(format!("{what}lengths"), format!("[{s}]"), format!("[{}]", l.len())));
        }
        if let Some((i, &len)) = l.iter().enumerate().find(|(_, &len)| len == 0 || len > t) {
            return Err(invalid(&format!("{what}lengths[{i}]"), &format!("an integer in 1..={t}"), len));
        }
    }
    if let (Inputs::Tokens(x), crate::model::InputKind::Tokens { vocab_size }) = (data.inputs, model.config().input) {
        for (i, row) in x.rows().into_iter().enumerate() {
            let len = data.lengths.map_or(t, |l| l[i]);
            if let Some((step, &id)) = row.iter().take(len).enumerate().find(|(_, &id)| id as usize >= vocab_size) {
                return Err(invalid(
                    &format!("{what}x[{i}][{step}]"),
                    &format!("a token id below the vocabulary size {vocab_size}"),
                    id,
                ));
            }
        }
    }
    let per = if model.outputs_sequence() { t } else { 1 };
    match (loss, data.targets) {
        (LossKind::CrossEntropy, Targets::Classes(y)) => {
            let want = s * per;
            if y.len() != want {
                let shape = if per > 1 { format!("[{s}, {t}]") } else { format!("[{s}]") };
                return Err(CoreError::shape(
                    format!("{what}y"),
                    format!("{shape} ({want} class ids)"),
                    format!("{} values", y.len()),
                ));
            }
            let classes = model.output_width();
            if let Some((i, &c)) = y.iter().enumerate().find(|(_, &c)| c as usize >= classes) {
                return Err(invalid(&format!("{what}y[{i}]"), &format!("a class id below {classes}"), c));
            }
            Ok(())
        }
        (LossKind::CrossEntropy, Targets::Values(_)) => {
            Err(invalid(&format!("{what}y"), "integer class ids for crossEntropy", "float values"))
        }
        (_, Targets::Values(y)) => {
            let want = s * per * model.output_width();
            if y.len() != want {
                let o = model.output_width();
                let shape = if per > 1 { format!("[{s}, {t}, {o}]") } else { format!("[{s}, {o}]") };
                return Err(CoreError::shape(
                    format!("{what}y"),
                    format!("{shape} ({want} values)"),
                    format!("{} values", y.len()),
                ));
            }
            Ok(())
        }
        (_, Targets::Classes(_)) => Err(invalid(&format!("{what}y"), "float targets for this loss", "class ids")),
    }
}

/// Owned inputs and targets of one batch, batch-first (the chunks of truncated BPTT).
struct BatchData<F> {
    features: Option<Array3<F>>,
    tokens: Option<Array2<u32>>,
    lengths: Vec<usize>,
    classes: Vec<u32>,
    values: Vec<F>,
}

impl<F: Real> BatchData<F> {
    fn inputs(&self) -> Result<Inputs<'_, F>> {
        match (&self.features, &self.tokens) {
            (Some(f), _) => Ok(Inputs::Features(f.view())),
            (None, Some(t)) => Ok(Inputs::Tokens(t.view())),
            (None, None) => Err(invalid("x", "inputs", "none")),
        }
    }
}

/// One batch: samples of a dataset, read in place (packed straight from it), or a batch of
/// its own.
enum Batch<'d, 'i, F> {
    Samples(Dataset<'d, F>, &'i [usize]),
    Own(BatchData<F>),
}

impl<F: Real> Batch<'_, '_, F> {
    fn pack(&self, model: &Model<F>) -> Result<PackedBatch<F>> {
        match self {
            Batch::Samples(d, idx) => model.pack_samples(d.inputs, idx, d.lengths),
            Batch::Own(b) => model.pack(b.inputs()?, Some(&b.lengths)),
        }
    }

    /// The class ids and values of the targets, and which sequences of them the batch is
    /// (`None`: all, in order).
    fn targets(&self) -> (&[u32], &[F], Option<&[usize]>) {
        match self {
            Batch::Samples(d, idx) => match d.targets {
                Targets::Classes(y) => (y, &[], Some(idx)),
                Targets::Values(y) => (&[], y, Some(idx)),
            },
            Batch::Own(b) => (&b.classes, &b.values, None),
        }
    }
}

/// Gathers samples `idx` of `data`.
fn gather<F: Real>(data: &Dataset<F>, idx: &[usize], per: usize, out_width: usize) -> BatchData<F> {
    let (_, t) = data.inputs.dims();
    let (features, tokens) = match data.inputs {
        Inputs::Features(x) => (Some(x.select(Axis(0), idx)), None),
        Inputs::Tokens(x) => (None, Some(x.select(Axis(0), idx))),
    };
    let lengths = idx.iter().map(|&i| data.lengths.map_or(t, |l| l[i])).collect();
    let (mut classes, mut values) = (Vec::new(), Vec::new());
    match data.targets {
        Targets::Classes(y) => idx.iter().for_each(|&i| classes.extend_from_slice(&y[i * per..(i + 1) * per])),
        Targets::Values(y) => {
            let w = per * out_width;
            idx.iter().for_each(|&i| values.extend_from_slice(&y[i * w..(i + 1) * w]));
        }
    }
    BatchData { features, tokens, lengths, classes, values }
}

/// Loss of one forward trace and the gradient with respect to the last layer's output.
struct BatchLoss<F> {
    loss: f64,
    count: usize,
    correct: usize,
    grad: Array2<F>,
    pre_activation: bool,
}

fn batch_loss<F: Real>(
    model: &Model<F>,
    loss: LossKind,
    batch: &PackedBatch<F>,
    logits: &Array2<F>,
    output: &Array2<F>,
    sequence: bool,
    data: &Batch<'_, '_, F>,
) -> Result<BatchLoss<F>> {
    let (classes, values, samples) = data.targets();
    let width = model.output_width();
    let rows = output.nrows();
    let mut grad = Array2::zeros((rows, width));
    let g = grad.as_slice_mut().ok_or_else(|| invalid("gradient", "contiguous", "strided"))?;
    fn contiguous<F: Real>(a: &Array2<F>) -> ndarray::CowArray<'_, F, ndarray::Ix2> {
        a.as_standard_layout()
    }
    match loss {
        LossKind::CrossEntropy => {
            let targets = model.pack_rows_of(batch, classes, samples, 1, sequence);
            let l = contiguous(logits);
            let ls = l.as_slice().ok_or_else(|| invalid("logits", "contiguous", "strided"))?;
            let v = softmax_cross_entropy(ls, rows, width, &targets, None, g)?;
            let mut correct = 0;
            for (row, &t) in l.rows().into_iter().zip(&targets) {
                let best =
                    row.iter().enumerate().fold((0, F::neg_infinity()), |b, (i, &x)| if x > b.1 { (i, x) } else { b });
                correct += usize::from(best.0 == t as usize);
            }
            Ok(BatchLoss { loss: to_f64(v.loss), count: v.count, correct, grad, pre_activation: true })
        }
        LossKind::MeanSquaredError | LossKind::BinaryCrossEntropy => {
            let targets = model.pack_rows_of(batch, values, samples, width, sequence);
            let (x, pre) = if loss == LossKind::MeanSquaredError {
                (contiguous(output), false)
            } else {
                (contiguous(logits), true)
            };
            let xs = x.as_slice().ok_or_else(|| invalid("output", "contiguous", "strided"))?;
            let v = if loss == LossKind::MeanSquaredError {
                mean_squared_error(xs, &targets, None, g)?
            } else {
                binary_cross_entropy_with_logits(xs, &targets, None, g)?
            };
            Ok(BatchLoss { loss: to_f64(v.loss), count: v.count, correct: 0, grad, pre_activation: pre })
        }
    }
}

fn to_f64<F: Real>(v: F) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

/// Splits a batch (sorted by decreasing length) into truncated-BPTT chunks of `k` steps: the
/// chunk's samples (a prefix of the batch), their chunk lengths and the chunk's step range.
fn chunks(lengths: &[usize], steps: usize, k: usize) -> Vec<(usize, Vec<usize>, std::ops::Range<usize>)> {
    (0..steps)
        .step_by(k)
        .map(|start| {
            let end = (start + k).min(steps);
            let lens: Vec<usize> =
                lengths.iter().map(|&l| l.saturating_sub(start).min(end - start)).take_while(|&l| l > 0).collect();
            (lens.len(), lens, start..end)
        })
        .filter(|(n, _, _)| *n > 0)
        .collect()
}

fn slice_batch<F: Real>(
    data: &BatchData<F>,
    n: usize,
    lens: Vec<usize>,
    steps: std::ops::Range<usize>,
    per_step: bool,
    width: usize,
) -> BatchData<F> {
    let t_all = data.features.as_ref().map(|f| f.dim().1).or(data.tokens.as_ref().map(|t| t.dim().1)).unwrap_or(0);
    let (s0, s1) = (steps.start, steps.end);
    let features = data.features.as_ref().map(|f| f.slice(ndarray::s![..n, s0..s1, ..]).to_owned());
    let tokens = data.tokens.as_ref().map(|t| t.slice(ndarray::s![..n, s0..s1]).to_owned());
    let (mut classes, mut values) = (Vec::new(), Vec::new());
    if per_step {
        for b in 0..n {
            if !data.classes.is_empty() {
                classes.extend_from_slice(&data.classes[b * t_all + s0..b * t_all + s1]);
            }
            if !data.values.is_empty() {
                values.extend_from_slice(&data.values[(b * t_all + s0) * width..(b * t_all + s1) * width]);
            }
        }
    }
    BatchData { features, tokens, lengths: lens, classes, values }
}

/// Applies one update from `grads`; returns the gradient norm. Nothing changes on error.
#[allow(clippy::too_many_arguments)]
fn update<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    mut grads: Vec<Vec<F>>,
    config: &FitConfig,
    lr: f64,
    loss: f64,
    epoch: usize,
    batch: usize,
) -> Result<()> {
    let non_finite =
        |what: &str, v: f64| CoreError::NonFinite { what: what.into(), value: v.to_string(), epoch, batch };
    if !loss.is_finite() {
        return Err(non_finite("loss", loss));
    }
    let mut views: Vec<&mut [F]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    let max = config.clip_norm.map_or(F::infinity(), F::lit);
    let norm = to_f64(clip_grad_norm(&mut views, max));
    if !norm.is_finite() {
        return Err(non_finite("gradient norm", norm));
    }
    if let Some(v) = config.clip_value {
        clip_grad_value(&mut views, F::lit(v));
    }
    let mut params: Vec<Param<F>> =
        model.tensors.iter_mut().zip(&grads).map(|(t, g)| Param::new(&mut t.data, g, t.decay)).collect();
    optimizer.step(&mut params, F::lit(lr))
}

/// Summary of one training step's loss.
struct StepLoss {
    loss: f64,
    count: usize,
    correct: usize,
}

/// One optimizer step on `data` from the recurrent state `init`: forward, loss, backward,
/// update (`at` = learning rate, epoch and batch, for the update and its errors). Returns the
/// loss and the state the step ended in.
fn train_step<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    config: &FitConfig,
    mut data: Batch<'_, '_, F>,
    init: Option<&ModelState<F>>,
    rng: &mut Rng,
    at: (f64, usize, usize),
) -> Result<(StepLoss, ModelState<F>)> {
    let (lr, epoch, batch) = at;
    let packed = data.pack(model)?;
    // The batch's inputs live on packed; its targets until the loss.
    if let Batch::Own(b) = &mut data {
        (b.features, b.tokens) = (None, None);
    }
    let mut trace = model.forward(packed, true, rng, init)?;
    let l = batch_loss(model, config.loss, &trace.batch, trace.logits(), &trace.output, trace.sequence, &data)?;
    drop(data);
    let step = StepLoss { loss: l.loss, count: l.count, correct: l.correct };
    let state = std::mem::take(&mut trace.state);
    let grads = model.backward(trace, l.grad, l.pre_activation)?;
    update(model, optimizer, grads, config, lr, l.loss, epoch, batch)?;
    Ok((step, state))
}

/// Trains on samples `idx` of `data` as one batch (one update, or one per chunk with
/// truncated BPTT). Returns the summed loss, the rows it counts and the correct predictions.
fn run_batch<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    config: &FitConfig,
    train: &Dataset<F>,
    idx: &[usize],
    rng: &mut Rng,
    at: (f64, usize, usize),
) -> Result<(f64, usize, usize)> {
    let per = if model.outputs_sequence() { train.inputs.dims().1 } else { 1 };
    let width = model.output_width();
    let Some(k) = config.tbptt_steps else {
        let (l, _) = train_step(model, optimizer, config, Batch::Samples(*train, idx), None, rng, at)?;
        return Ok((l.loss * l.count as f64, l.count, l.correct));
    };
    // Sort by decreasing length so every chunk's samples are a prefix.
    let lengths: Vec<usize> = idx.iter().map(|&i| train.lengths.map_or(train.inputs.dims().1, |l| l[i])).collect();
    let mut perm: Vec<usize> = (0..idx.len()).collect();
    perm.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    let sorted: Vec<usize> = perm.iter().map(|&p| idx[p]).collect();
    let data = gather(train, &sorted, per, width);
    let steps = train.inputs.dims().1;
    let mut state: Option<(ModelState<F>, usize)> = None;
    let (mut s, mut c, mut k_ok) = (0.0, 0, 0);
    for (n, lens, range) in chunks(&data.lengths, steps, k) {
        let chunk = slice_batch(&data, n, lens, range, per > 1, width);
        let init = state.map(|(st, b)| truncate_state(st, b, n));
        let (l, next) = train_step(model, optimizer, config, Batch::Own(chunk), init.as_ref(), rng, at)?;
        state = Some((next, n));
        s += l.loss * l.count as f64;
        c += l.count;
        k_ok += l.correct;
    }
    Ok((s, c, k_ok))
}

/// What one call of [`train_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchOutcome {
    /// Mean loss over the counted rows.
    pub loss: f64,
    /// Rows the loss counts (sequences, steps or values, by loss and model).
    pub count: usize,
    /// Rows whose largest output is the target class (cross-entropy only; else 0).
    pub correct: usize,
    /// The learning rate of the update.
    pub learning_rate: f64,
}

/// One training update on a whole batch `data` (all its samples; nothing is shuffled), as
/// the batch `batch` (1-based) of epoch `epoch` (1-based): the learning rate follows
/// `config.schedule` at that epoch, dropout masks are seeded by `config.seed`, the epoch and the
/// batch. With `config.tbptt_steps` the batch is cut into chunks with one update each. This is
/// the building block of training from data that arrive batch by batch (a stream); `epochs`,
/// `batch_size`, `shuffle` and `early_stopping` of `config` are not used. A NaN or infinite
/// loss or gradient returns [`CoreError::NonFinite`] with the weights unchanged.
pub fn train_batch<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    data: &Dataset<F>,
    config: &FitConfig,
    epoch: usize,
    batch: usize,
) -> Result<BatchOutcome> {
    config.validate(model)?;
    crate::kernels::tensor::positive("epoch", epoch)?;
    crate::kernels::tensor::positive("batch", batch)?;
    check_dataset(model, data, config.loss, "")?;
    let lr = config.schedule.lr_at(optimizer.config().lr(), epoch - 1);
    let mut rng = epoch_rng(config.seed ^ (batch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03), epoch);
    let idx: Vec<usize> = (0..data.len()).collect();
    let (sum, count, correct) = run_batch(model, optimizer, config, data, &idx, &mut rng, (lr, epoch, batch))?;
    Ok(BatchOutcome { loss: sum / count.max(1) as f64, count, correct, learning_rate: lr })
}

/// The generator of epoch `epoch` (1-based) of a run seeded with `seed`.
fn epoch_rng(seed: u64, epoch: usize) -> Rng {
    Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// An optimizer for `model`'s parameters.
pub fn optimizer_for<F: Real>(model: &Model<F>, config: OptimizerConfig) -> Result<Optimizer<F>> {
    let sizes: Vec<usize> = model.tensors.iter().map(|t| t.data.len()).collect();
    Optimizer::new(config, &sizes)
}

/// Trains `model` on `train` (and reports the loss on `validation` after every epoch).
///
/// Each epoch shuffles the samples (seeded), runs them in batches of `batch_size` and applies
/// one optimizer update per batch (or per chunk with truncated BPTT). A NaN or infinite loss or
/// gradient stops training with [`CoreError::NonFinite`] before the update, so the model keeps
/// the weights of the last good batch. `observer.should_stop()` is polled before every batch.
pub fn fit<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    train: &Dataset<F>,
    validation: Option<&Dataset<F>>,
    config: &FitConfig,
    observer: &mut dyn Observer,
) -> Result<History> {
    config.validate(model)?;
    check_dataset(model, train, config.loss, "train")?;
    if let Some(v) = validation {
        check_dataset(model, v, config.loss, "validation")?;
    }
    let samples = train.len();
    let batches = samples.div_ceil(config.batch_size);
    let base_lr = optimizer.config().lr();
    let mut order: Vec<usize> = (0..samples).collect();
    let mut history = History { epochs: Vec::new(), stopped_early: false, aborted: false };
    let mut best = (f64::INFINITY, model.trained_epochs, None::<Vec<Vec<F>>>);

    'epochs: for _ in 0..config.epochs {
        // Numbered across fit calls: epoch n has the same shuffle, dropout masks and learning
        // rate whether training ran in one call or was resumed.
        let epoch = model.trained_epochs + 1;
        let lr = config.schedule.lr_at(base_lr, epoch - 1);
        let mut rng = epoch_rng(config.seed, epoch);
        order.sort_unstable();
        if config.shuffle {
            rng.shuffle(&mut order);
        }
        let started = Instant::now();
        let (mut loss_sum, mut count, mut correct, mut seen) = (0.0, 0usize, 0usize, 0usize);
        for (bi, idx) in order.chunks(config.batch_size).enumerate() {
            if observer.should_stop() {
                history.aborted = true;
                break 'epochs;
            }
            let mut batch_rng = rng.fork();
            let (bl, bc, bk) = run_batch(model, optimizer, config, train, idx, &mut batch_rng, (lr, epoch, bi + 1))?;
            loss_sum += bl;
            count += bc;
            correct += bk;
            seen += idx.len();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            observer.progress(Progress::Batch {
                epoch,
                batch: bi + 1,
                batches,
                loss: bl / bc.max(1) as f64,
                samples_per_second: seen as f64 / secs,
            });
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let validation = match validation {
            Some(v) => Some(evaluate(model, v, config.loss, config.batch_size)?),
            None => None,
        };
        let loss = loss_sum / count.max(1) as f64;
        let accuracy = (config.loss == LossKind::CrossEntropy).then(|| correct as f64 / count.max(1) as f64);
        let event = Progress::Epoch {
            epoch,
            loss,
            accuracy,
            validation,
            learning_rate: lr,
            samples_per_second: seen as f64 / secs,
        };
        model.trained_epochs = epoch;
        observer.progress(event);
        history.epochs.push(event);
        if let Some(es) = config.early_stopping {
            let monitored = validation.map_or(loss, |v| v.loss);
            if monitored < best.0 - es.min_delta {
                let weights = es.restore_best.then(|| model.tensors.iter().map(|t| t.data.clone()).collect());
                best = (monitored, epoch, weights);
            } else if epoch - best.1 >= es.patience {
                history.stopped_early = true;
                if let Some(w) = best.2.take() {
                    model.set_parameters(w)?;
                }
                break;
            }
        }
    }
    Ok(history)
}

/// Keeps the states of the first `n` of `b` sequences (each state is `[b, H]`, batch sorted by
/// decreasing length, so the sequences still running in the next chunk come first).
fn truncate_state<F: Real>(mut s: ModelState<F>, b: usize, n: usize) -> ModelState<F> {
    for v in s.hidden.iter_mut().chain(s.cell.iter_mut()).flatten() {
        let h = v.len() / b.max(1);
        v.truncate(n * h);
    }
    s
}

/// Mean loss (and accuracy for cross-entropy) of `model` on `data`, without dropout.
pub fn evaluate<F: Real>(model: &Model<F>, data: &Dataset<F>, loss: LossKind, batch_size: usize) -> Result<Evaluation> {
    check_loss(model, loss)?;
    check_dataset(model, data, loss, "")?;
    crate::kernels::tensor::positive("batchSize", batch_size)?;
    let idx: Vec<usize> = (0..data.len()).collect();
    // Several batches share one transposed copy of the weights.
    let prepared = if data.len() > batch_size { Some(model.prepare()?) } else { None };
    // Batches run side by side on the pool; their sums are added in batch order.
    let one = |chunk: &[usize]| -> Result<(f64, usize, usize)> {
        let b = Batch::Samples(*data, chunk);
        let packed = b.pack(model)?;
        let inferred = model.infer(&packed, None, prepared.as_ref())?;
        let l = batch_loss(model, loss, &packed, inferred.logits(), &inferred.output, inferred.sequence, &b)?;
        Ok((l.loss * l.count as f64, l.count, l.correct))
    };
    let parts: Vec<Result<_>> = if data.len() > batch_size && rayon::current_num_threads() > 1 {
        idx.par_chunks(batch_size).map(one).collect()
    } else {
        idx.chunks(batch_size).map(one).collect()
    };
    let (mut sum, mut count, mut correct) = (0.0, 0usize, 0usize);
    for p in parts {
        let (s, c, k) = p?;
        sum += s;
        count += c;
        correct += k;
    }
    Ok(Evaluation {
        loss: sum / count.max(1) as f64,
        accuracy: (loss == LossKind::CrossEntropy).then(|| correct as f64 / count.max(1) as f64),
    })
}

/// Output of [`predict`].
#[derive(Clone, Debug, PartialEq)]
pub struct Predicted<F> {
    /// `[S, T, O]` (zeros at padded steps) for a model that outputs a sequence, else `[S, O]`.
    pub output: Vec<F>,
    /// Each sequence's final state, per recurrent layer, per stacked layer and direction
    /// (`l·D + d`, PyTorch's `h_n` order): `[S, H]` each.
    pub hidden: Vec<Vec<Vec<F>>>,
    /// The same for the cell states of LSTM layers (empty vectors for other cells).
    pub cell: Vec<Vec<Vec<F>>>,
}

/// The model's output for every sample (after the last layer's activation) and every
/// sequence's final recurrent states, in batches of `batch_size`.
pub fn predict<F: Real>(
    model: &Model<F>,
    inputs: Inputs<F>,
    lengths: Option<&[usize]>,
    batch_size: usize,
) -> Result<Predicted<F>> {
    crate::kernels::tensor::positive("batchSize", batch_size)?;
    let (s, _) = inputs.dims();
    if let Some(l) = lengths {
        if l.len() != s {
            return Err(CoreError::shape("lengths", format!("[{s}]"), format!("[{}]", l.len())));
        }
    }
    let zero = model.zero_state(0);
    let (_, steps) = inputs.dims();
    let per = if model.outputs_sequence() { steps } else { 1 } * model.output_width();
    // Each batch unpacks its output straight into its own rows of the result (zeros stay at
    // padded steps).
    let mut output = crate::kernels::threads::zeroed(s * per);
    let mut hidden: Vec<Vec<Vec<F>>> = zero.hidden.iter().map(|l| vec![Vec::new(); l.len()]).collect();
    let mut cell: Vec<Vec<Vec<F>>> = zero.cell.iter().map(|l| vec![Vec::new(); l.len()]).collect();
    let idx: Vec<usize> = (0..s).collect();
    // Several batches share one transposed copy of the weights.
    let prepared = if s > batch_size { Some(model.prepare()?) } else { None };
    // Batches are independent: they run side by side on the pool (each batch's arithmetic is
    // the same wherever it runs); their states are put together in batch order.
    type States<F> = (Vec<Vec<Vec<F>>>, Vec<Vec<Vec<F>>>);
    let one = |(chunk, out): (&[usize], &mut [F])| -> Result<States<F>> {
        let packed = model.pack_samples(inputs, chunk, lengths)?;
        let inferred = model.infer(&packed, None, prepared.as_ref())?;
        let n = chunk.len();
        model.unpack_into(&packed, inferred.output.view(), inferred.sequence, out);
        // States come in the batch's sorted order: put them back in sample order.
        let reorder = |layers: &Vec<Vec<Vec<F>>>| -> Result<Vec<Vec<Vec<F>>>> {
            layers
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .map(|v| {
                            if v.is_empty() {
                                return Ok(Vec::new());
                            }
                            let h = v.len() / n;
                            let rows = ndarray::ArrayView2::from_shape((n, h), v.as_slice())
                                .map_err(|e| CoreError::shape("state", format!("[{n}, {h}]"), e.to_string()))?;
                            Ok(model.unpack(&packed, rows, false))
                        })
                        .collect()
                })
                .collect()
        };
        Ok((reorder(&inferred.state.hidden)?, reorder(&inferred.state.cell)?))
    };
    let chunk_len = batch_size.max(1) * per.max(1);
    let parts: Vec<Result<States<F>>> = if s > batch_size && rayon::current_num_threads() > 1 {
        idx.par_chunks(batch_size).zip(output.par_chunks_mut(chunk_len)).map(one).collect()
    } else {
        idx.chunks(batch_size).zip(output.chunks_mut(chunk_len)).map(one).collect()
    };
    for part in parts {
        let (h, c) = part?;
        for (dst, src) in hidden.iter_mut().zip(h).chain(cell.iter_mut().zip(c)) {
            for (d, v) in dst.iter_mut().zip(src) {
                d.extend(v);
            }
        }
    }
    Ok(Predicted { output, hidden, cell })
}
