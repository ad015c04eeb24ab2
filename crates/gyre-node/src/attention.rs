//! The functional attention API: `attentionForward` / `attentionBackward` over flat typed arrays
//! (f32 or f64), converted to views of `gyre_core::attention` and back.

use crate::error::{contain, Result};
use gyre_core::tensor::{matrix, tensor3, vector};
use gyre_core::{attention_backward, attention_forward, AttentionScore, CoreError, Real};
use napi::bindgen_prelude::{Float32Array, Float64Array, Uint32Array};
use napi_derive::napi;
use ndarray::Array2;

/// Sizes and score of one call of the functional attention API.
#[napi(object)]
pub struct AttentionSpec {
    /// `"dot" | "general" | "additive"`.
    pub score: String,
    /// Sequences `B`.
    pub batch: u32,
    /// Query (decoder) steps `Tq`.
    pub query_steps: u32,
    /// Query width `Hq`.
    pub query_size: u32,
    /// Memory (encoder) steps `Tk`.
    pub memory_steps: u32,
    /// Memory width `Hk`.
    pub memory_size: u32,
    /// Attention units `A` (additive only).
    pub units: Option<u32>,
}

/// Borrowed flat tensors of one call.
#[derive(Clone, Copy)]
struct Tensors<'a, F> {
    query: &'a [F],
    memory: &'a [F],
    lengths: Option<&'a [u32]>,
    weight: Option<&'a [F]>,
    query_weight: Option<&'a [F]>,
    key_weight: Option<&'a [F]>,
    bias: Option<&'a [F]>,
    v: Option<&'a [F]>,
    grad_context: Option<&'a [F]>,
    grad_weights: Option<&'a [F]>,
}

fn required<'a, F>(what: &str, v: Option<&'a [F]>, score: &str) -> gyre_core::Result<&'a [F]> {
    v.ok_or_else(|| CoreError::Missing { what: what.into(), context: format!("for the {score} score") })
}

/// Runs `f` with the call's score, queries, memory and lengths as views.
fn with_call<F: Real, R>(
    spec: &AttentionSpec,
    t: &Tensors<'_, F>,
    f: impl FnOnce(&AttentionScore<'_, F>, ndarray::ArrayView3<F>, ndarray::ArrayView3<F>, &[usize]) -> gyre_core::Result<R>,
) -> gyre_core::Result<R> {
    let positive = gyre_core::tensor::positive;
    let b = positive("batch", spec.batch as usize)?;
    let tq = positive("querySteps", spec.query_steps as usize)?;
    let hq = positive("querySize", spec.query_size as usize)?;
    let tk = positive("memorySteps", spec.memory_steps as usize)?;
    let hk = positive("memorySize", spec.memory_size as usize)?;
    let query = tensor3("query", t.query, b, tq, hq)?;
    let memory = tensor3("memory", t.memory, b, tk, hk)?;
    let lengths: Vec<usize> = match t.lengths {
        Some(l) => l.iter().map(|&v| v as usize).collect(),
        None => vec![tk; b],
    };
    let name = spec.score.as_str();
    let unused = |what: &str, v: Option<&[F]>| match v {
        Some(_) => Err(CoreError::InvalidArgument {
            what: what.into(),
            expected: format!("absent: the {name} score has no such parameter"),
            got: "a tensor".into(),
        }),
        None => Ok(()),
    };
    match name {
        "dot" => {
            for (what, v) in [
                ("weight", t.weight),
                ("query_weight", t.query_weight),
                ("key_weight", t.key_weight),
                ("bias", t.bias),
                ("v", t.v),
            ] {
                unused(what, v)?;
            }
            f(&AttentionScore::Dot, query, memory, &lengths)
        }
        "general" => {
            for (what, v) in
                [("query_weight", t.query_weight), ("key_weight", t.key_weight), ("bias", t.bias), ("v", t.v)]
            {
                unused(what, v)?;
            }
            let weight = matrix("weight", required("weight", t.weight, name)?, hq, hk)?;
            f(&AttentionScore::General { weight }, query, memory, &lengths)
        }
        "additive" => {
            unused("weight", t.weight)?;
            let a = positive("units", spec.units.unwrap_or(0) as usize)?;
            let score = AttentionScore::Additive {
                query_weight: matrix("query_weight", required("query_weight", t.query_weight, name)?, a, hq)?,
                key_weight: matrix("key_weight", required("key_weight", t.key_weight, name)?, a, hk)?,
                bias: vector("bias", required("bias", t.bias, name)?, a)?,
                v: vector("v", required("v", t.v, name)?, a)?,
            };
            f(&score, query, memory, &lengths)
        }
        other => Err(CoreError::InvalidArgument {
            what: "score".into(),
            expected: "one of dot, general, additive".into(),
            got: format!("{other:?}"),
        }),
    }
}

struct Forward<F> {
    context: Vec<F>,
    weights: Vec<F>,
}

struct Backward<F> {
    query: Vec<F>,
    memory: Vec<F>,
    params: Vec<(&'static str, Vec<F>)>,
}

fn forward_impl<F: Real>(spec: &AttentionSpec, t: &Tensors<'_, F>) -> gyre_core::Result<Forward<F>> {
    with_call(spec, t, |score, q, m, lengths| {
        let out = gyre_core::threads::install(|| attention_forward(score, q, m, lengths))??;
        Ok(Forward { context: out.context.into_iter().collect(), weights: out.weights.into_iter().collect() })
    })
}

fn backward_impl<F: Real>(spec: &AttentionSpec, t: &Tensors<'_, F>) -> gyre_core::Result<Backward<F>> {
    let (b, tq, tk, hk) =
        (spec.batch as usize, spec.query_steps as usize, spec.memory_steps as usize, spec.memory_size as usize);
    let gc = t.grad_context.map(|g| tensor3("grad_context", g, b, tq, hk)).transpose()?;
    let gw = t.grad_weights.map(|g| tensor3("grad_weights", g, b, tq, tk)).transpose()?;
    with_call(spec, t, |score, q, m, lengths| {
        let g = gyre_core::threads::install(|| attention_backward(score, q, m, lengths, gc, gw))??;
        Ok(Backward { query: g.query.into_iter().collect(), memory: g.memory.into_iter().collect(), params: g.params })
    })
}

/// The score parameters' gradients in the result objects' order (`weight`, `query_weight`,
/// `key_weight`, `bias`, `v`), each converted by `wrap`; absent for the score's others.
fn score_grads<F, T>(params: Vec<(&'static str, Vec<F>)>, wrap: impl Fn(Vec<F>) -> T) -> [Option<T>; 5] {
    let mut out = [None, None, None, None, None];
    for (name, values) in params {
        let k = ["weight", "query_weight", "key_weight", "bias", "v"].iter().position(|&n| n == name).unwrap_or(4);
        out[k] = Some(wrap(values));
    }
    out
}

/// Declares, for one element type, the tensor argument object, the two result objects and the
/// forward and backward exports.
macro_rules! dtype_api {
    ($Array:ident, $F:ty, $Args:ident, $Fwd:ident, $Bwd:ident, $forward:ident, $backward:ident) => {
        /// Flat row-major tensors of one attention call; shapes are given by the `AttentionSpec`.
        #[napi(object)]
        pub struct $Args {
            /// `[B, Tq, Hq]` the queries (decoder states).
            pub query: $Array,
            /// `[B, Tk, Hk]` the memory (encoder outputs).
            pub memory: $Array,
            /// `[B]` each sequence's valid memory steps (all `Tk` when absent).
            pub lengths: Option<Uint32Array>,
            /// `[Hq, Hk]` (general).
            pub weight: Option<$Array>,
            /// `[A, Hq]` (additive).
            pub query_weight: Option<$Array>,
            /// `[A, Hk]` (additive).
            pub key_weight: Option<$Array>,
            /// `[A]` (additive).
            pub bias: Option<$Array>,
            /// `[A]` (additive).
            pub v: Option<$Array>,
            /// `[B, Tq, Hk]` gradient of the context (backward only; zeros when absent).
            pub grad_context: Option<$Array>,
            /// `[B, Tq, Tk]` gradient of the attention weights (backward only; zeros when absent).
            pub grad_weights: Option<$Array>,
        }

        impl $Args {
            fn tensors(&self) -> Tensors<'_, $F> {
                Tensors {
                    query: &self.query,
                    memory: &self.memory,
                    lengths: self.lengths.as_deref(),
                    weight: self.weight.as_deref(),
                    query_weight: self.query_weight.as_deref(),
                    key_weight: self.key_weight.as_deref(),
                    bias: self.bias.as_deref(),
                    v: self.v.as_deref(),
                    grad_context: self.grad_context.as_deref(),
                    grad_weights: self.grad_weights.as_deref(),
                }
            }
        }

        /// Outputs of an attention forward call.
        #[napi(object)]
        pub struct $Fwd {
            /// `[B, Tq, Hk]`
            pub context: $Array,
            /// `[B, Tq, Tk]` (0 at padded memory steps)
            pub weights: $Array,
        }

        /// Gradients returned by an attention backward call.
        #[napi(object)]
        pub struct $Bwd {
            /// `[B, Tq, Hq]`
            pub grad_query: $Array,
            /// `[B, Tk, Hk]`
            pub grad_memory: $Array,
            /// `[Hq, Hk]` (general)
            pub grad_weight: Option<$Array>,
            /// `[A, Hq]` (additive)
            pub grad_query_weight: Option<$Array>,
            /// `[A, Hk]` (additive)
            pub grad_key_weight: Option<$Array>,
            /// `[A]` (additive)
            pub grad_bias: Option<$Array>,
            /// `[A]` (additive)
            pub grad_v: Option<$Array>,
        }

        /// Attention of a batch of queries over a memory; see `AttentionSpec` for shapes.
        #[napi(catch_unwind)]
        pub fn $forward(spec: AttentionSpec, args: $Args) -> Result<$Fwd> {
            contain(|| {
                let r = forward_impl(&spec, &args.tensors())?;
                Ok($Fwd { context: $Array::new(r.context), weights: $Array::new(r.weights) })
            })
        }

        /// Gradients of `Σ context·gradContext + Σ weights·gradWeights`; recomputes the forward pass.
        #[napi(catch_unwind)]
        pub fn $backward(spec: AttentionSpec, args: $Args) -> Result<$Bwd> {
            contain(|| {
                let r = backward_impl(&spec, &args.tensors())?;
                let [grad_weight, grad_query_weight, grad_key_weight, grad_bias, grad_v] =
                    score_grads(r.params, $Array::new);
                Ok($Bwd {
                    grad_query: $Array::new(r.query),
                    grad_memory: $Array::new(r.memory),
                    grad_weight,
                    grad_query_weight,
                    grad_key_weight,
                    grad_bias,
                    grad_v,
                })
            })
        }
    };
}

dtype_api!(
    Float32Array,
    f32,
    AttentionTensorsF32,
    AttentionResultF32,
    AttentionGradsF32,
    attention_forward_f32,
    attention_backward_f32
);
dtype_api!(
    Float64Array,
    f64,
    AttentionTensorsF64,
    AttentionResultF64,
    AttentionGradsF64,
    attention_forward_f64,
    attention_backward_f64
);

/// Sizes, cell and score of one call of the attention decoder API.
#[napi(object)]
pub struct DecoderCallSpec {
    /// `"rnn_tanh" | "rnn_relu" | "lstm" | "gru" | "gru_reset_before"`.
    pub cell: String,
    /// LSTM and GRU: `"sigmoid"` (default), `"hardSigmoidTfjs"` or `"hardSigmoidKeras3"`.
    pub recurrent_activation: Option<String>,
    /// `"dot" | "general" | "additive"`.
    pub score: String,
    /// Feed `h̃_{t−1}` to the cell beside `x_t`.
    pub input_feeding: bool,
    /// Sequences `B`.
    pub batch: u32,
    /// Decoder steps `Tq` (teacher forcing; 0 for beam search).
    pub steps: u32,
    /// Input width `I` (the embedding's, for beam search).
    pub input_size: u32,
    /// Hidden size `H`.
    pub hidden_size: u32,
    /// Memory steps `Tk`.
    pub memory_steps: u32,
    /// Memory width `Hk`.
    pub memory_size: u32,
    /// Attention units `A` (additive only).
    pub units: Option<u32>,
}

/// Beam search options (see `gyre_core::attention::BeamOptions`).
#[napi(object)]
pub struct BeamCallOptions {
    /// Vocabulary size `V` of the embedding and the output layer.
    pub vocab_size: u32,
    /// Hypotheses kept per sequence (1: greedy).
    pub beam_width: u32,
    /// Tokens generated at most (the end token counts).
    pub max_length: u32,
    /// The first input token.
    pub start: u32,
    /// The token that ends a hypothesis.
    pub end: u32,
    /// Wu et al.'s `α` (0: rank by log-probability).
    pub length_penalty: f64,
    /// Hypotheses returned per sequence.
    pub n_best: u32,
}

/// Borrowed flat tensors of one decoder call.
struct DecoderTensors<'a, F> {
    input: Option<&'a [F]>,
    memory: &'a [F],
    lengths: Option<&'a [u32]>,
    h0: Option<&'a [F]>,
    c0: Option<&'a [F]>,
    weight_ih: &'a [F],
    weight_hh: &'a [F],
    bias_ih: &'a [F],
    bias_hh: &'a [F],
    combine_weight: &'a [F],
    combine_bias: &'a [F],
    score: Tensors<'a, F>,
    grad_output: Option<&'a [F]>,
    grad_attention: Option<&'a [F]>,
    grad_h_n: Option<&'a [F]>,
    grad_c_n: Option<&'a [F]>,
    embedding: Option<&'a [F]>,
    output_weight: Option<&'a [F]>,
    output_bias: Option<&'a [F]>,
    h_tilde: Option<&'a [F]>,
}

/// Runs `f` with the decoder's spec, weights, memory, lengths and initial state as views.
fn with_decoder<F: Real, R>(
    spec: &DecoderCallSpec,
    t: &DecoderTensors<'_, F>,
    f: impl FnOnce(
        &gyre_core::attention::DecoderSpec<'_, F>,
        &gyre_core::attention::DecoderWeights<'_, F>,
        ndarray::ArrayView3<F>,
        &[usize],
        &gyre_core::InitialState<'_, F>,
    ) -> gyre_core::Result<R>,
) -> gyre_core::Result<R> {
    let positive = gyre_core::tensor::positive;
    let kind = crate::cell_kind(&spec.cell, spec.recurrent_activation.as_deref())?;
    let b = positive("batch", spec.batch as usize)?;
    let h = positive("hiddenSize", spec.hidden_size as usize)?;
    let i = positive("inputSize", spec.input_size as usize)?;
    let tk = positive("memorySteps", spec.memory_steps as usize)?;
    let hk = positive("memorySize", spec.memory_size as usize)?;
    let gh = kind.gates() * h;
    let cell_in = if spec.input_feeding { i + h } else { i };
    let memory = tensor3("memory", t.memory, b, tk, hk)?;
    let lengths: Vec<usize> = match t.lengths {
        Some(l) => l.iter().map(|&v| v as usize).collect(),
        None => vec![tk; b],
    };
    if !kind.has_cell_state() {
        for (what, v) in [("c0", t.c0), ("gradCN", t.grad_c_n)] {
            if v.is_some() {
                return Err(CoreError::InvalidArgument {
                    what: what.into(),
                    expected: "absent: only an LSTM has a cell state".into(),
                    got: format!("{} values for cell {}", v.map_or(0, <[F]>::len), spec.cell),
                });
            }
        }
    }
    let weights = gyre_core::attention::DecoderWeights {
        cell: gyre_core::LayerWeights {
            weight_ih: matrix("weight_ih_l0", t.weight_ih, gh, cell_in)?,
            weight_hh: matrix("weight_hh_l0", t.weight_hh, gh, h)?,
            bias_ih: vector("bias_ih_l0", t.bias_ih, gh)?,
            bias_hh: vector("bias_hh_l0", t.bias_hh, gh)?,
        },
        combine_weight: matrix("combine.weight", t.combine_weight, h, hk + h)?,
        combine_bias: vector("combine.bias", t.combine_bias, h)?,
    };
    let init = gyre_core::InitialState {
        hidden: t.h0.map(|v| matrix("h0", v, b, h)).transpose()?,
        cell: t.c0.map(|v| matrix("c0", v, b, h)).transpose()?,
    };
    // The score's parameters, read as `attentionForward` reads them (queries of width H).
    let score_spec = AttentionSpec {
        score: spec.score.clone(),
        batch: spec.batch,
        query_steps: 1,
        query_size: spec.hidden_size,
        memory_steps: spec.memory_steps,
        memory_size: spec.memory_size,
        units: spec.units,
    };
    let probe_query = vec![F::zero(); b * h];
    let probe = Tensors { query: &probe_query, memory: t.memory, lengths: None, ..t.score };
    with_call(&score_spec, &probe, |score, _, _, _| {
        let dspec = gyre_core::attention::DecoderSpec { cell: kind, score: *score, input_feeding: spec.input_feeding };
        f(&dspec, &weights, memory, &lengths, &init)
    })
}

struct DecoderForward<F> {
    output: Vec<F>,
    attention: Vec<F>,
    h_n: Vec<F>,
    c_n: Option<Vec<F>>,
}

fn decoder_forward_impl<F: Real>(
    spec: &DecoderCallSpec,
    t: &DecoderTensors<'_, F>,
) -> gyre_core::Result<DecoderForward<F>> {
    let (b, tq, i) =
        (spec.batch as usize, gyre_core::tensor::positive("steps", spec.steps as usize)?, spec.input_size as usize);
    let input =
        t.input.ok_or_else(|| CoreError::Missing { what: "input".into(), context: "for the decoder".into() })?;
    let x = tensor3("input", input, b, tq, i)?;
    with_decoder(spec, t, |dspec, w, memory, lengths, init| {
        let o = gyre_core::threads::install(|| {
            gyre_core::attention::decoder_forward(dspec, w, None, x, memory, lengths, init)
        })??;
        Ok(DecoderForward {
            output: o.output.into_iter().collect(),
            attention: o.weights.into_iter().collect(),
            h_n: o.hidden.into_iter().collect(),
            c_n: o.cell.map(|c| c.into_iter().collect()),
        })
    })
}

struct DecoderBackward<F> {
    input: Vec<F>,
    memory: Vec<F>,
    h0: Vec<F>,
    c0: Option<Vec<F>>,
    cell: [Vec<F>; 4],
    combine: [Vec<F>; 2],
    params: Vec<(&'static str, Vec<F>)>,
}

fn decoder_backward_impl<F: Real>(
    spec: &DecoderCallSpec,
    t: &DecoderTensors<'_, F>,
) -> gyre_core::Result<DecoderBackward<F>> {
    let (b, tq, i, h, tk) = (
        spec.batch as usize,
        gyre_core::tensor::positive("steps", spec.steps as usize)?,
        spec.input_size as usize,
        spec.hidden_size as usize,
        spec.memory_steps as usize,
    );
    let input =
        t.input.ok_or_else(|| CoreError::Missing { what: "input".into(), context: "for the decoder".into() })?;
    let x = tensor3("input", input, b, tq, i)?;
    let grads = gyre_core::attention::DecoderOutputGrads {
        output: t.grad_output.map(|g| tensor3("gradOutput", g, b, tq, h)).transpose()?,
        weights: t.grad_attention.map(|g| tensor3("gradAttention", g, b, tq, tk)).transpose()?,
        hidden: t.grad_h_n.map(|g| matrix("gradHN", g, b, h)).transpose()?,
        cell: t.grad_c_n.map(|g| matrix("gradCN", g, b, h)).transpose()?,
    };
    with_decoder(spec, t, |dspec, w, memory, lengths, init| {
        let g = gyre_core::threads::install(|| {
            gyre_core::attention::decoder_backward(dspec, w, x, memory, lengths, init, &grads)
        })??;
        let flat = |a: ndarray::ArrayD<F>| a.into_iter().collect::<Vec<F>>();
        Ok(DecoderBackward {
            input: g.input.into_iter().collect(),
            memory: g.memory.into_iter().collect(),
            h0: g.h0.into_iter().collect(),
            c0: g.c0.map(|c| c.into_iter().collect()),
            cell: [
                flat(g.cell.weight_ih.into_dyn()),
                flat(g.cell.weight_hh.into_dyn()),
                flat(g.cell.bias_ih.into_dyn()),
                flat(g.cell.bias_hh.into_dyn()),
            ],
            combine: [flat(g.combine_weight.into_dyn()), flat(g.combine_bias.into_dyn())],
            params: g.attention,
        })
    })
}

/// One decoder step from the state in `t` (`h0`, `c0`, `h_tilde`): the output, the attention
/// weights and the new state.
fn decoder_step_impl<F: Real>(spec: &DecoderCallSpec, t: &DecoderTensors<'_, F>) -> gyre_core::Result<[Vec<F>; 5]> {
    let (b, i, h) = (spec.batch as usize, spec.input_size as usize, spec.hidden_size as usize);
    let input =
        t.input.ok_or_else(|| CoreError::Missing { what: "input".into(), context: "for a decoder step".into() })?;
    let x = matrix("input", input, b, i)?;
    with_decoder(spec, t, |dspec, w, memory, lengths, init| {
        let mut state = gyre_core::attention::DecoderState::start(dspec, b, h, init)?;
        if let Some(ht) = t.h_tilde {
            state.h_tilde.assign(&matrix("hTilde", ht, b, h)?);
        }
        let (out, att) = gyre_core::threads::install(|| {
            gyre_core::attention::decoder_step(dspec, w, None, None, x, memory, lengths, &mut state)
        })??;
        let flat = |a: Array2<F>| a.into_iter().collect::<Vec<F>>();
        Ok([flat(out), flat(att), flat(state.hidden), flat(state.cell), flat(state.h_tilde)])
    })
}

/// One hypothesis of a beam search, converted.
struct Found<F> {
    tokens: Vec<u32>,
    log_prob: f64,
    score: f64,
    finished: bool,
    attention: Vec<F>,
}

fn need<'a, F>(what: &str, x: Option<&'a [F]>) -> gyre_core::Result<&'a [F]> {
    x.ok_or_else(|| CoreError::Missing { what: what.into(), context: "for beam search".into() })
}

fn beam_impl<F: Real>(
    spec: &DecoderCallSpec,
    t: &DecoderTensors<'_, F>,
    o: &BeamCallOptions,
) -> gyre_core::Result<Vec<Vec<Found<F>>>> {
    let v = gyre_core::tensor::positive("vocabSize", o.vocab_size as usize)?;
    let (i, h) = (spec.input_size as usize, spec.hidden_size as usize);
    let embedding = matrix("embedding", need("embedding", t.embedding)?, v, i)?;
    let weight = matrix("outputWeight", need("outputWeight", t.output_weight)?, v, h)?;
    let bias = vector("outputBias", need("outputBias", t.output_bias)?, v)?;
    let head = gyre_core::attention::TokenHead { embedding, weight, bias };
    let opts = gyre_core::attention::BeamOptions {
        beam_width: o.beam_width as usize,
        max_length: o.max_length as usize,
        start: o.start as usize,
        end: o.end as usize,
        length_penalty: o.length_penalty,
        n_best: o.n_best as usize,
    };
    if !o.length_penalty.is_finite() || o.length_penalty < 0.0 {
        return Err(CoreError::InvalidArgument {
            what: "lengthPenalty".into(),
            expected: "a finite number ≥ 0".into(),
            got: o.length_penalty.to_string(),
        });
    }
    with_decoder(spec, t, |dspec, w, memory, lengths, init| {
        let found = gyre_core::threads::install(|| {
            gyre_core::attention::beam_search(dspec, w, &head, memory, lengths, init, &opts)
        })??;
        Ok(found
            .into_iter()
            .map(|hyps| {
                hyps.into_iter()
                    .map(|x| Found {
                        tokens: x.tokens.iter().map(|&k| k as u32).collect(),
                        log_prob: x.log_prob,
                        score: x.score,
                        finished: x.finished,
                        attention: x.attention.into_iter().collect(),
                    })
                    .collect()
            })
            .collect())
    })
}

/// Declares, for one element type, the decoder's tensor object, its results and its exports.
macro_rules! decoder_api {
    (
        $Array:ident,
        $F:ty,
        $Args:ident,
        $Fwd:ident,
        $Bwd:ident,
        $StepOut:ident,
        $Hyp:ident,
        $forward:ident,
        $backward:ident,
        $step:ident,
        $beam:ident
    ) => {
        /// Flat row-major tensors of one decoder call; shapes are given by the `DecoderCallSpec`.
        #[napi(object)]
        pub struct $Args {
            /// `[B, Tq, I]` the decoder's inputs (teacher forcing; absent for beam search).
            pub input: Option<$Array>,
            /// `[B, Tk, Hk]` the memory (encoder outputs).
            pub memory: $Array,
            /// `[B]` valid memory steps (all `Tk` when absent).
            pub lengths: Option<Uint32Array>,
            /// `[B, H]` initial hidden state (zeros when absent).
            pub h0: Option<$Array>,
            /// `[B, H]` initial cell state, LSTM only (zeros when absent).
            pub c0: Option<$Array>,
            /// `[G·H, I (+ H with input feeding)]`
            pub weight_ih: $Array,
            /// `[G·H, H]`
            pub weight_hh: $Array,
            /// `[G·H]`
            pub bias_ih: $Array,
            /// `[G·H]`
            pub bias_hh: $Array,
            /// `[H, Hk + H]`
            pub combine_weight: $Array,
            /// `[H]`
            pub combine_bias: $Array,
            /// `[H, Hk]` the general score's parameter.
            pub weight: Option<$Array>,
            /// `[A, H]` (additive).
            pub query_weight: Option<$Array>,
            /// `[A, Hk]` (additive).
            pub key_weight: Option<$Array>,
            /// `[A]` (additive).
            pub bias: Option<$Array>,
            /// `[A]` (additive).
            pub v: Option<$Array>,
            /// `[B, Tq, H]` backward: gradient of the output (zeros when absent).
            pub grad_output: Option<$Array>,
            /// `[B, Tq, Tk]` backward: gradient of the attention weights (zeros when absent).
            pub grad_attention: Option<$Array>,
            /// `[B, H]` backward: gradient of `h_n` (zeros when absent).
            pub grad_h_n: Option<$Array>,
            /// `[B, H]` backward: gradient of `c_n`, LSTM only (zeros when absent).
            pub grad_c_n: Option<$Array>,
            /// `[V, I]` beam search: the input embedding.
            pub embedding: Option<$Array>,
            /// `[V, H]` beam search: the output layer's weight.
            pub output_weight: Option<$Array>,
            /// `[V]` beam search: its bias.
            pub output_bias: Option<$Array>,
            /// `[B, H]` a step: the previous step's `h̃` (zeros when absent: the first step).
            pub h_tilde: Option<$Array>,
        }

        impl $Args {
            fn tensors(&self) -> DecoderTensors<'_, $F> {
                DecoderTensors {
                    input: self.input.as_deref(),
                    memory: &self.memory,
                    lengths: self.lengths.as_deref(),
                    h0: self.h0.as_deref(),
                    c0: self.c0.as_deref(),
                    weight_ih: &self.weight_ih,
                    weight_hh: &self.weight_hh,
                    bias_ih: &self.bias_ih,
                    bias_hh: &self.bias_hh,
                    combine_weight: &self.combine_weight,
                    combine_bias: &self.combine_bias,
                    score: Tensors {
                        query: &[],
                        memory: &self.memory,
                        lengths: None,
                        weight: self.weight.as_deref(),
                        query_weight: self.query_weight.as_deref(),
                        key_weight: self.key_weight.as_deref(),
                        bias: self.bias.as_deref(),
                        v: self.v.as_deref(),
                        grad_context: None,
                        grad_weights: None,
                    },
                    grad_output: self.grad_output.as_deref(),
                    grad_attention: self.grad_attention.as_deref(),
                    grad_h_n: self.grad_h_n.as_deref(),
                    grad_c_n: self.grad_c_n.as_deref(),
                    embedding: self.embedding.as_deref(),
                    output_weight: self.output_weight.as_deref(),
                    output_bias: self.output_bias.as_deref(),
                    h_tilde: self.h_tilde.as_deref(),
                }
            }
        }

        /// Outputs of a decoder forward call.
        #[napi(object)]
        pub struct $Fwd {
            /// `[B, Tq, H]` the attentional states `h̃`.
            pub output: $Array,
            /// `[B, Tq, Tk]` the attention weights.
            pub attention: $Array,
            /// `[B, H]`
            pub h_n: $Array,
            /// `[B, H]` (LSTM only)
            pub c_n: Option<$Array>,
        }

        /// Gradients of a decoder backward call.
        #[napi(object)]
        pub struct $Bwd {
            /// `[B, Tq, I]`
            pub grad_input: $Array,
            /// `[B, Tk, Hk]`
            pub grad_memory: $Array,
            /// `[B, H]`
            pub grad_h0: $Array,
            /// `[B, H]` (LSTM only)
            pub grad_c0: Option<$Array>,
            /// `[G·H, I (+ H)]`
            pub grad_weight_ih: $Array,
            /// `[G·H, H]`
            pub grad_weight_hh: $Array,
            /// `[G·H]`
            pub grad_bias_ih: $Array,
            /// `[G·H]`
            pub grad_bias_hh: $Array,
            /// `[H, Hk + H]`
            pub grad_combine_weight: $Array,
            /// `[H]`
            pub grad_combine_bias: $Array,
            /// `[H, Hk]` (general)
            pub grad_weight: Option<$Array>,
            /// `[A, H]` (additive)
            pub grad_query_weight: Option<$Array>,
            /// `[A, Hk]` (additive)
            pub grad_key_weight: Option<$Array>,
            /// `[A]` (additive)
            pub grad_bias: Option<$Array>,
            /// `[A]` (additive)
            pub grad_v: Option<$Array>,
        }

        /// A decoder step's output and new state.
        #[napi(object)]
        pub struct $StepOut {
            /// `[B, H]` the step's `h̃`.
            pub output: $Array,
            /// `[B, Tk]` its attention weights.
            pub attention: $Array,
            /// `[B, H]` the cell's new hidden state.
            pub h_n: $Array,
            /// `[B, H]` its new cell state (LSTM only).
            pub c_n: Option<$Array>,
            /// `[B, H]` the new `h̃` (the next step's input feeding).
            pub h_tilde: $Array,
        }

        /// One hypothesis of a beam search.
        #[napi(object)]
        pub struct $Hyp {
            /// The generated token ids (the end token last when finished).
            pub tokens: Uint32Array,
            /// Σ log p of the tokens.
            pub log_prob: f64,
            /// The ranking score (`logProb` over the length penalty).
            pub score: f64,
            /// Ended with the end token (else cut at `maxLength`).
            pub finished: bool,
            /// `[tokens, Tk]` the attention weights of each token's step.
            pub attention: $Array,
        }

        /// The attention decoder over a batch (teacher forcing); see `DecoderCallSpec`.
        #[napi(catch_unwind)]
        pub fn $forward(spec: DecoderCallSpec, args: $Args) -> Result<$Fwd> {
            contain(|| {
                let r = decoder_forward_impl(&spec, &args.tensors())?;
                Ok($Fwd {
                    output: $Array::new(r.output),
                    attention: $Array::new(r.attention),
                    h_n: $Array::new(r.h_n),
                    c_n: r.c_n.map($Array::new),
                })
            })
        }

        /// Backpropagation through time of the attention decoder (recomputes the forward pass).
        #[napi(catch_unwind)]
        pub fn $backward(spec: DecoderCallSpec, args: $Args) -> Result<$Bwd> {
            contain(|| {
                let r = decoder_backward_impl(&spec, &args.tensors())?;
                let [wih, whh, bih, bhh] = r.cell;
                let [cw, cb] = r.combine;
                let [grad_weight, grad_query_weight, grad_key_weight, grad_bias, grad_v] =
                    score_grads(r.params, $Array::new);
                Ok($Bwd {
                    grad_input: $Array::new(r.input),
                    grad_memory: $Array::new(r.memory),
                    grad_h0: $Array::new(r.h0),
                    grad_c0: r.c0.map($Array::new),
                    grad_weight_ih: $Array::new(wih),
                    grad_weight_hh: $Array::new(whh),
                    grad_bias_ih: $Array::new(bih),
                    grad_bias_hh: $Array::new(bhh),
                    grad_combine_weight: $Array::new(cw),
                    grad_combine_bias: $Array::new(cb),
                    grad_weight,
                    grad_query_weight,
                    grad_key_weight,
                    grad_bias,
                    grad_v,
                })
            })
        }

        /// One step of the attention decoder from a given state (`input: [B, I]`).
        #[napi(catch_unwind)]
        pub fn $step(spec: DecoderCallSpec, args: $Args) -> Result<$StepOut> {
            contain(|| {
                let [output, attention, h, c, ht] = decoder_step_impl(&spec, &args.tensors())?;
                let lstm = !c.is_empty();
                Ok($StepOut {
                    output: $Array::new(output),
                    attention: $Array::new(attention),
                    h_n: $Array::new(h),
                    c_n: lstm.then(|| $Array::new(c)),
                    h_tilde: $Array::new(ht),
                })
            })
        }

        /// Beam search with the attention decoder, an input embedding and an output layer.
        #[napi(catch_unwind)]
        pub fn $beam(spec: DecoderCallSpec, args: $Args, options: BeamCallOptions) -> Result<Vec<Vec<$Hyp>>> {
            contain(|| {
                let found = beam_impl(&spec, &args.tensors(), &options)?;
                Ok(found
                    .into_iter()
                    .map(|hyps| {
                        hyps.into_iter()
                            .map(|x| $Hyp {
                                tokens: Uint32Array::new(x.tokens),
                                log_prob: x.log_prob,
                                score: x.score,
                                finished: x.finished,
                                attention: $Array::new(x.attention),
                            })
                            .collect()
                    })
                    .collect())
            })
        }
    };
}

decoder_api!(
    Float32Array,
    f32,
    DecoderTensorsF32,
    DecoderResultF32,
    DecoderGradsF32,
    DecoderStepF32,
    HypothesisF32,
    decoder_forward_f32,
    decoder_backward_f32,
    decoder_step_f32,
    beam_search_f32
);
decoder_api!(
    Float64Array,
    f64,
    DecoderTensorsF64,
    DecoderResultF64,
    DecoderGradsF64,
    DecoderStepF64,
    HypothesisF64,
    decoder_forward_f64,
    decoder_backward_f64,
    decoder_step_f64,
    beam_search_f64
);
