//! The teacher-forced loss of a [`Seq2Seq`], its gradient, and an epoch of optimizer steps.

use super::{embed, Dropout, Seq2Seq, Views};
use crate::attention::{decoder_forward, decoder_forward_backward, DecoderPrep};
use crate::error::{CoreError, Result};
use crate::kernels::linalg::{column_sums, gemm};
use crate::kernels::real::Real;
use crate::kernels::tensor::into_vec;
use crate::optim::{check_and_clip, matrix_decay_params, Optimizer};
use crate::random::Rng;
use crate::rnn::functional::{backward_traced, InitialState, OutputGrads};
use crate::rnn::weights::WeightGrads;
use ndarray::{s, Array2, Array3};
use rayon::prelude::*;

/// Pairs per shard of a batch: shards run side by side on the pool; fixed, so that the sums
/// (and the bits) do not depend on the number of threads.
const SHARD: usize = 16;

/// Options of [`Seq2Seq::loss`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LossOptions {
    /// `ε` of label smoothing (PyTorch's `label_smoothing`): the target distribution is
    /// `(1 − ε)·onehot + ε/Vt` over all `Vt` target ids; 0 for plain cross-entropy.
    pub label_smoothing: f64,
    /// Dropout probability in `[0, 1)` on the source and target embeddings, between encoder
    /// layers and on the attentional vector before the output layer (0: none; training only).
    pub dropout: f64,
    /// Seeds the dropout masks (each shard of a batch its own, from this seed).
    pub seed: u64,
}

/// Options of [`Seq2Seq::train_epoch`].
#[derive(Clone, Copy, Debug)]
pub struct EpochOptions {
    /// Pairs per optimizer step.
    pub batch_size: usize,
    /// The learning rate of this epoch.
    pub lr: f64,
    /// Clip the gradient's global L2 norm to this (PyTorch's `clip_grad_norm_`); `None`: no
    /// clipping.
    pub clip_norm: Option<f64>,
    /// The loss's options.
    pub loss: LossOptions,
    /// Seeds the order of the pairs.
    pub seed: u64,
    /// 1-based, for the error of a non-finite loss.
    pub epoch: usize,
}

/// The loss of one batch and, when asked, its gradient by parameter.
pub(crate) struct BatchLoss<F> {
    /// Mean loss per target token (its end token included).
    pub(crate) mean: f64,
    /// Target tokens in the batch (ends included).
    pub(crate) tokens: usize,
    /// Gradients of `mean`, in the model's parameter order.
    pub(crate) grads: Option<Vec<Vec<F>>>,
}

/// The output layer's gradients and the decoder outputs'.
struct HeadGrads<F> {
    d_weight: Array2<F>,
    d_bias: ndarray::Array1<F>,
    d_output: Array3<F>,
}

/// Scatters the rows of `dx: [B, T, E]` into a `[rows, E]` table's gradient by id.
fn scatter<F: Real>(ids: &[&[usize]], dx: &Array3<F>, grad: &mut [F], e: usize) {
    for (n, seq) in ids.iter().enumerate() {
        for (k, &id) in seq.iter().enumerate() {
            let row = &mut grad[id * e..(id + 1) * e];
            for (g, &d) in row.iter_mut().zip(dx.slice(s![n, k, ..]).iter()) {
                *g = *g + d;
            }
        }
    }
}

impl<F: Real> Seq2Seq<F> {
    /// An error unless every target has ids below `Vt` (named `what[i][k]`).
    fn check_targets(&self, what: &str, targets: &[&[usize]]) -> Result<()> {
        for (i, tgt) in targets.iter().enumerate() {
            if let Some(k) = tgt.iter().position(|&t| t >= self.config.target_vocab) {
                return Err(CoreError::invalid(
                    format!("{what}[{i}][{k}]"),
                    format!("a target id below targetVocab {}", self.config.target_vocab),
                    tgt[k],
                ));
            }
        }
        Ok(())
    }

    /// Checks a batch of pairs: as many targets as sources, sources non-empty, ids in range.
    fn check_pairs(&self, sources: &[&[usize]], targets: &[&[usize]]) -> Result<()> {
        if sources.len() != targets.len() {
            return Err(CoreError::shape(
                "targets",
                format!("{} sequences (one per source)", sources.len()),
                targets.len().to_string(),
            ));
        }
        if sources.is_empty() {
            return Err(CoreError::invalid("sources", "at least one pair", "none"));
        }
        self.check_sources("sources", sources)?;
        self.check_targets("targets", targets)
    }

    /// The teacher-forced loss of a batch, in shards of [`SHARD`] pairs run side by side on
    /// the pool (fixed shards, their gradients summed in order: the same bits on any number of
    /// threads); see [`Seq2Seq::shard_loss`].
    pub(crate) fn batch_loss(
        &self,
        sources: &[&[usize]],
        targets: &[&[usize]],
        opts: &LossOptions,
        grads: bool,
    ) -> Result<BatchLoss<F>> {
        let tokens: usize = targets.iter().map(|t| t.len() + 1).sum();
        if !(0.0..1.0).contains(&opts.dropout) {
            return Err(CoreError::invalid("dropout", "a probability in [0, 1)", opts.dropout));
        }
        // Shards of pairs of similar lengths: the decoder runs every row of a shard to the shard's
        // longest target, so sorted shards waste fewer steps (the batch's sum is the same).
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by_key(|&i| (targets[i].len(), sources[i].len()));
        let sources: Vec<&[usize]> = order.iter().map(|&i| sources[i]).collect();
        let targets: Vec<&[usize]> = order.iter().map(|&i| targets[i]).collect();
        // The decoder's weights transposed and packed once for every shard (the same values
        // each shard would make for itself).
        let v = self.views()?;
        let prep = DecoderPrep::new(&v.spec, &v.decoder, grads)?;
        let parts: Vec<Result<BatchLoss<F>>> = sources
            .par_chunks(SHARD)
            .zip(targets.par_chunks(SHARD))
            .enumerate()
            .map(|(i, (s, t))| {
                let mut noise = (opts.dropout > 0.0).then(|| {
                    Dropout::new(opts.dropout, opts.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                });
                self.shard_loss(s, t, opts, grads, tokens, &prep, noise.as_mut())
            })
            .collect();
        let mut total = 0.0;
        let mut sum: Option<Vec<Vec<F>>> = None;
        for part in parts {
            let part = part?;
            total += part.mean * part.tokens as f64;
            if let Some(g) = part.grads {
                crate::kernels::tensor::add_into_sum(&mut sum, g);
            }
        }
        Ok(BatchLoss { mean: total / tokens as f64, tokens, grads: sum })
    }

    /// The teacher-forced loss of a shard: the mean over every target token (each target's
    /// tokens and its end token) of the cross-entropy of the decoder's prediction, with label
    /// smoothing when asked; with `grads`, the gradient for every parameter of the shard's summed
    /// loss over `batch_tokens` (its share of the batch's mean).
    #[allow(clippy::too_many_arguments)]
    fn shard_loss(
        &self,
        sources: &[&[usize]],
        targets: &[&[usize]],
        opts: &LossOptions,
        grads: bool,
        batch_tokens: usize,
        prep: &DecoderPrep<F>,
        mut noise: Option<&mut Dropout>,
    ) -> Result<BatchLoss<F>> {
        let c = &self.config;
        let v = self.views()?;
        let e = c.embedding;
        let mut enc = self.encode_noisy(&v, sources, noise.as_deref_mut(), grads)?;
        // The decoder reads start, y_1 … y_n and predicts y_1 … y_n, end.
        let dec_in: Vec<Vec<usize>> =
            targets.iter().map(|t| std::iter::once(c.start).chain(t.iter().copied()).collect()).collect();
        let dec_refs: Vec<&[usize]> = dec_in.iter().map(Vec::as_slice).collect();
        let tq = dec_in.iter().map(Vec::len).max().unwrap_or(1);
        let mut y_in = embed(v.head.embedding, &dec_refs, tq);
        let y_mask = noise.as_deref_mut().map(|n| n.apply(&mut y_in));
        let init = InitialState { hidden: Some(enc.h0.view()), cell: enc.c0.as_ref().map(|a| a.view()) };
        let tokens: usize = targets.iter().map(|t| t.len() + 1).sum();
        if !grads {
            let mut dec =
                decoder_forward(&v.spec, &v.decoder, Some(prep), y_in.view(), enc.memory.view(), &enc.lengths, &init)?;
            if let Some(n) = noise.as_deref_mut() {
                n.apply(&mut dec.output);
            }
            let (total, _) = self.head(&v, targets, &dec.output, opts, None)?;
            return Ok(BatchLoss { mean: total / tokens as f64, tokens, grads: None });
        }
        // The decoder's forward pass, the loss and its gradient at the decoder's outputs, and the
        // decoder's backward pass, from one trace.
        let (g, (total, d_weight, d_bias)) = decoder_forward_backward(
            &v.spec,
            &v.decoder,
            Some(prep),
            y_in.view(),
            enc.memory.view(),
            &enc.lengths,
            &init,
            |dec| {
                // Dropout on h̃ before the output layer (the fed-back h̃ is the undropped one).
                let mut out = dec.output.clone();
                let mask = noise.map(|n| n.apply(&mut out));
                let (total, head) = self.head(&v, targets, &out, opts, Some(batch_tokens))?;
                let mut head = head.ok_or_else(|| CoreError::invalid("gradient", "computed", "none"))?;
                if let Some(m) = mask {
                    head.d_output.zip_mut_with(&m, |g, &m| *g = *g * m);
                }
                Ok((head.d_output, (total, head.d_weight, head.d_bias)))
            },
        )?;
        let mean = total / tokens as f64;
        // Every parameter's gradient, moved from the arrays the passes made (the embeddings'
        // scattered into zeros).
        let mut out: Vec<Vec<F>> = vec![Vec::new(); self.values.len()];
        let put = |out: &mut Vec<Vec<F>>, name: &str, grad: Vec<F>| -> Result<()> {
            let k = self.index(name)?;
            if grad.len() != self.values[k].len() {
                return Err(CoreError::shape(
                    name,
                    format!("{} values", self.values[k].len()),
                    format!("{}", grad.len()),
                ));
            }
            out[k] = grad;
            Ok(())
        };
        put(&mut out, "decoder.output.weight", into_vec(d_weight))?;
        put(&mut out, "decoder.output.bias", into_vec(d_bias))?;
        let WeightGrads { weight_ih, weight_hh, bias_ih, bias_hh } = g.cell;
        put(&mut out, "decoder.rnn.weight_ih", into_vec(weight_ih))?;
        put(&mut out, "decoder.rnn.weight_hh", into_vec(weight_hh))?;
        put(&mut out, "decoder.rnn.bias_ih", into_vec(bias_ih))?;
        put(&mut out, "decoder.rnn.bias_hh", into_vec(bias_hh))?;
        put(&mut out, "decoder.combine.weight", into_vec(g.combine_weight))?;
        put(&mut out, "decoder.combine.bias", into_vec(g.combine_bias))?;
        for (name, grad) in g.attention {
            put(&mut out, &format!("decoder.attention.{name}"), grad)?;
        }
        let mut d_y = g.input;
        if let Some(m) = &y_mask {
            d_y.zip_mut_with(m, |g, &m| *g = *g * m);
        }
        let k = self.index("decoder.embedding.weight")?;
        out[k] = vec![F::zero(); self.values[k].len()];
        scatter(&dec_refs, &d_y, &mut out[k], e);
        // The encoder, top layer first: its outputs' gradient is the memory's, its final
        // states' the decoder's initial states'.
        let h = c.hidden;
        let mut d_out = g.memory;
        let mut traces = std::mem::take(&mut enc.traces);
        for k in (0..c.layers).rev() {
            let mut d_in = Array3::<F>::zeros(enc.inputs[k].raw_dim());
            let layer = traces.pop().unwrap_or_default();
            if layer.len() != v.encoder[k].len() {
                return Err(CoreError::invalid("encoder passes", "one kept per direction", layer.len()));
            }
            for ((dir, w), traced) in v.encoder[k].iter().enumerate().zip(layer) {
                let part = s![.., dir * h..(dir + 1) * h];
                let d_o = d_out.slice(s![.., .., dir * h..(dir + 1) * h]).to_owned();
                let top = k + 1 == c.layers;
                let d_hn = top.then(|| g.h0.slice(part).to_owned());
                let d_cn = if top { g.c0.as_ref().map(|a| a.slice(part).to_owned()) } else { None };
                let og = OutputGrads {
                    output: Some(d_o.view()),
                    hidden: d_hn.as_ref().map(|a| a.view()),
                    cell: d_cn.as_ref().map(|a| a.view()),
                };
                let eg = backward_traced(w, traced, &og)?;
                d_in.zip_mut_with(&eg.input, |a, &g| *a = *a + g);
                let suffix = format!("_l{k}{}", if dir == 1 { "_reverse" } else { "" });
                let WeightGrads { weight_ih, weight_hh, bias_ih, bias_hh } = eg.weights;
                for (name, grad) in [
                    ("weight_ih", into_vec(weight_ih)),
                    ("weight_hh", into_vec(weight_hh)),
                    ("bias_ih", into_vec(bias_ih)),
                    ("bias_hh", into_vec(bias_hh)),
                ] {
                    put(&mut out, &format!("encoder.rnn.{name}{suffix}"), grad)?;
                }
            }
            if let Some(Some(m)) = enc.masks.get(k) {
                d_in.zip_mut_with(m, |g, &m| *g = *g * m);
            }
            d_out = d_in;
        }
        let k = self.index("encoder.embedding.weight")?;
        out[k] = vec![F::zero(); self.values[k].len()];
        scatter(sources, &d_out, &mut out[k], e);
        // (Every parameter has its gradient by now; a parameter of none would stay empty.)
        for (o, p) in out.iter_mut().zip(&self.values) {
            if o.len() != p.len() {
                *o = vec![F::zero(); p.len()];
            }
        }
        Ok(BatchLoss { mean, tokens, grads: Some(out) })
    }

    /// The output layer and the loss over the decoder's outputs `[B, Tq, D]`: the summed loss of
    /// every target token and, with `batch_tokens`, the gradients of the loss summed over
    /// `batch_tokens` (the output layer's and the decoder outputs').
    fn head(
        &self,
        v: &Views<'_, F>,
        targets: &[&[usize]],
        output: &Array3<F>,
        opts: &LossOptions,
        batch_tokens: Option<usize>,
    ) -> Result<(f64, Option<HeadGrads<F>>)> {
        let c = &self.config;
        let (b, tq, d) = output.dim();
        let vt = c.target_vocab;
        let flat = output
            .view()
            .into_shape_with_order((b * tq, d))
            .map_err(|e| CoreError::invalid("decoder output", "contiguous", e))?;
        let mut logits = Array2::zeros((b * tq, vt));
        gemm(F::one(), flat, v.head.weight.t(), F::zero(), logits.view_mut());
        for mut row in logits.rows_mut() {
            row.zip_mut_with(&v.head.bias, |l, &b| *l = *l + b);
        }
        let eps = opts.label_smoothing;
        let (scale, spread) = (F::lit(1.0 / batch_tokens.unwrap_or(1) as f64), eps / vt as f64);
        let mut total = 0.0f64;
        for (r, mut row) in logits.rows_mut().into_iter().enumerate() {
            let (n, step) = (r / tq, r % tq);
            let target = match targets[n].len().cmp(&step) {
                std::cmp::Ordering::Greater => targets[n][step],
                std::cmp::Ordering::Equal => c.end,
                std::cmp::Ordering::Less => {
                    row.fill(F::zero());
                    continue;
                }
            };
            let top = row.iter().copied().fold(F::neg_infinity(), F::max);
            let sum: f64 = row.iter().map(|&l| (l - top).exp().to_f64().unwrap_or(0.0)).sum();
            let log_z = top.to_f64().unwrap_or(0.0) + sum.ln();
            // −Σ q_k log p_k with q = (1 − ε)·onehot + ε/V.
            let mut loss = -(1.0 - eps) * (row[target].to_f64().unwrap_or(0.0) - log_z);
            if eps > 0.0 {
                let mean_logit: f64 = row.iter().map(|l| l.to_f64().unwrap_or(0.0)).sum::<f64>() / vt as f64;
                loss -= eps * (mean_logit - log_z);
            }
            total += loss;
            if batch_tokens.is_some() {
                // ∂/∂logit_k = p_k − q_k, over the batch's tokens.
                for (k, l) in row.iter_mut().enumerate() {
                    let p = ((*l).to_f64().unwrap_or(0.0) - log_z).exp();
                    let q = spread + if k == target { 1.0 - eps } else { 0.0 };
                    *l = F::lit(p - q) * scale;
                }
            }
        }
        if batch_tokens.is_none() {
            return Ok((total, None));
        }
        let mut d_weight = Array2::zeros((vt, d));
        gemm(F::one(), logits.t(), flat, F::zero(), d_weight.view_mut());
        let mut d_bias = ndarray::Array1::zeros(vt);
        column_sums(logits.view(), d_bias.view_mut());
        let mut d_output = Array3::zeros((b, tq, d));
        {
            let d2 = d_output
                .view_mut()
                .into_shape_with_order((b * tq, d))
                .map_err(|e| CoreError::invalid("grad", "contiguous", e))?;
            gemm(F::one(), logits.view(), v.head.weight, F::zero(), d2);
        }
        Ok((total, Some(HeadGrads { d_weight, d_bias, d_output })))
    }

    /// The mean teacher-forced cross-entropy per target token (each target's tokens and its
    /// end) over pairs `(sources[i], targets[i])`, in batches of 256 pairs.
    ///
    /// # Errors
    /// Unequal counts, an empty source, an id out of range (named `sources[i][k]` or
    /// `targets[i][k]`).
    pub fn loss(&self, sources: &[&[usize]], targets: &[&[usize]], opts: &LossOptions) -> Result<f64> {
        self.check_pairs(sources, targets)?;
        let (mut total, mut tokens) = (0.0, 0usize);
        for (src, tgt) in sources.chunks(256).zip(targets.chunks(256)) {
            let l = self.batch_loss(src, tgt, opts, false)?;
            total += l.mean * l.tokens as f64;
            tokens += l.tokens;
        }
        Ok(total / tokens as f64)
    }

    /// The loss of one batch and its gradient, in the model's parameter order.
    ///
    /// # Errors
    /// As [`Seq2Seq::loss`].
    pub fn loss_and_gradient(
        &self,
        sources: &[&[usize]],
        targets: &[&[usize]],
        opts: &LossOptions,
    ) -> Result<(f64, Vec<Vec<F>>)> {
        self.check_pairs(sources, targets)?;
        let l = self.batch_loss(sources, targets, opts, true)?;
        Ok((l.mean, l.grads.unwrap_or_default()))
    }

    /// One epoch: the pairs in a seeded random order, in batches of `batch_size`, one
    /// optimizer step per batch (weight decay, where configured, on matrices only); the mean
    /// loss per target token over the epoch (each batch's loss before its step).
    ///
    /// # Errors
    /// As [`Seq2Seq::loss`]; `batchSize` 0; an optimizer made for other parameters; a
    /// non-finite loss or gradient, leaving the weights as they were before that batch.
    pub fn train_epoch(
        &mut self,
        optimizer: &mut Optimizer<F>,
        sources: &[&[usize]],
        targets: &[&[usize]],
        opts: &EpochOptions,
    ) -> Result<f64> {
        self.check_pairs(sources, targets)?;
        if opts.batch_size == 0 {
            return Err(CoreError::invalid("batchSize", "a positive integer", 0));
        }
        let sizes: Vec<usize> = self.values.iter().map(Vec::len).collect();
        if optimizer.sizes() != sizes.as_slice() {
            return Err(CoreError::invalid("optimizer", "one made for this model's parameters", "another model's"));
        }
        let mut order: Vec<usize> = (0..sources.len()).collect();
        Rng::new(opts.seed).shuffle(&mut order);
        let (mut total, mut tokens) = (0.0, 0usize);
        for (batch, chunk) in order.chunks(opts.batch_size).enumerate() {
            let src: Vec<&[usize]> = chunk.iter().map(|&i| sources[i]).collect();
            let tgt: Vec<&[usize]> = chunk.iter().map(|&i| targets[i]).collect();
            let loss = LossOptions { seed: opts.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ batch as u64, ..opts.loss };
            let l = self.batch_loss(&src, &tgt, &loss, true)?;
            let mut grads = l.grads.unwrap_or_default();
            let mut refs: Vec<&mut [F]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
            check_and_clip(&mut refs, l.mean, opts.clip_norm, None, opts.epoch, batch + 1)?;
            optimizer.step(&mut matrix_decay_params(&mut self.values, &grads, &self.shapes), F::lit(opts.lr))?;
            self.generation = super::Generation::fresh();
            total += l.mean * l.tokens as f64;
            tokens += l.tokens;
        }
        Ok(total / tokens as f64)
    }
}
