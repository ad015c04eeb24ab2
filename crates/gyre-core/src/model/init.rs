//! A model's parameters: how a [`ModelSpec`] becomes named tensors initialised as PyTorch
//! does, the resolved sizes of each layer, and access to the parameters.

use super::config::{InputKind, LayerSpec, ModelSpec};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::kernels::tensor::{matrix, vector};
use crate::random::Rng;
use crate::rnn::weights::LayerWeights;

/// One named parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<F> {
    /// PyTorch-style name: `{layer}.weight_ih_l0`, `{layer}.weight`, ...
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<F>,
    /// Whether weight decay applies (weights yes, biases no).
    pub decay: bool,
    /// Whether training updates it (its layer is not frozen).
    pub trainable: bool,
}

/// Resolved sizes of one layer.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LayerInfo {
    pub(super) config: LayerSpec,
    /// Features per row going in.
    pub(super) input_width: usize,
    /// Features per row coming out.
    pub(super) output_width: usize,
    /// First tensor of the layer in [`Model::tensors`].
    pub(super) first_tensor: usize,
}

/// A sequential model with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Model<F> {
    pub(super) config: ModelSpec,
    pub(super) layers: Vec<LayerInfo>,
    /// The parameters, in layer order, under PyTorch-style names.
    pub tensors: Vec<Tensor<F>>,
    /// Epochs of training completed so far (across `fit` calls and save/load): numbers the
    /// next epoch, seeds its shuffle and dropout, and ticks the learning-rate schedule, so
    /// that training resumed later matches uninterrupted training.
    pub trained_epochs: usize,
    /// The state of a `reduceOnPlateau` learning-rate schedule, once one has run (kept across
    /// `fit` calls and saves, so that training resumed later matches uninterrupted training).
    pub plateau: Option<crate::optim::Plateau>,
}

/// The most parameter values a model may have (1 GiB of f32): larger requests are errors, not
/// allocations that could exhaust memory.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// The number of parameter values `config` needs, checked against [`MAX_PARAMETERS`] with
/// overflow-checked arithmetic, before anything is allocated.
fn parameter_budget(config: &ModelSpec) -> Result<usize> {
    let too_big =
        |n: String| invalid("model size", format!("at most {MAX_PARAMETERS} parameters (1 GiB); reduce the sizes"), n);
    let mul = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| too_big(format!("{a} × {b} parameters")));
    let mut width = match config.input {
        InputKind::Features { size } => size,
        InputKind::Tokens { vocab_size } => vocab_size,
    };
    let mut total = 0usize;
    for layer in &config.layers {
        let (n, out) = match *layer {
            LayerSpec::Embedding { dim } => (mul(width, dim)?, dim),
            LayerSpec::Dense { units, .. } => (mul(units, width)?.saturating_add(units), units),
            LayerSpec::Recurrent(r) => {
                let dirs = r.directions();
                let gh = mul(r.cell.gates(), r.hidden_size)?;
                let first = mul(gh, width)?.saturating_add(mul(gh, r.hidden_size)?).saturating_add(2 * gh);
                let later =
                    mul(gh, dirs * r.hidden_size)?.saturating_add(mul(gh, r.hidden_size)?).saturating_add(2 * gh);
                let per_dir = first.saturating_add(mul(later, r.num_layers.saturating_sub(1))?);
                let out = r.output_width();
                (mul(per_dir, dirs)?, out)
            }
        };
        total = total.saturating_add(n);
        width = out;
    }
    if total > MAX_PARAMETERS {
        return Err(too_big(format!("{total} parameters")));
    }
    Ok(total)
}

pub(super) fn invalid(what: impl Into<String>, expected: impl Into<String>, got: impl ToString) -> CoreError {
    CoreError::InvalidArgument { what: what.into(), expected: expected.into(), got: got.to_string() }
}

fn suffix(d: usize) -> &'static str {
    if d == 0 {
        ""
    } else {
        "_reverse"
    }
}

impl<F: Real> Model<F> {
    /// Builds a model and initialises its parameters as PyTorch does, from `seed`: recurrent
    /// tensors and dense layers `U(-1/√fan, 1/√fan)` (fan = `H`, resp. the dense input width),
    /// embeddings `N(0, 1)`.
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] naming the layer and field for a size of zero, a dropout
    /// outside `[0, 1)`, an embedding that is not first or is missing for token input, a
    /// recurrent layer after a layer that does not output a sequence, or `go_backwards` on a
    /// bidirectional or stacked layer.
    pub fn new(config: ModelSpec, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let (mut width, mut sequence) = match config.input {
            InputKind::Features { size } => (crate::kernels::tensor::positive("input size", size)?, true),
            InputKind::Tokens { vocab_size } => (crate::kernels::tensor::positive("vocabSize", vocab_size)?, true),
        };
        if config.layers.is_empty() {
            return Err(invalid("layers", "at least one layer", "none"));
        }
        parameter_budget(&config)?;
        let mut layers = Vec::new();
        let mut tensors: Vec<Tensor<F>> = Vec::new();
        for (i, layer) in config.layers.iter().enumerate() {
            let what = |field: &str| format!("layers[{i}].{field}");
            let first_tensor = tensors.len();
            let mut uniform = |name: String, shape: Vec<usize>, bound: f64, decay: bool, rng: &mut Rng| {
                let n = shape.iter().product();
                let data = (0..n).map(|_| F::lit(rng.range(-bound, bound))).collect();
                tensors.push(Tensor { name, shape, data, decay, trainable: true });
            };
            let (out_width, out_seq) = match *layer {
                LayerSpec::Embedding { dim } => {
                    crate::kernels::tensor::positive(&what("dim"), dim)?;
                    if i != 0 || !matches!(config.input, InputKind::Tokens { .. }) {
                        return Err(invalid(
                            what("type"),
                            "an embedding only as the first layer of a token model",
                            "embedding",
                        ));
                    }
                    let data = (0..width * dim).map(|_| F::lit(rng.normal())).collect();
                    let name = format!("{i}.weight");
                    tensors.push(Tensor { name, shape: vec![width, dim], data, decay: true, trainable: true });
                    (dim, true)
                }
                LayerSpec::Recurrent(r) => {
                    crate::kernels::tensor::positive(&what("hiddenSize"), r.hidden_size)?;
                    crate::kernels::tensor::positive(&what("numLayers"), r.num_layers)?;
                    for (name, p) in [
                        ("inputDropout", r.input_dropout),
                        ("recurrentDropout", r.recurrent_dropout),
                        ("zoneout", r.zoneout),
                    ] {
                        if !(0.0..1.0).contains(&p) {
                            return Err(invalid(what(name), "a number in [0, 1)", p));
                        }
                    }
                    if !(0.0..1.0).contains(&r.dropout) {
                        return Err(invalid(what("dropout"), "a number in [0, 1)", r.dropout));
                    }
                    if r.go_backwards && (r.bidirectional || r.num_layers > 1) {
                        return Err(invalid(
                            what("goBackwards"),
                            "false for a bidirectional or stacked layer (go backwards with one direction and one \
                             stacked layer; stack such layers as separate layers)",
                            true,
                        ));
                    }
                    if !sequence {
                        return Err(invalid(what("type"), "a layer after one that outputs a sequence", "recurrent"));
                    }
                    let h = r.hidden_size;
                    let dirs = r.directions();
                    let gh = r.cell.gates() * h;
                    let bound = 1.0 / (h as f64).sqrt();
                    for l in 0..r.num_layers {
                        let input = if l == 0 { width } else { dirs * h };
                        for d in 0..dirs {
                            let s = suffix(d);
                            uniform(format!("{i}.weight_ih_l{l}{s}"), vec![gh, input], bound, true, &mut rng);
                            uniform(format!("{i}.weight_hh_l{l}{s}"), vec![gh, h], bound, true, &mut rng);
                            uniform(format!("{i}.bias_ih_l{l}{s}"), vec![gh], bound, false, &mut rng);
                            uniform(format!("{i}.bias_hh_l{l}{s}"), vec![gh], bound, false, &mut rng);
                        }
                    }
                    let out = r.output_width();
                    (out, r.return_sequences)
                }
                LayerSpec::Dense { units, .. } => {
                    crate::kernels::tensor::positive(&what("units"), units)?;
                    if i == 0 && matches!(config.input, InputKind::Tokens { .. }) {
                        return Err(invalid(what("type"), "an embedding first in a token model", "dense"));
                    }
                    let bound = 1.0 / (width as f64).sqrt();
                    uniform(format!("{i}.weight"), vec![units, width], bound, true, &mut rng);
                    uniform(format!("{i}.bias"), vec![units], bound, false, &mut rng);
                    (units, sequence)
                }
            };
            if matches!(config.input, InputKind::Tokens { .. })
                && i == 0
                && !matches!(layer, LayerSpec::Embedding { .. })
            {
                return Err(invalid(what("type"), "an embedding first in a token model", "another layer"));
            }
            if !config.trainable(i) {
                tensors[first_tensor..].iter_mut().for_each(|t| t.trainable = false);
            }
            layers.push(LayerInfo { config: *layer, input_width: width, output_width: out_width, first_tensor });
            width = out_width;
            sequence = out_seq;
        }
        Ok(Model { config, layers, tensors, trained_epochs: 0, plateau: None })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelSpec {
        &self.config
    }

    /// Features per row of the model's output (its spec's [`ModelSpec::output_width`]).
    pub fn output_width(&self) -> usize {
        self.config.output_width()
    }

    /// Whether the model outputs a sequence `[B, T, ·]` (else `[B, ·]`); its spec's
    /// [`ModelSpec::outputs_sequence`].
    pub fn outputs_sequence(&self) -> bool {
        self.config.outputs_sequence()
    }

    /// Total number of parameter values.
    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    pub(super) fn weights(&self, first: usize) -> Result<LayerWeights<'_, F>> {
        let t = |k: usize| &self.tensors[first + k];
        let (wi, wh) = (t(0), t(1));
        Ok(LayerWeights {
            weight_ih: matrix(&wi.name, &wi.data, wi.shape[0], wi.shape[1])?,
            weight_hh: matrix(&wh.name, &wh.data, wh.shape[0], wh.shape[1])?,
            bias_ih: vector(&t(2).name, &t(2).data, t(2).shape[0])?,
            bias_hh: vector(&t(3).name, &t(3).data, t(3).shape[0])?,
        })
    }

    /// Replaces every parameter's values (same order and sizes as [`Model::tensors`]).
    pub fn set_parameters(&mut self, values: Vec<Vec<F>>) -> Result<()> {
        if values.len() != self.tensors.len() {
            return Err(CoreError::shape(
                "parameters",
                format!("{} tensors", self.tensors.len()),
                values.len().to_string(),
            ));
        }
        for (t, v) in self.tensors.iter().zip(&values) {
            if t.data.len() != v.len() {
                return Err(CoreError::shape(
                    &t.name,
                    format!("{} values", t.data.len()),
                    format!("{} values", v.len()),
                ));
            }
        }
        for (t, v) in self.tensors.iter_mut().zip(values) {
            t.data = v;
        }
        Ok(())
    }
}
