//! The functional attention API: `attentionForward` / `attentionBackward` over flat typed arrays
//! (f32 or f64), converted to views of `gyre_core::attention` and back.

use crate::error::{contain, Result};
use gyre_core::tensor::{matrix, tensor3, vector};
use gyre_core::{attention_backward, attention_forward, AttentionScore, CoreError, Real};
use napi::bindgen_prelude::{Float32Array, Float64Array, Uint32Array};
use napi_derive::napi;

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
                let mut out = $Bwd {
                    grad_query: $Array::new(r.query),
                    grad_memory: $Array::new(r.memory),
                    grad_weight: None,
                    grad_query_weight: None,
                    grad_key_weight: None,
                    grad_bias: None,
                    grad_v: None,
                };
                for (name, values) in r.params {
                    let slot = match name {
                        "weight" => &mut out.grad_weight,
                        "query_weight" => &mut out.grad_query_weight,
                        "key_weight" => &mut out.grad_key_weight,
                        "bias" => &mut out.grad_bias,
                        _ => &mut out.grad_v,
                    };
                    *slot = Some($Array::new(values));
                }
                Ok(out)
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
