//! Batches in and out of a model: a batch-first input sorted by decreasing length and packed
//! time-major (see [`crate::rnn::Packing`]), and outputs or targets moved between
//! that row order and the caller's.

use super::config::InputKind;
use super::init::{invalid, Model};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::rnn::Packing;
use ndarray::{Array2, ArrayView2, ArrayView3};

/// A batch ready for the layers: sorted by decreasing length and packed.
#[derive(Clone, Debug)]
pub struct PackedBatch<F> {
    /// Row layout.
    pub(crate) packing: Packing,
    /// `order[i]` is the original index of the `i`-th sequence after sorting.
    pub order: Vec<usize>,
    /// `[N, I]` packed features (empty for token input).
    pub features: Array2<F>,
    /// `[N]` packed token ids (empty for feature input).
    pub tokens: Vec<u32>,
    /// Number of steps `T` of the padded input.
    pub steps: usize,
}

/// A batch of inputs, batch-first.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a, F> {
    /// `[B, T, I]` features.
    Features(ArrayView3<'a, F>),
    /// `[B, T]` token ids.
    Tokens(ArrayView2<'a, u32>),
}

impl<F> Inputs<'_, F> {
    /// `(B, T)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Inputs::Features(x) => (x.dim().0, x.dim().1),
            Inputs::Tokens(x) => x.dim(),
        }
    }
}

impl<F: Real> Model<F> {
    /// Sorts a batch by decreasing length and packs it. `lengths: [B]` (each in `1..=T`)
    /// defaults to `T` for every sequence.
    ///
    /// # Errors
    /// When the input width differs from the model's, a length is out of range or a token id
    /// is outside the vocabulary (naming the sequence and step).
    pub fn pack(&self, inputs: Inputs<F>, lengths: Option<&[usize]>) -> Result<PackedBatch<F>> {
        let all: Vec<usize> = (0..inputs.dims().0).collect();
        self.pack_samples(inputs, &all, lengths)
    }

    /// [`Model::pack`] of the batch made of the sequences `samples` of `inputs` (in that
    /// order), read in place. `lengths`, when given, has one entry per sequence of `inputs`.
    ///
    /// # Errors
    /// As [`Model::pack`] (naming sequences by their index in `inputs`), and when a sample
    /// index is out of range.
    pub fn pack_samples(
        &self,
        inputs: Inputs<F>,
        samples: &[usize],
        lengths: Option<&[usize]>,
    ) -> Result<PackedBatch<F>> {
        let (all, steps) = inputs.dims();
        let batch = samples.len();
        crate::kernels::tensor::positive("batch size", batch)?;
        crate::kernels::tensor::positive("steps", steps)?;
        if let Some(&s) = samples.iter().find(|&&s| s >= all) {
            return Err(invalid("sample index", format!("an index below {all}"), s));
        }
        let lengths: Vec<usize> = match lengths {
            Some(l) => {
                if l.len() != all {
                    return Err(CoreError::shape("lengths", format!("[{all}]"), format!("[{}]", l.len())));
                }
                if let Some(&s) = samples.iter().find(|&&s| l[s] == 0 || l[s] > steps) {
                    return Err(invalid(format!("lengths[{s}]"), format!("an integer in 1..={steps}"), l[s]));
                }
                samples.iter().map(|&s| l[s]).collect()
            }
            None => vec![steps; batch],
        };
        let mut order: Vec<usize> = (0..batch).collect();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a])); // stable: ties keep their order
        let sorted: Vec<usize> = order.iter().map(|&i| lengths[i]).collect();
        let packing = Packing::from_sorted_lengths(&sorted)?;
        let (mut features, mut tokens) = (Array2::zeros((0, 0)), Vec::new());
        match (inputs, self.config.input) {
            (Inputs::Features(x), InputKind::Features { size }) => {
                if x.dim().2 != size {
                    return Err(CoreError::shape("x", format!("[{all}, {steps}, {size}]"), format!("{:?}", x.dim())));
                }
                let mut rows = Vec::with_capacity(packing.rows() * size);
                for t in 0..packing.steps() {
                    for &b in &order[..packing.rows_at(t)] {
                        let src = x.slice(ndarray::s![samples[b], t, ..]);
                        match src.as_slice() {
                            Some(v) => rows.extend_from_slice(v),
                            None => rows.extend(src.iter().copied()),
                        }
                    }
                }
                features = Array2::from_shape_vec((packing.rows(), size), rows)
                    .map_err(|e| CoreError::shape("x", format!("[{}, {size}]", packing.rows()), e.to_string()))?;
            }
            (Inputs::Tokens(x), InputKind::Tokens { vocab_size }) => {
                tokens = vec![0; packing.rows()];
                for t in 0..packing.steps() {
                    for i in 0..packing.rows_at(t) {
                        let sample = samples[order[i]];
                        let id = x[[sample, t]];
                        if id as usize >= vocab_size {
                            return Err(invalid(
                                format!("x[{sample}][{t}]"),
                                format!("a token id below the vocabulary size {vocab_size}"),
                                id,
                            ));
                        }
                        tokens[packing.offset(t) + i] = id;
                    }
                }
            }
            (Inputs::Features(_), InputKind::Tokens { .. }) => {
                return Err(invalid("x", "token ids (the model starts with an embedding)", "float features"))
            }
            (Inputs::Tokens(_), InputKind::Features { .. }) => {
                return Err(invalid("x", "float features (the model has no embedding)", "token ids"))
            }
        }
        Ok(PackedBatch { packing, order, features, tokens, steps })
    }

    /// Unpacks a packed `[N, W]` sequence output of `batch` to batch-first `[B, T, W]` in the
    /// original order, zeros at padded steps; or reorders a `[B, W]` output.
    pub fn unpack(&self, batch: &PackedBatch<F>, rows: ArrayView2<F>, sequence: bool) -> Vec<F> {
        let per = if sequence { batch.steps } else { 1 } * rows.ncols();
        let mut out = vec![F::zero(); batch.packing.batch() * per];
        self.unpack_into(batch, rows, sequence, &mut out);
        out
    }

    /// [`Model::unpack`] into `out: [B, T, W]` (or `[B, W]`), which must hold zeros at the
    /// padded steps (they are not written).
    pub fn unpack_into(&self, batch: &PackedBatch<F>, rows: ArrayView2<F>, sequence: bool, out: &mut [F]) {
        let w = rows.ncols();
        let p = &batch.packing;
        let copy = |dst: &mut [F], src: ndarray::ArrayView1<F>| match src.as_slice() {
            Some(v) => dst.copy_from_slice(v),
            None => dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v),
        };
        if sequence {
            for t in 0..p.steps() {
                for i in 0..p.rows_at(t) {
                    let dst = (batch.order[i] * batch.steps + t) * w;
                    copy(&mut out[dst..dst + w], rows.row(p.offset(t) + i));
                }
            }
        } else {
            for (i, &orig) in batch.order.iter().enumerate() {
                copy(&mut out[orig * w..(orig + 1) * w], rows.row(i));
            }
        }
    }

    /// Packs batch-first per-sequence or per-step values (`[B, W]` or `[B, T, W]`, original
    /// order) into the row order of `batch` (`[B, W]` sorted, or `[N, W]` packed).
    pub fn pack_rows<T: Copy + Default>(
        &self,
        batch: &PackedBatch<F>,
        values: &[T],
        width: usize,
        sequence: bool,
    ) -> Vec<T> {
        self.pack_rows_of(batch, values, None, width, sequence)
    }

    /// Per row of `batch` (as [`Model::pack_rows_of`] orders them), the value of its sequence in
    /// `per_sample` (indexed by the entries of `samples`, or by position without it): a sample
    /// weight for every row, every step of a sequence included when `sequence`.
    pub fn pack_sample_values<T: Copy + Default>(
        &self,
        batch: &PackedBatch<F>,
        per_sample: &[T],
        samples: Option<&[usize]>,
        sequence: bool,
    ) -> Vec<T> {
        let p = &batch.packing;
        let value = |j: usize| per_sample.get(samples.map_or(j, |s| s[j])).copied().unwrap_or_default();
        if sequence {
            let mut out = vec![T::default(); p.rows()];
            for t in 0..p.steps() {
                for i in 0..p.rows_at(t) {
                    out[p.offset(t) + i] = value(batch.order[i]);
                }
            }
            out
        } else {
            batch.order.iter().map(|&o| value(o)).collect()
        }
    }

    /// As [`Model::pack_rows`], for a batch made of the sequences `samples` of a larger set
    /// (`values` holds all of them; [`Model::pack_samples`]); `None`: `values` is the batch's.
    pub fn pack_rows_of<T: Copy + Default>(
        &self,
        batch: &PackedBatch<F>,
        values: &[T],
        samples: Option<&[usize]>,
        width: usize,
        sequence: bool,
    ) -> Vec<T> {
        let p = &batch.packing;
        let sample = |j: usize| samples.map_or(j, |s| s[j]);
        if sequence {
            let mut out = vec![T::default(); p.rows() * width];
            for t in 0..p.steps() {
                for i in 0..p.rows_at(t) {
                    let src = (sample(batch.order[i]) * batch.steps + t) * width;
                    let dst = (p.offset(t) + i) * width;
                    out[dst..dst + width].copy_from_slice(&values[src..src + width]);
                }
            }
            out
        } else {
            let rows = batch.order.iter().map(|&o| sample(o));
            rows.flat_map(|o| values[o * width..(o + 1) * width].iter().copied()).collect()
        }
    }
}
