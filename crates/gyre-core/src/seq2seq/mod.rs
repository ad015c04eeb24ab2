//! An encoder–decoder with attention over token sequences: a (stacked, optionally
//! bidirectional) recurrent encoder over source tokens, an attention decoder
//! ([`crate::attention::decoder_forward`]) over target tokens, and a dense output layer over
//! the target vocabulary; trained with teacher forcing on per-step cross-entropy over each
//! target's own length (label smoothing optional), decoded greedily or by beam search.
//!
//! The decoder's initial state is the encoder's top layer's final state; a bidirectional
//! encoder's two directions are **concatenated** (`[forward; backward]`), so the decoder's
//! hidden size `D` is `hidden` times the number of directions, and its attention reads the top
//! layer's outputs, `[B, Ts, D]`.
//!
//! Parameters keep PyTorch's names where PyTorch has a module for them
//! (`encoder.rnn.weight_ih_l0_reverse` is `nn.LSTM(bidirectional=True)`'s), in
//! [`Seq2Seq::param_shapes`]'s order:
//!
//! | name | shape |
//! | --- | --- |
//! | `encoder.embedding.weight` | `[Vs, E]` |
//! | `encoder.rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}[_reverse]` | `[G·H, In]`, `[G·H, H]`, `[G·H]` |
//! | `decoder.embedding.weight` | `[Vt, E]` |
//! | `decoder.rnn.{weight_ih,weight_hh,bias_ih,bias_hh}` | `[G·D, E (+ D with input feeding)]`, `[G·D, D]`, `[G·D]` |
//! | `decoder.attention.weight` (general) or `.query_weight`, `.key_weight`, `.bias`, `.v` (additive) | `[D, D]`; `[A, D]`, `[A, D]`, `[A]`, `[A]` |
//! | `decoder.combine.{weight,bias}` | `[D, 2·D]`, `[D]` |
//! | `decoder.output.{weight,bias}` | `[Vt, D]`, `[Vt]` |
//!
//! Target sequences are given without start and end tokens: the decoder reads
//! `start, y_1, …, y_n` and is trained to emit `y_1, …, y_n, end`.
//!
//! - `train`: the loss, its gradients and an epoch of Adam (or any [`crate::optim`]) steps;
//! - `file`: one safetensors file with the configuration and, optionally, the optimizer state.

mod file;
#[cfg(test)]
mod tests;
mod train;

pub use file::{load, save, SavedSeq2Seq, FORMAT as SEQ2SEQ_FORMAT};
pub use train::{EpochOptions, LossOptions};

use crate::attention::{beam_search_ensemble, BeamOptions, DecoderSpec, DecoderWeights, Hypothesis, Member, TokenHead};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::random::Rng;
use crate::rnn::cells::{GateActivation, Nonlinearity};
use crate::rnn::functional::{forward_sequences, forward_traced, CellKind, InitialState, SequenceOptions};
use crate::rnn::weights::LayerWeights;
use crate::AttentionScore;
use ndarray::{s, Array2, Array3, ArrayView1, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The attention score of a [`Seq2SeqConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum ScoreConfig {
    /// Luong's dot score (no parameters).
    Dot,
    /// Luong's general score, `W: [D, D]`.
    General,
    /// Bahdanau's additive score with `units` attention units.
    Additive {
        /// `A`, the rows of `W_q` and `W_k`.
        units: usize,
    },
}

/// The shape of a [`Seq2Seq`] model (its JSON form, camelCase, is what a model file stores).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seq2SeqConfig {
    /// `"lstm"`, `"gru"` or `"rnn"` (tanh), for the encoder and the decoder.
    pub cell: String,
    /// `Vs`: source token ids are `0 … Vs − 1`.
    pub source_vocab: usize,
    /// `Vt`: target token ids are `0 … Vt − 1`, `start` and `end` among them.
    pub target_vocab: usize,
    /// `E`: the width of both embeddings.
    pub embedding: usize,
    /// `H`: the encoder's hidden size per direction (the decoder's is `H` × directions).
    pub hidden: usize,
    /// Stacked encoder layers (≥ 1).
    pub layers: usize,
    /// A bidirectional encoder (its final states concatenated into the decoder's).
    pub bidirectional: bool,
    /// The attention score.
    pub score: ScoreConfig,
    /// Input feeding: the previous step's attentional vector is concatenated to the decoder's
    /// input.
    pub input_feeding: bool,
    /// The target id the decoder reads first.
    pub start: usize,
    /// The target id that ends an output.
    pub end: usize,
}

impl Seq2SeqConfig {
    /// The cell, parsed from [`Seq2SeqConfig::cell`].
    ///
    /// # Errors
    /// When the name is not one of `lstm`, `gru`, `rnn`.
    pub fn cell_kind(&self) -> Result<CellKind> {
        match self.cell.as_str() {
            "lstm" => Ok(CellKind::LSTM),
            "gru" => Ok(CellKind::Gru { reset_after: true, recurrent: GateActivation::Sigmoid }),
            "rnn" => Ok(CellKind::Rnn(Nonlinearity::Tanh)),
            other => Err(CoreError::invalid("cell", "\"lstm\", \"gru\" or \"rnn\"", format!("{other:?}"))),
        }
    }

    /// Encoder directions: 2 when bidirectional, else 1.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// `D`, the decoder's hidden size: `hidden × directions`.
    pub fn decoder_hidden(&self) -> usize {
        self.hidden * self.directions()
    }

    /// # Errors
    /// An error naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        self.cell_kind()?;
        for (what, v) in [
            ("sourceVocab", self.source_vocab),
            ("targetVocab", self.target_vocab),
            ("embedding", self.embedding),
            ("hidden", self.hidden),
            ("layers", self.layers),
        ] {
            if v == 0 {
                return Err(CoreError::invalid(what, "a positive integer", v));
            }
        }
        if let ScoreConfig::Additive { units: 0 } = self.score {
            return Err(CoreError::invalid("score.additive.units", "a positive integer", 0));
        }
        for (what, id) in [("start", self.start), ("end", self.end)] {
            if id >= self.target_vocab {
                return Err(CoreError::invalid(
                    what,
                    format!("a target id below targetVocab {}", self.target_vocab),
                    id,
                ));
            }
        }
        if self.start == self.end {
            return Err(CoreError::invalid("end", format!("an id other than start {}", self.start), self.end));
        }
        Ok(())
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and validates the JSON form.
    ///
    /// # Errors
    /// The field at fault for malformed JSON, an unknown key or a value out of range.
    pub fn from_json(text: &str) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: Seq2SeqConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            CoreError::invalid(
                if path == "." { "config".to_string() } else { path },
                "a seq2seq configuration",
                e.inner(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }
}

/// An encoder–decoder model: its configuration and its parameters (flat, row-major, in
/// [`Seq2Seq::param_shapes`]'s order).
#[derive(Clone, Debug, PartialEq)]
pub struct Seq2Seq<F> {
    config: Seq2SeqConfig,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    values: Vec<Vec<F>>,
    generation: Generation,
}

/// Which values a model holds: a number drawn afresh (unique in the process) whenever a model
/// is made or its parameters change, so that what was derived from them (a stream's prepared
/// decoder weights) can tell whether it still fits. Not part of a model's equality.
#[derive(Clone, Copy, Debug)]
struct Generation(u64);

impl Generation {
    fn fresh() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Generation(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl PartialEq for Generation {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// How [`Seq2Seq::transduce`] decodes.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    /// Beams kept per source (1: greedy).
    pub beam_width: usize,
    /// The most tokens an output has (its end token included).
    pub max_length: usize,
    /// Wu et al.'s `α` (0: raw log-probability).
    pub length_penalty: f64,
    /// Outputs returned per source, best first (≤ `beam_width`).
    pub n_best: usize,
}

/// A decoder stream over one batch of sources ([`Seq2Seq::stream`]): the encoder's work on them
/// and the decoder's state, advanced one token per row at a time by [`Seq2Seq::stream_step`].
#[derive(Clone, Debug)]
pub struct Seq2SeqStream<F> {
    memory: ndarray::Array3<F>,
    lengths: Vec<usize>,
    state: crate::attention::DecoderState<F>,
    /// The decoder's weights in the forms its steps read and the memory's keys as its scores
    /// read them, made once, and the generation of the model's values they were made from (made
    /// again when the model has changed since).
    prep: (u64, crate::attention::DecoderPrep<F>, crate::attention::MemoryKeys<F>),
    /// Tokens stepped so far.
    pub steps: usize,
}

impl<F> Seq2SeqStream<F> {
    /// Rows (sources) of the stream.
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// Each source's length (the attention's columns).
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }
}

/// The weights of one forward pass, as views of a [`Seq2Seq`]'s parameters.
pub(crate) struct Views<'a, F> {
    pub(crate) cell: CellKind,
    pub(crate) src_embedding: ArrayView2<'a, F>,
    /// `[layer][direction]`.
    pub(crate) encoder: Vec<Vec<LayerWeights<'a, F>>>,
    pub(crate) spec: DecoderSpec<'a, F>,
    pub(crate) decoder: DecoderWeights<'a, F>,
    pub(crate) head: TokenHead<'a, F>,
}

/// The encoder's work on a batch of sources, kept for the backward pass.
pub(crate) struct Encoded<F> {
    /// `[layer]`: each layer's input, `[B, Ts, In]` (the embedded sources first), after dropout.
    pub(crate) inputs: Vec<Array3<F>>,
    /// `[layer]`: the dropout mask (scaled: 0 or `1/(1 − p)`) each input was multiplied by.
    pub(crate) masks: Vec<Option<Array3<F>>>,
    /// `[B]`: each source's length.
    pub(crate) lengths: Vec<usize>,
    /// The top layer's outputs, `[B, Ts, D]`.
    pub(crate) memory: Array3<F>,
    /// `[B, D]`: the decoder's initial hidden state.
    pub(crate) h0: Array2<F>,
    /// `[B, D]`: its initial cell state (LSTM).
    pub(crate) c0: Option<Array2<F>>,
    /// `[layer][direction]`: the passes kept for the backward pass (training only; empty
    /// otherwise).
    pub(crate) traces: Vec<Vec<crate::rnn::functional::TracedForward<F>>>,
}

/// Inverted dropout with a seeded generator: each value kept with probability `1 − p` and
/// scaled by `1/(1 − p)`, or zeroed.
pub(crate) struct Dropout {
    p: f64,
    rng: Rng,
}

impl Dropout {
    pub(crate) fn new(p: f64, seed: u64) -> Self {
        Dropout { p, rng: Rng::new(seed) }
    }

    /// Multiplies `x` by a fresh mask and returns the mask.
    pub(crate) fn apply<F: Real, D: ndarray::Dimension>(
        &mut self,
        x: &mut ndarray::Array<F, D>,
    ) -> ndarray::Array<F, D> {
        let keep = F::lit(1.0 / (1.0 - self.p));
        let mut mask = ndarray::Array::<F, D>::zeros(x.raw_dim());
        for (m, v) in mask.iter_mut().zip(x.iter_mut()) {
            *m = if self.rng.uniform() < self.p { F::zero() } else { keep };
            *v = *v * *m;
        }
        mask
    }
}

/// `[B, T, E]`: the rows of `table` for each sequence's ids, zeros past its end.
pub(crate) fn embed<F: Real>(table: ArrayView2<F>, ids: &[&[usize]], steps: usize) -> Array3<F> {
    let (b, e) = (ids.len(), table.ncols());
    let mut out = Array3::zeros((b, steps, e));
    for (n, seq) in ids.iter().enumerate() {
        for (k, &id) in seq.iter().enumerate().take(steps) {
            out.slice_mut(s![n, k, ..]).assign(&table.row(id));
        }
    }
    out
}

impl<F: Real> Seq2Seq<F> {
    /// The parameters' names and shapes for `config`, in the model's order.
    ///
    /// # Errors
    /// When the configuration does not validate.
    pub fn param_shapes(config: &Seq2SeqConfig) -> Result<Vec<(String, Vec<usize>)>> {
        config.validate()?;
        let g = config.cell_kind()?.gates();
        let (e, h, d) = (config.embedding, config.hidden, config.decoder_hidden());
        let mut out = vec![("encoder.embedding.weight".to_string(), vec![config.source_vocab, e])];
        for k in 0..config.layers {
            let input = if k == 0 { e } else { d };
            for dir in 0..config.directions() {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                out.push((format!("encoder.rnn.weight_ih_l{k}{suffix}"), vec![g * h, input]));
                out.push((format!("encoder.rnn.weight_hh_l{k}{suffix}"), vec![g * h, h]));
                out.push((format!("encoder.rnn.bias_ih_l{k}{suffix}"), vec![g * h]));
                out.push((format!("encoder.rnn.bias_hh_l{k}{suffix}"), vec![g * h]));
            }
        }
        let feed = if config.input_feeding { d } else { 0 };
        out.push(("decoder.embedding.weight".to_string(), vec![config.target_vocab, e]));
        out.push(("decoder.rnn.weight_ih".to_string(), vec![g * d, e + feed]));
        out.push(("decoder.rnn.weight_hh".to_string(), vec![g * d, d]));
        out.push(("decoder.rnn.bias_ih".to_string(), vec![g * d]));
        out.push(("decoder.rnn.bias_hh".to_string(), vec![g * d]));
        match config.score {
            ScoreConfig::Dot => {}
            ScoreConfig::General => out.push(("decoder.attention.weight".to_string(), vec![d, d])),
            ScoreConfig::Additive { units } => {
                out.push(("decoder.attention.query_weight".to_string(), vec![units, d]));
                out.push(("decoder.attention.key_weight".to_string(), vec![units, d]));
                out.push(("decoder.attention.bias".to_string(), vec![units]));
                out.push(("decoder.attention.v".to_string(), vec![units]));
            }
        }
        out.push(("decoder.combine.weight".to_string(), vec![d, 2 * d]));
        out.push(("decoder.combine.bias".to_string(), vec![d]));
        out.push(("decoder.output.weight".to_string(), vec![config.target_vocab, d]));
        out.push(("decoder.output.bias".to_string(), vec![config.target_vocab]));
        Ok(out)
    }

    /// A model with PyTorch's initialization, seeded: embeddings `N(0, 1)` (`nn.Embedding`),
    /// recurrent weights and biases `U(−1/√H, 1/√H)` with the layer's own hidden size
    /// (`nn.LSTM`), dense and attention weights and biases `U(−1/√fan_in, 1/√fan_in)`
    /// (`nn.Linear`); the additive score's `v` as a `Linear(A, 1)`'s weight.
    ///
    /// # Errors
    /// When the configuration does not validate.
    pub fn new(config: Seq2SeqConfig, seed: u64) -> Result<Self> {
        let shapes = Self::param_shapes(&config)?;
        let mut rng = Rng::new(seed);
        let (h, d) = (config.hidden as f64, config.decoder_hidden() as f64);
        let mut names = Vec::new();
        let mut dims = Vec::new();
        let mut values = Vec::new();
        for (name, shape) in shapes {
            let n: usize = shape.iter().product();
            let bound = if name.starts_with("encoder.rnn.") {
                1.0 / h.sqrt()
            } else if name.starts_with("decoder.rnn.") || name == "decoder.attention.v" {
                1.0 / if name == "decoder.attention.v" { shape[0] as f64 } else { d }.sqrt()
            } else if name.ends_with("embedding.weight") {
                0.0
            } else if name == "decoder.attention.bias" {
                1.0 / d.sqrt()
            } else {
                // Dense weights `[out, in]` and their biases: fan_in is the weight's columns.
                let fan_in = if shape.len() == 2 { shape[1] } else { d as usize };
                1.0 / (fan_in as f64).sqrt()
            };
            let data: Vec<F> = if bound == 0.0 {
                (0..n).map(|_| F::lit(rng.normal())).collect()
            } else {
                (0..n).map(|_| F::lit(rng.range(-bound, bound))).collect()
            };
            names.push(name);
            dims.push(shape);
            values.push(data);
        }
        Ok(Seq2Seq { config, names, shapes: dims, values, generation: Generation::fresh() })
    }

    /// A model from `config` and every parameter by name (any order).
    ///
    /// # Errors
    /// When a parameter is missing, extra, of another length than its shape, or not finite.
    pub fn from_params(config: Seq2SeqConfig, params: Vec<(String, Vec<F>)>) -> Result<Self> {
        let shapes = Self::param_shapes(&config)?;
        let mut given: std::collections::BTreeMap<String, Vec<F>> = params.into_iter().collect();
        let (mut names, mut dims, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for (name, shape) in shapes {
            let data = given
                .remove(&name)
                .ok_or_else(|| CoreError::Missing { what: name.clone(), context: "by the configuration".into() })?;
            let n: usize = shape.iter().product();
            if data.len() != n {
                return Err(CoreError::shape(
                    name,
                    format!("{shape:?} ({n} values)"),
                    format!("{} values", data.len()),
                ));
            }
            if let Some(k) = data.iter().position(|v| !v.is_finite()) {
                return Err(CoreError::invalid(format!("{name}[{k}]"), "a finite number", data[k]));
            }
            names.push(name);
            dims.push(shape);
            values.push(data);
        }
        if let Some(extra) = given.keys().next() {
            return Err(CoreError::invalid("params", "only the configuration's parameters", format!("extra {extra}")));
        }
        Ok(Seq2Seq { config, names, shapes: dims, values, generation: Generation::fresh() })
    }

    /// The configuration.
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    /// The parameters: `(name, shape, values)` in the model's order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &[usize], &[F])> {
        self.names
            .iter()
            .zip(&self.shapes)
            .zip(&self.values)
            .map(|((n, s), v)| (n.as_str(), s.as_slice(), v.as_slice()))
    }

    /// The number of scalar parameters.
    pub fn param_count(&self) -> usize {
        self.values.iter().map(Vec::len).sum()
    }

    pub(crate) fn index(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| CoreError::Missing { what: name.to_string(), context: "as a parameter of the model".into() })
    }

    fn two(&self, name: &str) -> Result<ArrayView2<'_, F>> {
        let k = self.index(name)?;
        let s = &self.shapes[k];
        ArrayView2::from_shape((s[0], s[1]), &self.values[k]).map_err(|e| CoreError::invalid(name, "a matrix", e))
    }

    fn one(&self, name: &str) -> Result<ArrayView1<'_, F>> {
        let k = self.index(name)?;
        Ok(ArrayView1::from(self.values[k].as_slice()))
    }

    fn layer(&self, prefix: &str, suffix: &str) -> Result<LayerWeights<'_, F>> {
        Ok(LayerWeights {
            weight_ih: self.two(&format!("{prefix}weight_ih{suffix}"))?,
            weight_hh: self.two(&format!("{prefix}weight_hh{suffix}"))?,
            bias_ih: self.one(&format!("{prefix}bias_ih{suffix}"))?,
            bias_hh: self.one(&format!("{prefix}bias_hh{suffix}"))?,
        })
    }

    pub(crate) fn views(&self) -> Result<Views<'_, F>> {
        let c = &self.config;
        let encoder = (0..c.layers)
            .map(|k| {
                (0..c.directions())
                    .map(|dir| self.layer("encoder.rnn.", &format!("_l{k}{}", if dir == 1 { "_reverse" } else { "" })))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let score = match c.score {
            ScoreConfig::Dot => AttentionScore::Dot,
            ScoreConfig::General => AttentionScore::General { weight: self.two("decoder.attention.weight")? },
            ScoreConfig::Additive { .. } => AttentionScore::Additive {
                query_weight: self.two("decoder.attention.query_weight")?,
                key_weight: self.two("decoder.attention.key_weight")?,
                bias: self.one("decoder.attention.bias")?,
                v: self.one("decoder.attention.v")?,
            },
        };
        let cell = c.cell_kind()?;
        Ok(Views {
            cell,
            src_embedding: self.two("encoder.embedding.weight")?,
            encoder,
            spec: DecoderSpec { cell, score, input_feeding: c.input_feeding },
            decoder: DecoderWeights {
                cell: self.layer("decoder.rnn.", "")?,
                combine_weight: self.two("decoder.combine.weight")?,
                combine_bias: self.one("decoder.combine.bias")?,
            },
            head: TokenHead {
                embedding: self.two("decoder.embedding.weight")?,
                weight: self.two("decoder.output.weight")?,
                bias: self.one("decoder.output.bias")?,
            },
        })
    }

    /// An error unless every source is non-empty with ids below `Vs` (named `what[i][k]`).
    pub(crate) fn check_sources(&self, what: &str, sources: &[&[usize]]) -> Result<()> {
        for (i, src) in sources.iter().enumerate() {
            if src.is_empty() {
                return Err(CoreError::invalid(format!("{what}[{i}]"), "at least one token", "an empty sequence"));
            }
            if let Some(k) = src.iter().position(|&t| t >= self.config.source_vocab) {
                return Err(CoreError::invalid(
                    format!("{what}[{i}][{k}]"),
                    format!("a source id below sourceVocab {}", self.config.source_vocab),
                    src[k],
                ));
            }
        }
        Ok(())
    }

    /// Runs the encoder over a batch of (checked) sources.
    pub(crate) fn encode(&self, v: &Views<'_, F>, sources: &[&[usize]]) -> Result<Encoded<F>> {
        self.encode_noisy(v, sources, None, false)
    }

    /// [`Seq2Seq::encode`], with dropout on every layer's input (the embedded sources, then each
    /// layer's outputs) when `noise` is given; the masks are kept in [`Encoded::masks`]. With
    /// `traced`, every pass is kept for the backward pass ([`Encoded::traces`]; the same
    /// outputs, bit for bit).
    pub(crate) fn encode_noisy(
        &self,
        v: &Views<'_, F>,
        sources: &[&[usize]],
        mut noise: Option<&mut Dropout>,
        traced: bool,
    ) -> Result<Encoded<F>> {
        let c = &self.config;
        let (b, h, d) = (sources.len(), c.hidden, c.decoder_hidden());
        let ts = sources.iter().map(|s| s.len()).max().unwrap_or(0);
        let lengths: Vec<usize> = sources.iter().map(|s| s.len()).collect();
        let mut inputs = vec![embed(v.src_embedding, sources, ts)];
        let mut masks = Vec::new();
        let mut h0 = Array2::zeros((b, d));
        let mut c0 = v.cell.has_cell_state().then(|| Array2::zeros((b, d)));
        let mut traces = Vec::new();
        for (k, layer) in v.encoder.iter().enumerate() {
            let mut kept = Vec::new();
            masks.push(noise.as_deref_mut().map(|n| n.apply(&mut inputs[k])));
            let mut out = Array3::zeros((b, ts, d));
            for (dir, w) in layer.iter().enumerate() {
                let opts = SequenceOptions { lengths: Some(&lengths), reverse: dir == 1 };
                let x = inputs[k].view();
                let o = if traced {
                    let (o, t) = forward_traced(v.cell, w, x, &InitialState::default(), &opts)?;
                    kept.push(t);
                    o
                } else {
                    forward_sequences(v.cell, w, x, &InitialState::default(), &opts)?
                };
                out.slice_mut(s![.., .., dir * h..(dir + 1) * h]).assign(&o.output);
                if k + 1 == c.layers {
                    h0.slice_mut(s![.., dir * h..(dir + 1) * h]).assign(&o.state.hidden);
                    if let (Some(c0), Some(cs)) = (c0.as_mut(), o.state.cell.as_ref()) {
                        c0.slice_mut(s![.., dir * h..(dir + 1) * h]).assign(cs);
                    }
                }
            }
            inputs.push(out);
            if traced {
                traces.push(kept);
            }
        }
        let memory = inputs.pop().unwrap_or_else(|| Array3::zeros((b, ts, d)));
        Ok(Encoded { inputs, masks, lengths, memory, h0, c0, traces })
    }

    /// A decoder stream over `sources`: the encoder runs once, the decoder waits for its first
    /// token (the start id, or any other prefix the caller feeds).
    ///
    /// # Errors
    /// An empty source or an id out of range (named `sources[i][k]`).
    pub fn stream(&self, sources: &[&[usize]]) -> Result<Seq2SeqStream<F>> {
        self.check_sources("sources", sources)?;
        let v = self.views()?;
        let enc = self.encode(&v, sources)?;
        let init = InitialState { hidden: Some(enc.h0.view()), cell: enc.c0.as_ref().map(|c| c.view()) };
        let state = crate::attention::DecoderState::start(&v.spec, sources.len(), self.config.decoder_hidden(), &init)?;
        let prep = self.stream_prep(&v, enc.memory.view(), &enc.lengths)?;
        Ok(Seq2SeqStream { memory: enc.memory, lengths: enc.lengths, state, prep, steps: 0 })
    }

    /// A stream's prepared decoder weights and memory keys, stamped with the model's generation.
    fn stream_prep(
        &self,
        v: &Views<'_, F>,
        memory: ndarray::ArrayView3<F>,
        lengths: &[usize],
    ) -> Result<(u64, crate::attention::DecoderPrep<F>, crate::attention::MemoryKeys<F>)> {
        let prep = crate::attention::DecoderPrep::new(&v.spec, &v.decoder, false)?;
        let keys = crate::attention::MemoryKeys::new(&v.spec, &prep, memory, lengths)?;
        Ok((self.generation.0, prep, keys))
    }

    /// One decoder step of a stream: `tokens[i]` (a target id) enters row `i`; returns each
    /// row's log-probabilities of the next token `[B, Vt]` and its attention over its source
    /// `[B, Ts]` (zeros past the source's length). Stepping the start id and then each chosen
    /// token gives [`Seq2Seq::transduce`]'s log-probabilities.
    ///
    /// # Errors
    /// Not one token per row, or a token id out of range (named `tokens[i]`); the stream is left
    /// as it was.
    pub fn stream_step(&self, stream: &mut Seq2SeqStream<F>, tokens: &[usize]) -> Result<(Array2<f64>, Array2<F>)> {
        let b = stream.batch();
        if tokens.len() != b {
            return Err(CoreError::shape("tokens", format!("{b} (one per row)"), tokens.len().to_string()));
        }
        if let Some(i) = tokens.iter().position(|&t| t >= self.config.target_vocab) {
            return Err(CoreError::invalid(
                format!("tokens[{i}]"),
                format!("a target id below targetVocab {}", self.config.target_vocab),
                tokens[i],
            ));
        }
        let v = self.views()?;
        let x = embed(v.head.embedding, &tokens.iter().map(std::slice::from_ref).collect::<Vec<_>>(), 1);
        let x = x.index_axis(ndarray::Axis(1), 0);
        if stream.prep.0 != self.generation.0 {
            stream.prep = self.stream_prep(&v, stream.memory.view(), &stream.lengths)?;
        }
        let (h_tilde, attention) = crate::attention::decoder_step(
            &v.spec,
            &v.decoder,
            Some(&stream.prep.1),
            Some(&stream.prep.2),
            x,
            stream.memory.view(),
            &stream.lengths,
            &mut stream.state,
        )?;
        let mut logits = Array2::<F>::zeros((b, self.config.target_vocab));
        for mut row in logits.rows_mut() {
            row.assign(&v.head.bias);
        }
        crate::kernels::linalg::gemm(F::one(), h_tilde.view(), v.head.weight.t(), F::one(), logits.view_mut());
        // Log-softmax in f64, as beam search scores tokens.
        let mut log_probs = logits.mapv(|x| x.to_f64().unwrap_or(f64::NAN));
        for mut row in log_probs.rows_mut() {
            let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = top + row.iter().map(|x| (x - top).exp()).sum::<f64>().ln();
            row.mapv_inplace(|x| x - lse);
        }
        stream.steps += 1;
        Ok((log_probs, attention))
    }

    /// Decodes each source by beam search (width 1: greedy), in chunks of 32 sources run side
    /// by side on the pool;
    /// `[source][n_best]` hypotheses, best first, each with its tokens (the end token last when
    /// it finished), log-probability, score and attention rows `[steps, Ts]`.
    ///
    /// # Errors
    /// An empty source or an id out of range (named `sources[i][k]`), or options out of
    /// range (named as [`crate::attention::beam_search`] names them).
    pub fn transduce(&self, sources: &[&[usize]], opts: &DecodeOptions) -> Result<Vec<Vec<Hypothesis<F>>>> {
        self.transduce_ensemble(&[], sources, opts)
    }

    /// [`Seq2Seq::transduce`] by an ensemble of this model and `others`
    /// ([`crate::attention::beam_search_ensemble`]): every model encodes the sources and steps
    /// its own decoder, and each token's log-probability is the mean of the models'. Without
    /// `others`, [`Seq2Seq::transduce`].
    ///
    /// # Errors
    /// As [`Seq2Seq::transduce`], and when a model of `others` (named `ensemble[i]`) differs from
    /// this one in its source or target vocabulary size, start id or end id.
    pub fn transduce_ensemble(
        &self,
        others: &[&Seq2Seq<F>],
        sources: &[&[usize]],
        opts: &DecodeOptions,
    ) -> Result<Vec<Vec<Hypothesis<F>>>> {
        self.check_sources("sources", sources)?;
        let ids = |c: &Seq2SeqConfig| (c.source_vocab, c.target_vocab, c.start, c.end);
        let describe = |c: &Seq2SeqConfig| {
            format!("sourceVocab {}, targetVocab {}, start {}, end {}", c.source_vocab, c.target_vocab, c.start, c.end)
        };
        if let Some(i) = others.iter().position(|o| ids(&o.config) != ids(&self.config)) {
            return Err(CoreError::invalid(
                format!("ensemble[{i}]"),
                format!("a model of this one's vocabularies and ids ({})", describe(&self.config)),
                describe(&others[i].config),
            ));
        }
        let models: Vec<&Seq2Seq<F>> = std::iter::once(self).chain(others.iter().copied()).collect();
        let views: Vec<Views<'_, F>> = models.iter().map(|m| m.views()).collect::<Result<_>>()?;
        let beam = BeamOptions {
            beam_width: opts.beam_width,
            max_length: opts.max_length,
            start: self.config.start,
            end: self.config.end,
            length_penalty: opts.length_penalty,
            n_best: opts.n_best,
        };
        // Chunks of sources decode side by side on the pool (each on its own: the same output on
        // any number of threads).
        let parts: Vec<Result<Vec<Vec<Hypothesis<F>>>>> = sources
            .par_chunks(32)
            .map(|chunk| {
                let encoded: Vec<Encoded<F>> =
                    models.iter().zip(&views).map(|(m, v)| m.encode(v, chunk)).collect::<Result<_>>()?;
                let members: Vec<Member<'_, F>> = views
                    .iter()
                    .zip(&encoded)
                    .map(|(v, enc)| Member {
                        spec: v.spec.reborrow(),
                        weights: v.decoder.reborrow(),
                        head: v.head.reborrow(),
                        memory: enc.memory.view(),
                        lengths: &enc.lengths,
                        init: InitialState { hidden: Some(enc.h0.view()), cell: enc.c0.as_ref().map(|c| c.view()) },
                    })
                    .collect();
                beam_search_ensemble(&members, &beam)
            })
            .collect();
        let mut out = Vec::with_capacity(sources.len());
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }
}
