//! Evaluation (mean loss and accuracy) and prediction of a model over a whole dataset, in
//! batches, without dropout.

use super::batches::{check_dataset, Batch, Dataset};
use super::fit::{batch_loss, check_loss, LossKind};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::model::{Inputs, Model};
use rayon::prelude::*;

/// Which metrics [`evaluate`] computes beyond the loss (and, for cross-entropy, the accuracy;
/// for the squared error, the mean absolute error and its root).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Top-k accuracy (cross-entropy): the fraction of rows whose target's output is among
    /// their `k` largest (fewer than `k` outputs larger than it).
    pub top_k: Option<usize>,
    /// The confusion matrix (cross-entropy).
    pub confusion: bool,
}

/// Loss and metrics over a dataset. The loss is the (weighted) mean the training minimizes;
/// the metrics count every row (or element) that the loss counts, unweighted.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss over every counted row (weighted by the dataset's sample weights).
    pub loss: f64,
    /// The denominator of `loss`: the total weight of the counted rows (their count without
    /// sample weights), for combining the evaluations of several parts of a dataset.
    pub weight: f64,
    /// The rows the metrics count (those of nonzero weight): the denominator of the accuracies.
    pub count: usize,
    /// Fraction of rows whose largest output is the target class (cross-entropy only).
    pub accuracy: Option<f64>,
    /// Fraction of rows whose target is among the `Metrics::top_k` largest outputs.
    pub top_k_accuracy: Option<f64>,
    /// Mean absolute error over every counted element (squared-error loss only).
    pub mae: Option<f64>,
    /// Root of the mean squared error over every counted element (squared-error loss only).
    pub rmse: Option<f64>,
    /// `[C, C]` row-major counts: row = target class, column = predicted (largest output)
    /// class (cross-entropy with `Metrics::confusion`).
    pub confusion: Option<Vec<u64>>,
}

/// One batch's sums for [`evaluate`], added in batch order.
#[derive(Default)]
struct Sums {
    loss: f64,
    weight: f64,
    count: usize,
    correct: usize,
    top_k: usize,
    abs: f64,
    squares: f64,
    elements: usize,
    confusion: Vec<u64>,
}

/// The index of the first largest value of `row` (NaN never wins).
pub(super) fn arg_max<F: Real>(row: impl IntoIterator<Item = F>) -> usize {
    row.into_iter().enumerate().fold((0, F::neg_infinity()), |b, (i, x)| if x > b.1 { (i, x) } else { b }).0
}

/// Mean loss and metrics of `model` on `data`, without dropout: the accuracy for cross-entropy,
/// the mean absolute error and RMSE for the squared error, and those `metrics` asks for.
/// `metrics.top_k` must be positive.
pub fn evaluate<F: Real>(
    model: &Model<F>,
    data: &Dataset<F>,
    loss: LossKind,
    batch_size: usize,
    metrics: Metrics,
) -> Result<Evaluation> {
    check_loss(model.config(), loss)?;
    check_dataset(model, data, loss, "")?;
    crate::kernels::tensor::positive("batchSize", batch_size)?;
    if let Some(k) = metrics.top_k {
        crate::kernels::tensor::positive("metrics.topK", k)?;
    }
    let classes = model.output_width();
    let ce = loss == LossKind::CrossEntropy;
    if !ce && (metrics.top_k.is_some() || metrics.confusion) {
        let what = if metrics.top_k.is_some() { "metrics.topK" } else { "metrics.confusion" };
        return Err(CoreError::invalid(what, "used with the crossEntropy loss", format!("{loss:?}")));
    }
    let confusion = ce && metrics.confusion;
    if confusion {
        classes.checked_mul(classes).filter(|&n| n <= 1 << 26).ok_or_else(|| {
            CoreError::invalid("metrics.confusion", "a model of at most 8192 classes", format!("{classes} classes"))
        })?;
    }
    let idx: Vec<usize> = (0..data.len()).collect();
    // Several batches share one transposed copy of the weights.
    let prepared = if data.len() > batch_size { Some(model.prepare()?) } else { None };
    // Batches run side by side on the pool (each whole on one thread when they fill it evenly,
    // `threads::side_by_side`); their sums are added in batch order.
    let one = |chunk: &[usize]| -> Result<Sums> {
        let b = Batch::Samples(*data, chunk);
        let packed = b.pack(model)?;
        let inferred = model.infer(&packed, None, prepared.as_ref())?;
        let l = batch_loss(model, loss, &packed, inferred.logits(), &inferred.output, inferred.sequence, &b, None)?;
        let mut sums =
            Sums { loss: l.loss * l.weight, weight: l.weight, count: l.count, correct: l.correct, ..Sums::default() };
        let (class_ids, values, samples) = b.targets();
        // Rows of sample weight 0 are absent from the metrics as from the loss.
        let counted = |r: usize| l.row_weights.as_ref().is_none_or(|w| w[r] > F::zero());
        if ce && (metrics.top_k.is_some() || confusion) {
            let targets = model.pack_rows_of(&packed, class_ids, samples, 1, inferred.sequence);
            if confusion {
                sums.confusion = vec![0; classes * classes];
            }
            for (r, (row, &t)) in inferred.logits().rows().into_iter().zip(&targets).enumerate() {
                if !counted(r) {
                    continue;
                }
                let t = t as usize;
                if let Some(k) = metrics.top_k {
                    let target = row.get(t).copied().unwrap_or_else(F::nan);
                    sums.top_k += usize::from(row.iter().filter(|&&x| x > target).count() < k && !target.is_nan());
                }
                if confusion {
                    if let Some(c) = sums.confusion.get_mut(t * classes + arg_max(row.iter().copied())) {
                        *c += 1;
                    }
                }
            }
        }
        if loss == LossKind::MeanSquaredError {
            let targets = model.pack_rows_of(&packed, values, samples, classes, inferred.sequence);
            for (i, (&p, &y)) in inferred.output.iter().zip(&targets).enumerate() {
                if !counted(i / classes.max(1)) {
                    continue;
                }
                let d = p.to_f64().unwrap_or(f64::NAN) - y.to_f64().unwrap_or(f64::NAN);
                sums.abs += d.abs();
                sums.squares += d * d;
                sums.elements += 1;
            }
        }
        Ok(sums)
    };
    let parts: Vec<Result<Sums>> = if data.len() > batch_size && rayon::current_num_threads() > 1 {
        crate::kernels::threads::side_by_side(idx.par_chunks(batch_size), one)
    } else {
        idx.chunks(batch_size).map(one).collect()
    };
    let mut total =
        Sums { confusion: if confusion { vec![0; classes * classes] } else { Vec::new() }, ..Sums::default() };
    for p in parts {
        let p = p?;
        total.loss += p.loss;
        total.weight += p.weight;
        total.count += p.count;
        total.correct += p.correct;
        total.top_k += p.top_k;
        total.abs += p.abs;
        total.squares += p.squares;
        total.elements += p.elements;
        for (t, c) in total.confusion.iter_mut().zip(&p.confusion) {
            *t += c;
        }
    }
    let rows = total.count.max(1) as f64;
    let elements = total.elements.max(1) as f64;
    let mse = loss == LossKind::MeanSquaredError;
    Ok(Evaluation {
        loss: if total.weight > 0.0 { total.loss / total.weight } else { 0.0 },
        weight: total.weight,
        count: total.count,
        accuracy: ce.then(|| total.correct as f64 / rows),
        top_k_accuracy: (ce && metrics.top_k.is_some()).then(|| total.top_k as f64 / rows),
        mae: mse.then(|| total.abs / elements),
        rmse: mse.then(|| (total.squares / elements).sqrt()),
        confusion: confusion.then_some(total.confusion),
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
    // Batches are independent: they run side by side on the pool, each whole on one thread
    // when they fill it evenly (`threads::side_by_side`; each batch's arithmetic is the same
    // wherever it runs); their states are put together in batch order.
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
        crate::kernels::threads::side_by_side(idx.par_chunks(batch_size).zip(output.par_chunks_mut(chunk_len)), one)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::spec_from_value;
    use crate::train::{Dataset, Targets};

    /// Outputs, states and the evaluation's loss of `predict` and `evaluate` over 12 sequences
    /// in batches of `batch` on a pool of `threads`, as bits.
    fn run(threads: usize, batch: usize) -> (Vec<u32>, Vec<u32>, u64) {
        let spec = serde_json::json!({
            "input": { "features": 3 },
            "layers": [{ "type": "lstm", "hiddenSize": 8 }, { "type": "dense", "units": 2 }],
        });
        let (spec, _) = spec_from_value(spec).unwrap();
        let model = Model::<f32>::new(spec, 3).unwrap();
        let (s, t) = (12, 5);
        let x = ndarray::Array3::from_shape_fn((s, t, 3), |(a, b, c)| ((a * 31 + b * 7 + c) as f32 * 0.37).sin());
        let lengths: Vec<usize> = (0..s).map(|i| 1 + (i * 3) % t).collect();
        let y: Vec<f32> = (0..s * t * 2).map(|i| (i as f32 * 0.11).cos()).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| {
            let p = predict(&model, Inputs::Features(x.view()), Some(&lengths), batch).unwrap();
            let data = Dataset {
                inputs: Inputs::Features(x.view()),
                lengths: Some(&lengths),
                targets: Targets::Values(&y),
                weights: None,
            };
            let e = evaluate(&model, &data, LossKind::MeanSquaredError, batch, Metrics::default()).unwrap();
            let states = p.hidden.iter().chain(&p.cell).flatten().flatten().map(|v| v.to_bits()).collect();
            (p.output.iter().map(|v| v.to_bits()).collect(), states, e.loss.to_bits())
        })
    }

    #[test]
    fn batches_whole_on_their_threads_or_split_give_the_bits_of_one_thread() {
        // 12 sequences in batches of 6, 4, 3 and 2: 2, 3, 4 and 6 batches, whole on the threads
        // of a pool they fill evenly (2 on 2, 4 on 2, 6 on 3), split over it otherwise (3 on 2,
        // 2 on 3, 4 on 3).
        for batch in [6, 4, 3, 2] {
            let one = run(1, batch);
            for threads in [2, 3] {
                assert!(run(threads, batch) == one, "batches of {batch} on {threads} threads");
            }
        }
    }
}
