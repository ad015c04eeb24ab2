//! A model graph beyond a stack ([`GraphSpec`]): layers applied to named inputs and to each
//! other's outputs, several inputs and outputs, recurrent layers that return their final states
//! and start from another layer's (an encoder–decoder, a forecaster reading known future
//! inputs, a classifier over two texts). A sequential model is the case of one chain.
//!
//! Values between nodes are sequences `[B, T, W]` (each carries the lengths of the input it
//! comes from: steps past a sequence's length are zeros and are never read), vectors `[B, W]`,
//! or token ids (an input of `vocabSize`, read by an embedding).
//!
//! **States.** A recurrent node with `returnState` gives, per stacked layer `l`, its final
//! hidden state `[B, H·dirs]` (and cell state for an LSTM), a bidirectional layer's two
//! directions **concatenated** (`[forward; backward]`). A recurrent node with
//! `initialState: "enc"` starts layer `l` from `enc`'s layer-`l` state, split into its own
//! directions in the same order; so both need the same number of layers, `H·dirs` equal
//! (a bidirectional encoder of `H` feeds a one-directional decoder of `2·H`, as in
//! [`crate::seq2seq`]), and both a cell state or neither (LSTM to LSTM; GRU and simple RNN
//! to either of them).
//!
//! Parameters are named by node, PyTorch-style where PyTorch has the module: `{node}.weight`
//! (embedding `[V, E]`; dense `[U, In]` with `{node}.bias` `[U]`; general attention
//! `[Hq, Hk]`), `{node}.weight_ih_l{k}[_reverse]` … (recurrent, `nn.LSTM`'s names), additive
//! attention `{node}.query_weight` `[A, Hq]`, `.key_weight` `[A, Hk]`, `.bias` `[A]`, `.v` `[A]`.
//!
//! - `spec`: the JSON form and its reader;
//! - `run`: data, the forward pass, the backward pass (through [`crate::backward_sequences`] and
//!   [`crate::attention_backward`]), losses, epochs and prediction;
//! - `file`: one safetensors file.

mod file;
mod run;
mod spec;
#[cfg(test)]
mod tests;

pub use file::{load, save, SavedGraph, FORMAT as GRAPH_FORMAT};
pub use run::{GraphData, GraphEpochOptions, GraphInput, GraphLoss, GraphPrediction, GraphTarget, GraphValues};
pub use spec::{GraphSpec, InputKind, InputSpec, Layer, NodeSpec, RecurrentNode};

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::random::Rng;
use crate::seq2seq::ScoreConfig;
use std::collections::HashMap;

/// What a value between nodes is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Token ids of input `source`, below `vocab`.
    Tokens { vocab: usize, source: usize },
    /// `[B, T, width]` with the steps and lengths of input `source`.
    Seq { width: usize, source: usize },
    /// `[B, width]`.
    Vector { width: usize },
}

/// A node with its inputs resolved.
#[derive(Clone, Debug)]
pub(crate) struct Wired {
    /// Value ids read (inputs `0..I`, then node `k` at `I + k`).
    pub(crate) inputs: Vec<usize>,
    /// The node whose states a recurrent node starts from.
    pub(crate) state_from: Option<usize>,
    /// Its parameters' first index.
    pub(crate) first_param: usize,
    /// What it outputs.
    pub(crate) shape: Shape,
}

/// A model graph and its parameters (flat, row-major, in [`Graph::param_shapes`]'s order).
#[derive(Clone, Debug)]
pub struct Graph<F> {
    spec: GraphSpec,
    wired: Vec<Wired>,
    /// Value ids of the outputs.
    outputs: Vec<usize>,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    values: Vec<Vec<F>>,
}

fn at(i: usize, what: &str) -> String {
    format!("nodes[{i}].{what}")
}

impl<F: Real> Graph<F> {
    /// Checks the wiring of `spec` (every name known and defined before use, each layer's inputs
    /// of the kinds and widths it takes) and initialises the parameters from `spec.seed`:
    /// PyTorch's rules (recurrent and dense weights and biases uniform in `±1/√fan_in`, where
    /// `fan_in` is `H` for a recurrent layer; embeddings standard normal).
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] naming the node and option at fault
    /// (`nodes[3].initialState`, `outputs[0]`).
    pub fn new(spec: GraphSpec) -> Result<Graph<F>> {
        let (wired, outputs, params) = wire(&spec)?;
        let mut rng = Rng::new(spec.seed);
        let mut names = Vec::new();
        let mut shapes = Vec::new();
        let mut values = Vec::new();
        for (name, shape, init) in params {
            let n: usize = shape.iter().product();
            let v: Vec<F> = (0..n)
                .map(|_| {
                    F::lit(match init {
                        Init::Uniform(b) => rng.range(-b, b),
                        Init::Normal => rng.normal(),
                        Init::Zero => 0.0,
                    })
                })
                .collect();
            names.push(name);
            shapes.push(shape);
            values.push(v);
        }
        Ok(Graph { spec, wired, outputs, names, shapes, values })
    }

    /// The specification.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }

    /// `(name, shape)` of every parameter, in order.
    pub fn param_shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.names.iter().map(String::as_str).zip(self.shapes.iter().map(Vec::as_slice))
    }

    /// `(name, shape, values)` of every parameter, in order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &[usize], &[F])> {
        self.param_shapes().zip(self.values.iter()).map(|((n, s), v)| (n, s, v.as_slice()))
    }

    /// Each parameter's number of values, in order (for an optimizer).
    pub fn sizes(&self) -> Vec<usize> {
        self.values.iter().map(Vec::len).collect()
    }

    /// Replaces the parameter `name` with `values` (its number of values).
    ///
    /// # Errors
    /// When there is no such parameter, the count differs, or a value is not finite.
    pub fn set_param(&mut self, name: &str, values: &[F]) -> Result<()> {
        let i = self.names.iter().position(|n| n == name).ok_or_else(|| {
            CoreError::invalid("name", format!("a parameter of this graph ({})", self.names.join(", ")), name)
        })?;
        if values.len() != self.values[i].len() {
            return Err(CoreError::shape(
                name,
                format!("{:?} ({} values)", self.shapes[i], self.values[i].len()),
                format!("{} values", values.len()),
            ));
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::invalid(
                format!("{name}[{k}]"),
                "a finite number",
                values[k].to_f64().unwrap_or(f64::NAN),
            ));
        }
        self.values[i].copy_from_slice(values);
        Ok(())
    }

    /// The names of the output nodes, in order.
    pub fn output_names(&self) -> &[String] {
        &self.spec.outputs
    }

    /// Whether output `k` is a sequence (`[N, T, W]`) rather than a vector (`[N, W]`), and `W`.
    pub fn output_shape(&self, k: usize) -> Option<(bool, usize)> {
        self.outputs.get(k).map(|&v| match self.value_shape(v) {
            Shape::Seq { width, .. } => (true, width),
            Shape::Vector { width } => (false, width),
            Shape::Tokens { .. } => (false, 0),
        })
    }

    pub(crate) fn value_shape(&self, v: usize) -> Shape {
        let n = self.spec.inputs.len();
        if v < n {
            return match self.spec.inputs[v].kind {
                InputKind::Floats(width) => Shape::Seq { width, source: v },
                InputKind::Tokens(vocab) => Shape::Tokens { vocab, source: v },
            };
        }
        self.wired[v - n].shape
    }
}

/// How a parameter starts.
#[derive(Clone, Copy)]
enum Init {
    Uniform(f64),
    Normal,
    Zero,
}

type Params = Vec<(String, Vec<usize>, Init)>;

fn wire(spec: &GraphSpec) -> Result<(Vec<Wired>, Vec<usize>, Params)> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut shapes: Vec<Shape> = Vec::new();
    for (i, input) in spec.inputs.iter().enumerate() {
        if input.name.is_empty() || ids.insert(input.name.as_str(), i).is_some() {
            return Err(CoreError::invalid(
                format!("inputs[{i}].name"),
                "a name no other input or node has",
                format!("{:?}", input.name),
            ));
        }
        shapes.push(match input.kind {
            InputKind::Floats(width) => Shape::Seq { width, source: i },
            InputKind::Tokens(vocab) => Shape::Tokens { vocab, source: i },
        });
    }
    if spec.inputs.is_empty() {
        return Err(CoreError::invalid("inputs", "at least one input", "none"));
    }
    let n_inputs = spec.inputs.len();
    let mut wired: Vec<Wired> = Vec::new();
    let mut params: Params = Vec::new();
    for (i, node) in spec.nodes.iter().enumerate() {
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for (j, name) in node.inputs.iter().enumerate() {
            let v = *ids.get(name.as_str()).ok_or_else(|| {
                CoreError::invalid(
                    at(i, &format!("inputs[{j}]")),
                    "the name of an input or of a node before this one",
                    format!("{name:?}"),
                )
            })?;
            inputs.push(v);
        }
        let input_shapes: Vec<Shape> = inputs.iter().map(|&v| shapes[v]).collect();
        let count = |want: usize| -> Result<()> {
            if inputs.len() != want {
                return Err(CoreError::invalid(
                    at(i, "inputs"),
                    format!("{want} input(s) for a {} layer", layer_name(&node.layer)),
                    inputs.len(),
                ));
            }
            Ok(())
        };
        let seq = |j: usize| -> Result<(usize, usize)> {
            match input_shapes[j] {
                Shape::Seq { width, source } => Ok((width, source)),
                Shape::Tokens { .. } => Err(CoreError::invalid(
                    at(i, &format!("inputs[{j}]")),
                    "a sequence of floats (token ids go through an embedding first)",
                    format!("{:?}", node.inputs[j]),
                )),
                Shape::Vector { .. } => Err(CoreError::invalid(
                    at(i, &format!("inputs[{j}]")),
                    "a sequence (this is one vector per sample)",
                    format!("{:?}", node.inputs[j]),
                )),
            }
        };
        if node.initial_state.is_some() && !matches!(node.layer, Layer::Recurrent(_)) {
            return Err(CoreError::invalid(
                at(i, "initialState"),
                "absent (only recurrent layers start from states)",
                "a value",
            ));
        }
        let p = &node.name;
        let first_param = params.len();
        let mut state_from = None;
        let shape = match node.layer {
            Layer::Embedding { dim } => {
                count(1)?;
                let Shape::Tokens { vocab, source } = input_shapes[0] else {
                    return Err(CoreError::invalid(
                        at(i, "inputs[0]"),
                        "an input of token ids (vocabSize)",
                        format!("{:?}", node.inputs[0]),
                    ));
                };
                params.push((format!("{p}.weight"), vec![vocab, dim], Init::Normal));
                Shape::Seq { width: dim, source }
            }
            Layer::Recurrent(r) => {
                count(1)?;
                let (width, source) = seq(0)?;
                if let Some(from) = &node.initial_state {
                    let k = ids.get(from.as_str()).copied().filter(|&v| v >= n_inputs).map(|v| v - n_inputs);
                    let src = k.and_then(|k| match spec.nodes[k].layer {
                        Layer::Recurrent(s) if s.return_state => Some((k, s)),
                        _ => None,
                    });
                    let Some((k, s)) = src else {
                        return Err(CoreError::invalid(
                            at(i, "initialState"),
                            "the name of a recurrent node before this one with returnState: true",
                            format!("{from:?}"),
                        ));
                    };
                    if s.layers != r.layers
                        || s.width() != r.width()
                        || s.kind.has_cell_state() != r.kind.has_cell_state()
                    {
                        return Err(CoreError::invalid(
                            at(i, "initialState"),
                            format!(
                                "the states of a recurrent layer with this one's stacked layers ({}), width hiddenSize × directions ({}) and {} (a bidirectional layer's two directions are concatenated)",
                                r.layers,
                                r.width(),
                                if r.kind.has_cell_state() { "a cell state (an LSTM)" } else { "no cell state (a GRU or simple RNN)" }
                            ),
                            format!("{from:?}: {} layer(s), width {}, {}", s.layers, s.width(), if s.kind.has_cell_state() { "an LSTM" } else { "no cell state" }),
                        ));
                    }
                    state_from = Some(k);
                }
                let (g, h) = (r.kind.gates(), r.hidden);
                let bound = 1.0 / (h as f64).sqrt();
                for l in 0..r.layers {
                    let input = if l == 0 { width } else { r.width() };
                    for d in 0..r.directions() {
                        let sfx = if d == 1 { "_reverse" } else { "" };
                        params.push((format!("{p}.weight_ih_l{l}{sfx}"), vec![g * h, input], Init::Uniform(bound)));
                        params.push((format!("{p}.weight_hh_l{l}{sfx}"), vec![g * h, h], Init::Uniform(bound)));
                        params.push((format!("{p}.bias_ih_l{l}{sfx}"), vec![g * h], Init::Uniform(bound)));
                        params.push((format!("{p}.bias_hh_l{l}{sfx}"), vec![g * h], Init::Uniform(bound)));
                    }
                }
                if r.return_sequences {
                    Shape::Seq { width: r.width(), source }
                } else {
                    Shape::Vector { width: r.width() }
                }
            }
            Layer::Dense { units, .. } => {
                count(1)?;
                let (width, out) = match input_shapes[0] {
                    Shape::Seq { width, source } => (width, Shape::Seq { width: units, source }),
                    Shape::Vector { width } => (width, Shape::Vector { width: units }),
                    Shape::Tokens { .. } => {
                        return Err(CoreError::invalid(
                            at(i, "inputs[0]"),
                            "a sequence or a vector (token ids go through an embedding first)",
                            format!("{:?}", node.inputs[0]),
                        ))
                    }
                };
                let bound = 1.0 / (width as f64).sqrt();
                params.push((format!("{p}.weight"), vec![units, width], Init::Uniform(bound)));
                params.push((format!("{p}.bias"), vec![units], Init::Uniform(bound)));
                out
            }
            Layer::Dropout { .. } => {
                count(1)?;
                match input_shapes[0] {
                    Shape::Tokens { .. } => {
                        return Err(CoreError::invalid(
                            at(i, "inputs[0]"),
                            "a sequence or a vector (token ids go through an embedding first)",
                            format!("{:?}", node.inputs[0]),
                        ))
                    }
                    other => other,
                }
            }
            Layer::Concatenate => {
                if inputs.len() < 2 {
                    return Err(CoreError::invalid(
                        at(i, "inputs"),
                        "2 or more inputs for a concatenate layer",
                        inputs.len(),
                    ));
                }
                match input_shapes[0] {
                    Shape::Seq { source, .. } => {
                        let mut total = 0;
                        for j in 0..inputs.len() {
                            let (w, s) = seq(j)?;
                            if s != source {
                                return Err(CoreError::invalid(
                                    at(i, &format!("inputs[{j}]")),
                                    format!(
                                        "a sequence over the steps of input {:?} as inputs[0] is",
                                        spec.inputs[source].name
                                    ),
                                    format!("{:?}, over input {:?}", node.inputs[j], spec.inputs[s].name),
                                ));
                            }
                            total += w;
                        }
                        Shape::Seq { width: total, source }
                    }
                    _ => {
                        let mut total = 0;
                        for (j, s) in input_shapes.iter().enumerate() {
                            let Shape::Vector { width } = *s else {
                                return Err(CoreError::invalid(
                                    at(i, &format!("inputs[{j}]")),
                                    "a vector, as inputs[0] is",
                                    format!("{:?}", node.inputs[j]),
                                ));
                            };
                            total += width;
                        }
                        Shape::Vector { width: total }
                    }
                }
            }
            Layer::Attention(score) => {
                count(2)?;
                let (hq, source) = seq(0)?;
                let (hk, _) = seq(1)?;
                match score {
                    ScoreConfig::Dot if hq != hk => {
                        return Err(CoreError::invalid(
                            at(i, "inputs[1]"),
                            format!("memory of the queries' width {hq} (a dot score multiplies them element by element; use 'general' or additive)"),
                            format!("width {hk}"),
                        ))
                    }
                    ScoreConfig::Dot => {}
                    ScoreConfig::General => {
                        params.push((format!("{p}.weight"), vec![hq, hk], Init::Uniform(1.0 / (hk as f64).sqrt())))
                    }
                    ScoreConfig::Additive { units } => {
                        params.push((format!("{p}.query_weight"), vec![units, hq], Init::Uniform(1.0 / (hq as f64).sqrt())));
                        params.push((format!("{p}.key_weight"), vec![units, hk], Init::Uniform(1.0 / (hk as f64).sqrt())));
                        params.push((format!("{p}.bias"), vec![units], Init::Zero));
                        params.push((format!("{p}.v"), vec![units], Init::Uniform(1.0 / (units as f64).sqrt())));
                    }
                }
                Shape::Seq { width: hk, source }
            }
        };
        if node.name.is_empty() || ids.insert(node.name.as_str(), n_inputs + i).is_some() {
            return Err(CoreError::invalid(
                at(i, "name"),
                "a name no other input or node has",
                format!("{:?}", node.name),
            ));
        }
        shapes.push(shape);
        wired.push(Wired { inputs, state_from, first_param, shape });
    }
    if spec.outputs.is_empty() {
        return Err(CoreError::invalid("outputs", "at least one node", "none"));
    }
    let mut outputs = Vec::with_capacity(spec.outputs.len());
    for (k, name) in spec.outputs.iter().enumerate() {
        let v =
            ids.get(name.as_str()).copied().filter(|&v| v >= n_inputs).ok_or_else(|| {
                CoreError::invalid(format!("outputs[{k}]"), "the name of a node", format!("{name:?}"))
            })?;
        if outputs.contains(&v) {
            return Err(CoreError::invalid(
                format!("outputs[{k}]"),
                "a node not already an output",
                format!("{name:?}"),
            ));
        }
        outputs.push(v);
    }
    Ok((wired, outputs, params))
}

fn layer_name(l: &Layer) -> &'static str {
    match l {
        Layer::Embedding { .. } => "embedding",
        Layer::Recurrent(_) => "recurrent",
        Layer::Dense { .. } => "dense",
        Layer::Concatenate => "concatenate",
        Layer::Attention(_) => "attention",
        Layer::Dropout { .. } => "dropout",
    }
}
