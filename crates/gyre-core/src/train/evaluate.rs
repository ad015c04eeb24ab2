//! Evaluation (mean loss and accuracy) and prediction of a model over a whole dataset, in
//! batches, without dropout.

use super::batches::{check_dataset, Batch, Dataset};
use super::fit::{batch_loss, check_loss, LossKind};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::model::{Inputs, Model};
use rayon::prelude::*;

/// Loss and metrics over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss over every counted row.
    pub loss: f64,
    /// Fraction of rows whose largest output is the target class (cross-entropy only).
    pub accuracy: Option<f64>,
}

/// Mean loss (and accuracy for cross-entropy) of `model` on `data`, without dropout.
pub fn evaluate<F: Real>(model: &Model<F>, data: &Dataset<F>, loss: LossKind, batch_size: usize) -> Result<Evaluation> {
    check_loss(model.config(), loss)?;
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
