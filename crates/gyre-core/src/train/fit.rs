//! Training a [`Model`] over a whole dataset: seeded shuffling, batching, forward, loss,
//! backward, clipping and the optimizer update, with truncated backpropagation through time,
//! validation, early stopping, progress events and cancellation between batches.

use super::batches::{check_dataset, chunks, gather, slice_batch, Batch, Chunk, Dataset};
use super::evaluate::{evaluate, Metrics};
use super::events::{History, Observer, Progress};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::model::{Activation, Model, ModelSpec, ModelState, PackedBatch};
use crate::optim::{check_and_clip, LrSchedule, Optimizer, OptimizerConfig, Param, Plateau, Schedule};
use crate::random::Rng;
use crate::train::loss::{
    binary_cross_entropy_with_logits_weighted, mean_squared_error_weighted, softmax_cross_entropy,
};
use ndarray::Array2;
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
    /// The metrics of each epoch's validation evaluation.
    pub metrics: Metrics,
    /// Weights of the training loss by target: one per class (crossEntropy) or `[w0, w1]`
    /// (binaryCrossEntropy, each element weighing `w1·y + w0·(1 - y)`). Evaluation and the
    /// validation loss are not weighted by it.
    pub class_weight: Option<Vec<f64>>,
}

pub(super) fn invalid(what: &str, expected: &str, got: impl ToString) -> CoreError {
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
        if self.metrics.top_k.is_some() || self.metrics.confusion {
            let what = if self.metrics.top_k.is_some() { "metrics.topK" } else { "metrics.confusion" };
            if self.loss != LossKind::CrossEntropy {
                return Err(invalid(what, "used with the crossEntropy loss", format!("{:?}", self.loss)));
            }
        }
        if let Some(k) = self.metrics.top_k {
            crate::kernels::tensor::positive("metrics.topK", k)?;
        }
        if let Some(w) = &self.class_weight {
            let want = match self.loss {
                LossKind::CrossEntropy => model.output_width(),
                LossKind::BinaryCrossEntropy => 2,
                LossKind::MeanSquaredError => {
                    return Err(invalid("classWeight", "used with crossEntropy or binaryCrossEntropy", "mse"))
                }
            };
            if w.len() != want {
                let what = if self.loss == LossKind::CrossEntropy { "one weight per class" } else { "[w0, w1]" };
                return Err(CoreError::shape(
                    "classWeight",
                    format!("{what}: {want} numbers"),
                    format!("{} numbers", w.len()),
                ));
            }
            if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
                return Err(invalid(&format!("classWeight[{i}]"), "a finite non-negative number", v));
            }
            if w.iter().all(|&v| v == 0.0) {
                return Err(invalid("classWeight", "at least one positive weight", "all zeros"));
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
        check_loss(model.config(), self.loss)
    }
}

/// Checks that `loss` fits the model's last layer: cross-entropy reads the logits of a dense
/// layer (`linear` or `softmax`) of at least 2 classes, binary cross-entropy those of a dense
/// layer (`linear` or `sigmoid`).
pub fn check_loss(config: &ModelSpec, loss: LossKind) -> Result<()> {
    let act = config.final_activation();
    let unsuited = |name: &str, activations: &str| CoreError::Unsuited {
        what: format!("loss {name}"),
        needs: format!("a last dense layer with {activations} activation"),
        got: config.last_layer_name().into(),
    };
    match loss {
        LossKind::CrossEntropy if !matches!(act, Some(Activation::Linear | Activation::Softmax)) => {
            Err(unsuited("crossEntropy", "'linear' or 'softmax'"))
        }
        LossKind::CrossEntropy if config.output_width() < 2 => {
            Err(invalid("loss", "a last layer of at least 2 units (classes)", "crossEntropy"))
        }
        LossKind::BinaryCrossEntropy if !matches!(act, Some(Activation::Linear | Activation::Sigmoid)) => {
            Err(unsuited("binaryCrossEntropy", "'linear' or 'sigmoid'"))
        }
        _ => Ok(()),
    }
}

/// Loss of one forward trace and the gradient with respect to the last layer's output.
pub(super) struct BatchLoss<F> {
    pub(super) loss: f64,
    pub(super) count: usize,
    /// The denominator of `loss`: the total weight of the counted rows (`count` unweighted).
    pub(super) weight: f64,
    pub(super) correct: usize,
    pub(super) grad: Array2<F>,
    pub(super) pre_activation: bool,
    /// Each row's sample weight (packed row order), when the data have them.
    pub(super) row_weights: Option<Vec<F>>,
}

/// Per target value (rows of `per_row` values): its class weight `class_of(target)` times its
/// row's sample weight; `None` when neither applies (every weight 1).
fn target_weights<T: Copy, F: Real>(
    targets: &[T],
    per_row: usize,
    class_of: Option<impl Fn(T) -> F>,
    row_weights: Option<&[F]>,
) -> Option<Vec<F>> {
    if class_of.is_none() && row_weights.is_none() {
        return None;
    }
    let per_row = per_row.max(1);
    let weights = targets.iter().enumerate().map(|(i, &t)| {
        let c = class_of.as_ref().map_or(F::one(), |f| f(t));
        c * row_weights.map_or(F::one(), |w| w[i / per_row])
    });
    Some(weights.collect())
}

/// The batch's mean loss, its gradient and counts. `class_weight` weighs each row by its target
/// (crossEntropy: by class id; binaryCrossEntropy: `[w0, w1]`, each element `w1·y + w0·(1 - y)`),
/// and the data's sample weights each row by its sequence: the loss is then `Σ w·l / Σ w`.
#[allow(clippy::too_many_arguments)]
pub(super) fn batch_loss<F: Real>(
    model: &Model<F>,
    loss: LossKind,
    batch: &PackedBatch<F>,
    logits: &Array2<F>,
    output: &Array2<F>,
    sequence: bool,
    data: &Batch<'_, '_, F>,
    class_weight: Option<&[f64]>,
) -> Result<BatchLoss<F>> {
    let (classes, values, samples) = data.targets();
    let width = model.output_width();
    let rows = output.nrows();
    let mut grad = Array2::zeros((rows, width));
    let g = grad.as_slice_mut().ok_or_else(|| invalid("gradient", "contiguous", "strided"))?;
    fn contiguous<F: Real>(a: &Array2<F>) -> ndarray::CowArray<'_, F, ndarray::Ix2> {
        a.as_standard_layout()
    }
    // Each row's sample weight, when the data have them.
    let row_weights = data.sample_weights().map(|w| model.pack_sample_values(batch, w, samples, sequence));
    let lit = |v: f64| F::from(v).unwrap_or_else(F::nan);
    match loss {
        LossKind::CrossEntropy => {
            let targets = model.pack_rows_of(batch, classes, samples, 1, sequence);
            let class_of = class_weight.map(|cw| move |t: u32| lit(cw.get(t as usize).copied().unwrap_or(f64::NAN)));
            let weights = target_weights(&targets, 1, class_of, row_weights.as_deref());
            let l = contiguous(logits);
            let ls = l.as_slice().ok_or_else(|| invalid("logits", "contiguous", "strided"))?;
            let v = softmax_cross_entropy(ls, rows, width, &targets, weights.as_deref(), g)?;
            // Rows of weight 0 are absent: they count in no metric either.
            let mut correct = 0;
            for (r, (row, &t)) in l.rows().into_iter().zip(&targets).enumerate() {
                let counted = weights.as_ref().is_none_or(|w| w[r] > F::zero());
                correct += usize::from(counted && super::evaluate::arg_max(row.iter().copied()) == t as usize);
            }
            Ok(BatchLoss {
                loss: to_f64(v.loss),
                count: v.count,
                weight: to_f64(v.weight),
                correct,
                grad,
                pre_activation: true,
                row_weights,
            })
        }
        LossKind::MeanSquaredError | LossKind::BinaryCrossEntropy => {
            let targets = model.pack_rows_of(batch, values, samples, width, sequence);
            let (x, pre) = if loss == LossKind::MeanSquaredError {
                (contiguous(output), false)
            } else {
                (contiguous(logits), true)
            };
            let xs = x.as_slice().ok_or_else(|| invalid("output", "contiguous", "strided"))?;
            // Per element: its row's sample weight, times (binaryCrossEntropy) its target's class weight.
            let class_of = class_weight.map(|cw| {
                let (w0, w1) = (lit(cw.first().copied().unwrap_or(1.0)), lit(cw.get(1).copied().unwrap_or(1.0)));
                move |y: F| w1 * y + w0 * (F::one() - y)
            });
            let weights = target_weights(&targets, width, class_of, row_weights.as_deref());
            let v = if loss == LossKind::MeanSquaredError {
                mean_squared_error_weighted(xs, &targets, None, weights.as_deref(), g)?
            } else {
                binary_cross_entropy_with_logits_weighted(xs, &targets, None, weights.as_deref(), g)?
            };
            Ok(BatchLoss {
                loss: to_f64(v.loss),
                count: v.count,
                weight: to_f64(v.weight),
                correct: 0,
                grad,
                pre_activation: pre,
                row_weights,
            })
        }
    }
}

/// `Σ loss·weight / Σ weight`, 0 when nothing counted.
fn mean(loss_sum: f64, weight: f64) -> f64 {
    if weight > 0.0 {
        loss_sum / weight
    } else {
        0.0
    }
}

pub(super) fn to_f64<F: Real>(v: F) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

/// Where an update stands in training: its learning rate, and the epoch and batch (1-based)
/// its errors name.
#[derive(Clone, Copy, Debug)]
struct BatchAt {
    lr: f64,
    epoch: usize,
    batch: usize,
}

/// What a batch's steps add up to: the loss summed over its counted rows, those rows, and the
/// correct predictions (cross-entropy only).
#[derive(Clone, Copy, Debug, Default)]
struct BatchTotals {
    /// Σ loss·weight over the batch's updates.
    loss_sum: f64,
    count: usize,
    /// Σ weight: the denominator of the batch's mean loss.
    weight: f64,
    correct: usize,
}

/// Applies one update from `grads` (`loss` the batch's, checked first). Nothing changes on
/// error.
fn update<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    mut grads: Vec<Vec<F>>,
    config: &FitConfig,
    loss: f64,
    at: BatchAt,
) -> Result<()> {
    let BatchAt { lr, epoch, batch } = at;
    // Frozen tensors have no gradient: left out of the norm, the clipping and the step.
    for (g, t) in grads.iter_mut().zip(&model.tensors) {
        if !t.trainable {
            *g = Vec::new();
        }
    }
    let mut views: Vec<&mut [F]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    check_and_clip(&mut views, loss, config.clip_norm, config.clip_value, epoch, batch)?;
    let mut params: Vec<Param<F>> = model
        .tensors
        .iter_mut()
        .zip(&grads)
        .map(|(t, g)| Param::new(if t.trainable { &mut t.data } else { &mut [] }, g, t.decay))
        .collect();
    optimizer.step(&mut params, F::lit(lr))
}

/// Summary of one training step's loss.
struct StepLoss {
    loss: f64,
    count: usize,
    weight: f64,
    correct: usize,
}

/// One optimizer step on `data` from the recurrent state `init`: forward, loss, backward,
/// update (`at`: the learning rate, epoch and batch, for the update and its errors). Returns the
/// loss and the state the step ended in.
fn train_step<F: Real>(
    model: &mut Model<F>,
    optimizer: &mut Optimizer<F>,
    config: &FitConfig,
    mut data: Batch<'_, '_, F>,
    init: Option<&ModelState<F>>,
    rng: &mut Rng,
    at: BatchAt,
) -> Result<(StepLoss, ModelState<F>)> {
    let packed = data.pack(model)?;
    // The batch's inputs live on packed; its targets until the loss.
    if let Batch::Own(b) = &mut data {
        (b.features, b.tokens) = (None, None);
    }
    let mut trace = model.forward(packed, true, rng, init)?;
    let class_weight = config.class_weight.as_deref();
    let l = batch_loss(
        model,
        config.loss,
        &trace.batch,
        trace.logits(),
        &trace.output,
        trace.sequence,
        &data,
        class_weight,
    )?;
    drop(data);
    let step = StepLoss { loss: l.loss, count: l.count, weight: l.weight, correct: l.correct };
    let state = std::mem::take(&mut trace.state);
    let grads = model.backward(trace, l.grad, l.pre_activation)?;
    update(model, optimizer, grads, config, l.loss, at)?;
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
    at: BatchAt,
) -> Result<BatchTotals> {
    let per = if model.outputs_sequence() { train.inputs.dims().1 } else { 1 };
    let width = model.output_width();
    let Some(k) = config.tbptt_steps else {
        let (l, _) = train_step(model, optimizer, config, Batch::Samples(*train, idx), None, rng, at)?;
        return Ok(BatchTotals { loss_sum: l.loss * l.weight, count: l.count, weight: l.weight, correct: l.correct });
    };
    // Sort by decreasing length so every chunk's samples are a prefix.
    let lengths: Vec<usize> = idx.iter().map(|&i| train.lengths.map_or(train.inputs.dims().1, |l| l[i])).collect();
    let mut perm: Vec<usize> = (0..idx.len()).collect();
    perm.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    let sorted: Vec<usize> = perm.iter().map(|&p| idx[p]).collect();
    let data = gather(train, &sorted, per, width);
    let steps = train.inputs.dims().1;
    let mut state: Option<(ModelState<F>, usize)> = None;
    let mut totals = BatchTotals::default();
    for Chunk { samples: n, lengths: lens, steps: range } in chunks(&data.lengths, steps, k) {
        let chunk = slice_batch(&data, n, lens, range, per > 1, width);
        let init = state.map(|(st, b)| truncate_state(st, b, n));
        let (l, next) = train_step(model, optimizer, config, Batch::Own(chunk), init.as_ref(), rng, at)?;
        state = Some((next, n));
        totals.loss_sum += l.loss * l.weight;
        totals.count += l.count;
        totals.weight += l.weight;
        totals.correct += l.correct;
    }
    Ok(totals)
}

/// What one call of [`train_batch`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchOutcome {
    /// Mean loss over the counted rows.
    pub loss: f64,
    /// Rows the loss counts (sequences, steps or values, by loss and model).
    pub count: usize,
    /// The denominator of `loss`: the total weight of the counted rows (`count` without
    /// weights), for combining batches as `Σ loss·weight / Σ weight`.
    pub weight: f64,
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
    let lr = config.schedule.lr_at(epoch_base_lr(model, config, optimizer.config().lr()), epoch - 1);
    let mut rng = epoch_rng(config.seed ^ (batch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03), epoch);
    let idx: Vec<usize> = (0..data.len()).collect();
    let at = BatchAt { lr, epoch, batch };
    let BatchTotals { loss_sum, count, weight, correct } =
        run_batch(model, optimizer, config, data, &idx, &mut rng, at)?;
    Ok(BatchOutcome { loss: mean(loss_sum, weight), count, weight, correct, learning_rate: lr })
}

/// The rate an epoch's schedule starts from: the plateau's current rate with a
/// `reduceOnPlateau` schedule that has run, else the optimizer's `base_lr`.
fn epoch_base_lr<F: Real>(model: &Model<F>, config: &FitConfig, base_lr: f64) -> f64 {
    match (&config.schedule.decay, model.plateau) {
        (LrSchedule::Plateau { .. }, Some(p)) => p.lr,
        _ => base_lr,
    }
}

/// The generator of epoch `epoch` (1-based) of a run seeded with `seed`.
fn epoch_rng(seed: u64, epoch: usize) -> Rng {
    Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// An optimizer for `model`'s parameters.
pub fn optimizer_for<F: Real>(model: &Model<F>, config: OptimizerConfig) -> Result<Optimizer<F>> {
    Optimizer::new(config, &optimizer_sizes(model))
}

/// The optimizer's parameter sizes for `model`: each tensor's, 0 for a frozen one (no state).
pub fn optimizer_sizes<F: Real>(model: &Model<F>) -> Vec<usize> {
    model.tensors.iter().map(|t| if t.trainable { t.data.len() } else { 0 }).collect()
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
    observer: &mut dyn Observer<F>,
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
        let lr = config.schedule.lr_at(epoch_base_lr(model, config, base_lr), epoch - 1);
        let mut rng = epoch_rng(config.seed, epoch);
        order.sort_unstable();
        if config.shuffle {
            rng.shuffle(&mut order);
        }
        let started = Instant::now();
        let (mut loss_sum, mut weight, mut count, mut correct, mut seen) = (0.0, 0.0, 0usize, 0usize, 0usize);
        for (bi, idx) in order.chunks(config.batch_size).enumerate() {
            if observer.should_stop() {
                history.aborted = true;
                break 'epochs;
            }
            let mut batch_rng = rng.fork();
            let at = BatchAt { lr, epoch, batch: bi + 1 };
            let totals = run_batch(model, optimizer, config, train, idx, &mut batch_rng, at)?;
            let (bl, bc, bk) = (totals.loss_sum, totals.count, totals.correct);
            loss_sum += bl;
            weight += totals.weight;
            count += bc;
            correct += bk;
            seen += idx.len();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            observer.progress(Progress::Batch {
                epoch,
                batch: bi + 1,
                batches,
                loss: mean(bl, totals.weight),
                samples_per_second: seen as f64 / secs,
            });
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let validation = match validation {
            Some(v) => Some(evaluate(model, v, config.loss, config.batch_size, config.metrics)?),
            None => None,
        };
        let loss = mean(loss_sum, weight);
        let val_loss = validation.as_ref().map(|v| v.loss);
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
        if matches!(config.schedule.decay, LrSchedule::Plateau { .. }) {
            let monitored = val_loss.unwrap_or(loss);
            let state = model.plateau.get_or_insert(Plateau::new(base_lr));
            state.step(&config.schedule.decay, monitored);
        }
        observer.epoch_end(model, optimizer);
        observer.progress(event.clone());
        history.epochs.push(event);
        if let Some(es) = config.early_stopping {
            let monitored = val_loss.unwrap_or(loss);
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
