//! Node.js binding of gyre-core. Conversion, validation and error mapping only: every
//! function here turns JavaScript arguments into views, calls gyre-core and converts back.
//! Each export catches panics, so none can take the Node process down: its body runs in
//! [`error::contain`], which turns a panic into a `GYRE_INTERNAL` error, and napi-rs's
//! `catch_unwind` stays around it all (a panic outside the body, converting an argument, reaches
//! JavaScript with napi-rs's code `GenericFailure`).

/// The addon's allocator. Training allocates a batch's activations (megabytes) and frees them
/// every batch; glibc's malloc hands such blocks back to the kernel each time, and the page
/// faults of getting them again cost more than the gate nonlinearities. mimalloc keeps them.
#[cfg(not(target_family = "wasm"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in the v2 header).
#[cfg(not(target_family = "wasm"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory stays with the allocator for a second (arenas: ten) before it goes back to the
/// system, instead of 10 ms: one training or prediction batch after another reuses the same
/// pages instead of faulting fresh zeroed ones in (12% of lstm-m inference time, measured
/// with `perf`). Runs when the addon is loaded.
#[cfg(not(target_family = "wasm"))]
#[napi_derive::module_init]
fn keep_freed_memory_briefly() {
    // SAFETY: sets a global option of the allocator; mimalloc documents it as callable at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
}

use gyre_core::tensor::{matrix, tensor3, vector};
use gyre_core::threads;
use gyre_core::{CellKind, CoreError, GateActivation, InitialState, LayerWeights, Nonlinearity, OutputGrads, Real};
use napi::bindgen_prelude::{Float32Array, Float64Array, Uint32Array};
use napi_derive::napi;

pub mod attention;
pub mod data;
#[cfg(debug_assertions)]
pub mod debug;
pub mod error;
pub mod graph;
pub mod model;
pub mod options;
pub mod progress;
pub mod seq2seq;
pub mod shared;
pub mod spec;
pub mod stream;
pub mod tasks;

use error::{contain, Result};

/// Sizes and cell of one call of the functional recurrent API.
#[napi(object)]
pub struct RecurrentSpec {
    /// `"rnn_tanh" | "rnn_relu" | "lstm" | "gru" | "gru_reset_before"`.
    pub cell: String,
    /// Batch size `B`.
    pub batch: u32,
    /// Time steps `T`.
    pub steps: u32,
    /// Input features `I`.
    pub input_size: u32,
    /// Hidden size `H`.
    pub hidden_size: u32,
    /// LSTM and GRU: `"sigmoid"` (default), `"hardSigmoidTfjs"` or `"hardSigmoidKeras3"`.
    pub recurrent_activation: Option<String>,
    /// Run each sequence from its last step to its first. Default false.
    pub reverse: Option<bool>,
}

pub(crate) fn cell_kind(name: &str, recurrent_activation: Option<&str>) -> gyre_core::Result<CellKind> {
    let recurrent = match recurrent_activation {
        None => GateActivation::Sigmoid,
        Some(a) => GateActivation::from_name(a).ok_or_else(|| CoreError::InvalidArgument {
            what: "recurrentActivation".into(),
            expected: "one of sigmoid, hardSigmoidTfjs, hardSigmoidKeras3".into(),
            got: format!("{a:?}"),
        })?,
    };
    if recurrent != GateActivation::Sigmoid && name.starts_with("rnn") {
        return Err(CoreError::InvalidArgument {
            what: "recurrentActivation".into(),
            expected: "absent for a simple RNN (it has no gates)".into(),
            got: format!("{:?}", recurrent.name()),
        });
    }
    Ok(match name {
        "rnn_tanh" => CellKind::Rnn(Nonlinearity::Tanh),
        "rnn_relu" => CellKind::Rnn(Nonlinearity::Relu),
        "lstm" => CellKind::Lstm { recurrent },
        "gru" => CellKind::Gru { reset_after: true, recurrent },
        "gru_reset_before" => CellKind::Gru { reset_after: false, recurrent },
        other => {
            return Err(CoreError::InvalidArgument {
                what: "cell".into(),
                expected: "one of rnn_tanh, rnn_relu, lstm, gru, gru_reset_before".into(),
                got: format!("{other:?}"),
            })
        }
    })
}

/// Borrowed flat tensors of one call, whichever the element type.
struct Tensors<'a, F> {
    input: &'a [F],
    lengths: Option<&'a [u32]>,
    h0: Option<&'a [F]>,
    c0: Option<&'a [F]>,
    weight_ih: &'a [F],
    weight_hh: &'a [F],
    bias_ih: &'a [F],
    bias_hh: &'a [F],
    grad_output: Option<&'a [F]>,
    grad_h_n: Option<&'a [F]>,
    grad_c_n: Option<&'a [F]>,
}

/// Flat results, converted to typed arrays by the caller.
struct Forward<F> {
    output: Vec<F>,
    h_n: Vec<F>,
    c_n: Option<Vec<F>>,
}

struct Backward<F> {
    grad_input: Vec<F>,
    grad_h0: Vec<F>,
    grad_c0: Option<Vec<F>>,
    grad_weight_ih: Vec<F>,
    grad_weight_hh: Vec<F>,
    grad_bias_ih: Vec<F>,
    grad_bias_hh: Vec<F>,
}

struct Call<'a, F> {
    kind: CellKind,
    weights: LayerWeights<'a, F>,
    input: ndarray::ArrayView3<'a, F>,
    initial: InitialState<'a, F>,
    b: usize,
    t: usize,
    h: usize,
}

fn prepare<'a, F: Real>(spec: &RecurrentSpec, x: &Tensors<'a, F>) -> gyre_core::Result<Call<'a, F>> {
    let kind = cell_kind(&spec.cell, spec.recurrent_activation.as_deref())?;
    let positive = gyre_core::tensor::positive;
    let b = positive("batch", spec.batch as usize)?;
    let t = positive("steps", spec.steps as usize)?;
    let i = positive("inputSize", spec.input_size as usize)?;
    let h = positive("hiddenSize", spec.hidden_size as usize)?;
    let gh = kind.gates() * h;
    if !kind.has_cell_state() {
        for (what, v) in [("c0", x.c0), ("grad_c_n", x.grad_c_n)] {
            if v.is_some() {
                return Err(CoreError::InvalidArgument {
                    what: what.into(),
                    expected: "absent: only an LSTM has a cell state".into(),
                    got: format!("{} values for cell {}", v.map_or(0, <[F]>::len), spec.cell),
                });
            }
        }
    }
    let state = |what: &str, v: Option<&'a [F]>| v.map(|v| matrix(what, v, b, h)).transpose();
    Ok(Call {
        kind,
        weights: LayerWeights {
            weight_ih: matrix("weight_ih_l0", x.weight_ih, gh, i)?,
            weight_hh: matrix("weight_hh_l0", x.weight_hh, gh, h)?,
            bias_ih: vector("bias_ih_l0", x.bias_ih, gh)?,
            bias_hh: vector("bias_hh_l0", x.bias_hh, gh)?,
        },
        input: tensor3("input", x.input, b, t, i)?,
        initial: InitialState { hidden: state("h0", x.h0)?, cell: state("c0", x.c0)? },
        b,
        t,
        h,
    })
}

/// The lengths and direction of a call.
fn sequences<'a>(spec: &RecurrentSpec, lengths: &'a Option<Vec<usize>>) -> gyre_core::SequenceOptions<'a> {
    gyre_core::SequenceOptions { lengths: lengths.as_deref(), reverse: spec.reverse.unwrap_or(false) }
}

fn forward_impl<F: Real>(spec: &RecurrentSpec, x: &Tensors<F>) -> gyre_core::Result<Forward<F>> {
    let call = prepare(spec, x)?;
    let lengths = x.lengths.map(|l| l.iter().map(|&v| v as usize).collect::<Vec<usize>>());
    let opts = sequences(spec, &lengths);
    let out = gyre_core::threads::install(|| {
        gyre_core::forward_sequences(call.kind, &call.weights, call.input, &call.initial, &opts)
    })??;
    Ok(Forward {
        output: out.output.into_iter().collect(),
        h_n: out.state.hidden.into_iter().collect(),
        c_n: out.state.cell.map(|c| c.into_iter().collect()),
    })
}

fn backward_impl<F: Real>(spec: &RecurrentSpec, x: &Tensors<F>) -> gyre_core::Result<Backward<F>> {
    let call = prepare(spec, x)?;
    let (b, t, h) = (call.b, call.t, call.h);
    let grads = OutputGrads {
        output: x.grad_output.map(|g| tensor3("grad_output", g, b, t, h)).transpose()?,
        hidden: x.grad_h_n.map(|g| matrix("grad_h_n", g, b, h)).transpose()?,
        cell: x.grad_c_n.map(|g| matrix("grad_c_n", g, b, h)).transpose()?,
    };
    let lengths = x.lengths.map(|l| l.iter().map(|&v| v as usize).collect::<Vec<usize>>());
    let opts = sequences(spec, &lengths);
    let g = gyre_core::threads::install(|| {
        gyre_core::backward_sequences(call.kind, &call.weights, call.input, &call.initial, &grads, &opts)
    })??;
    Ok(Backward {
        grad_input: g.input.into_iter().collect(),
        grad_h0: g.initial.hidden.into_iter().collect(),
        grad_c0: g.initial.cell.map(|c| c.into_iter().collect()),
        grad_weight_ih: g.weights.weight_ih.into_iter().collect(),
        grad_weight_hh: g.weights.weight_hh.into_iter().collect(),
        grad_bias_ih: g.weights.bias_ih.into_iter().collect(),
        grad_bias_hh: g.weights.bias_hh.into_iter().collect(),
    })
}

/// Declares, for one element type, the tensor argument object, the two result objects and the
/// forward and backward exports. Everything else is shared generic code above.
macro_rules! dtype_api {
    ($Array:ident, $F:ty, $Args:ident, $Fwd:ident, $Bwd:ident, $forward:ident, $backward:ident) => {
        /// Flat row-major tensors of one call; shapes are given by the `RecurrentSpec`.
        #[napi(object)]
        pub struct $Args {
            /// `[B, T, I]` input sequence, batch-first.
            pub input: $Array,
            /// `[B]` each sequence's steps (1 … T; all T when absent).
            pub lengths: Option<Uint32Array>,
            /// `[B, H]` initial hidden state (zeros when absent).
            pub h0: Option<$Array>,
            /// `[B, H]` initial cell state, LSTM only (zeros when absent).
            pub c0: Option<$Array>,
            /// `[G·H, I]` `weight_ih_l0`.
            pub weight_ih: $Array,
            /// `[G·H, H]` `weight_hh_l0`.
            pub weight_hh: $Array,
            /// `[G·H]` `bias_ih_l0`.
            pub bias_ih: $Array,
            /// `[G·H]` `bias_hh_l0`.
            pub bias_hh: $Array,
            /// `[B, T, H]` gradient of the output (backward only; zeros when absent).
            pub grad_output: Option<$Array>,
            /// `[B, H]` gradient of `h_n` (backward only; zeros when absent).
            pub grad_h_n: Option<$Array>,
            /// `[B, H]` gradient of `c_n`, LSTM only (backward only; zeros when absent).
            pub grad_c_n: Option<$Array>,
        }

        impl $Args {
            fn tensors(&self) -> Tensors<'_, $F> {
                Tensors {
                    input: &self.input,
                    lengths: self.lengths.as_deref(),
                    h0: self.h0.as_deref(),
                    c0: self.c0.as_deref(),
                    weight_ih: &self.weight_ih,
                    weight_hh: &self.weight_hh,
                    bias_ih: &self.bias_ih,
                    bias_hh: &self.bias_hh,
                    grad_output: self.grad_output.as_deref(),
                    grad_h_n: self.grad_h_n.as_deref(),
                    grad_c_n: self.grad_c_n.as_deref(),
                }
            }
        }

        /// Outputs of a forward call.
        #[napi(object)]
        pub struct $Fwd {
            /// `[B, T, H]` hidden state after every step.
            pub output: $Array,
            /// `[B, H]` hidden state after the last step.
            pub h_n: $Array,
            /// `[B, H]` cell state after the last step (LSTM only).
            pub c_n: Option<$Array>,
        }

        /// Gradients returned by a backward call.
        #[napi(object)]
        pub struct $Bwd {
            /// `[B, T, I]`
            pub grad_input: $Array,
            /// `[B, H]`
            pub grad_h0: $Array,
            /// `[B, H]` (LSTM only)
            pub grad_c0: Option<$Array>,
            /// `[G·H, I]`
            pub grad_weight_ih: $Array,
            /// `[G·H, H]`
            pub grad_weight_hh: $Array,
            /// `[G·H]`
            pub grad_bias_ih: $Array,
            /// `[G·H]`
            pub grad_bias_hh: $Array,
        }

        /// Forward pass of one recurrent layer over a batch; see `RecurrentSpec` for shapes.
        #[napi(catch_unwind)]
        pub fn $forward(spec: RecurrentSpec, args: $Args) -> Result<$Fwd> {
            contain(|| {
                let r = forward_impl(&spec, &args.tensors())?;
                Ok($Fwd { output: $Array::new(r.output), h_n: $Array::new(r.h_n), c_n: r.c_n.map($Array::new) })
            })
        }

        /// Backpropagation through time for the forward pass with the same arguments.
        #[napi(catch_unwind)]
        pub fn $backward(spec: RecurrentSpec, args: $Args) -> Result<$Bwd> {
            contain(|| {
                let r = backward_impl(&spec, &args.tensors())?;
                Ok($Bwd {
                    grad_input: $Array::new(r.grad_input),
                    grad_h0: $Array::new(r.grad_h0),
                    grad_c0: r.grad_c0.map($Array::new),
                    grad_weight_ih: $Array::new(r.grad_weight_ih),
                    grad_weight_hh: $Array::new(r.grad_weight_hh),
                    grad_bias_ih: $Array::new(r.grad_bias_ih),
                    grad_bias_hh: $Array::new(r.grad_bias_hh),
                })
            })
        }
    };
}

dtype_api!(
    Float32Array,
    f32,
    RecurrentTensorsF32,
    ForwardResultF32,
    BackwardResultF32,
    recurrent_forward_f32,
    recurrent_backward_f32
);
dtype_api!(
    Float64Array,
    f64,
    RecurrentTensorsF64,
    ForwardResultF64,
    BackwardResultF64,
    recurrent_forward_f64,
    recurrent_backward_f64
);

/// Sets the number of threads native calls run on (`GYRE_NUM_THREADS` sets the default).
#[napi(catch_unwind)]
pub fn set_num_threads(threads: u32) -> Result<()> {
    contain(|| Ok(threads::set_num_threads(threads as usize)?))
}

/// The number of threads native calls run on.
#[napi(catch_unwind)]
pub fn get_num_threads() -> Result<u32> {
    contain(|| Ok(threads::num_threads()? as u32))
}

/// The SIMD level the f32 kernels run at: `"avx512"`, `"avx2"` (with FMA), `"neon"` (every
/// arm64 CPU), `"simd128"` (the WebAssembly build) or `"scalar"` (the portable code, which is
/// what other CPUs run): the CPU's best, capped by `GYRE_SIMD` (`scalar|avx2|avx512`) read when
/// the addon first needs it.
#[napi(catch_unwind, ts_return_type = "'avx512' | 'avx2' | 'neon' | 'simd128' | 'scalar'")]
pub fn simd_level() -> &'static str {
    match gyre_core::kernels::level() {
        gyre_core::kernels::Level::Avx512 => "avx512",
        gyre_core::kernels::Level::Avx2 => "avx2",
        gyre_core::kernels::Level::Neon => "neon",
        gyre_core::kernels::Level::Simd128 => "simd128",
        gyre_core::kernels::Level::Scalar => "scalar",
    }
}
