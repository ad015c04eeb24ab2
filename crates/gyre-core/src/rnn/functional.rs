//! The batch-first functional API: one recurrent layer direction over a batch of sequences,
//! forward and backward, with explicit weights. This is what the Node binding exposes.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::rnn::cell::Cell;
use crate::rnn::cells::{GateActivation, GruCell, LstmCell, Nonlinearity, RnnCell};
use crate::rnn::sequence::forward_sequence;
use crate::rnn::weights::{LayerWeights, WeightGrads};
use crate::rnn::{backward_sequence, Packing};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};

/// Which cell a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// Elman RNN with the given activation (1 gate block).
    Rnn(Nonlinearity),
    /// LSTM, gate order `i, f, g, o` (4 gate blocks, a cell state).
    Lstm {
        /// The activation of the `i`, `f`, `o` gates (default the sigmoid).
        recurrent: GateActivation,
    },
    /// GRU, gate order `r, z, n` (3 gate blocks); `reset_after` is PyTorch's convention.
    Gru {
        /// Apply the reset gate after the recurrent product (default true).
        reset_after: bool,
        /// The activation of the `r`, `z` gates (default the sigmoid).
        recurrent: GateActivation,
    },
}

impl CellKind {
    /// PyTorch's LSTM (sigmoid gates).
    pub const LSTM: CellKind = CellKind::Lstm { recurrent: GateActivation::Sigmoid };

    /// PyTorch's GRU (sigmoid gates) with the reset gate after (`true`) or before the product.
    pub const fn gru(reset_after: bool) -> CellKind {
        CellKind::Gru { reset_after, recurrent: GateActivation::Sigmoid }
    }

    /// The gate activation of an LSTM or GRU (the sigmoid for the simple RNN, which has none).
    pub fn recurrent_activation(self) -> GateActivation {
        match self {
            CellKind::Rnn(_) => GateActivation::Sigmoid,
            CellKind::Lstm { recurrent } | CellKind::Gru { recurrent, .. } => recurrent,
        }
    }
}

impl CellKind {
    /// Number of gate blocks `G`: weights have `G·H` rows.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm { .. } => 4,
            CellKind::Gru { .. } => 3,
        }
    }

    /// Whether the cell carries a cell state `c` (LSTM only).
    pub fn has_cell_state(self) -> bool {
        matches!(self, CellKind::Lstm { .. })
    }
}

/// Initial states, `[B, H]` each; `None` means zeros.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitialState<'a, F> {
    /// `[B, H]` initial hidden state.
    pub hidden: Option<ArrayView2<'a, F>>,
    /// `[B, H]` initial cell state (LSTM only).
    pub cell: Option<ArrayView2<'a, F>>,
}

/// Recurrent state of a batch: a hidden state and, for an LSTM, a cell state.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentState<F> {
    /// `[B, H]`
    pub hidden: Array2<F>,
    /// `[B, H]`, present for an LSTM only.
    pub cell: Option<Array2<F>>,
}

/// Result of [`forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardOutput<F> {
    /// `[B, T, H]` the hidden state after every step.
    pub output: Array3<F>,
    /// The state after the last step (`h_n`, `c_n`).
    pub state: RecurrentState<F>,
}

/// Gradients of a loss with respect to the outputs of [`forward`]; `None` means zeros.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputGrads<'a, F> {
    /// `[B, T, H]` gradient of the output sequence.
    pub output: Option<ArrayView3<'a, F>>,
    /// `[B, H]` gradient of the final hidden state `h_n`.
    pub hidden: Option<ArrayView2<'a, F>>,
    /// `[B, H]` gradient of the final cell state `c_n` (LSTM only).
    pub cell: Option<ArrayView2<'a, F>>,
}

/// Result of [`backward`]: the gradient of every input of [`forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients<F> {
    /// `[B, T, I]` gradient of the input sequence.
    pub input: Array3<F>,
    /// Gradients of the initial states (`cell` present for an LSTM only).
    pub initial: RecurrentState<F>,
    /// Gradients of the four weight tensors.
    pub weights: WeightGrads<F>,
}

/// Validated sizes of a call.
struct Checked {
    batch: usize,
    steps: usize,
    hidden: usize,
}

fn check_state<F>(
    what: &str,
    kind: CellKind,
    s: Option<&ArrayView2<F>>,
    batch: usize,
    hidden: usize,
    cell: bool,
) -> Result<()> {
    let Some(s) = s else { return Ok(()) };
    if cell && !kind.has_cell_state() {
        return Err(CoreError::invalid(
            what,
            "absent: only an LSTM has a cell state",
            format!("a [{}, {}] array", s.nrows(), s.ncols()),
        ));
    }
    if s.dim() != (batch, hidden) {
        return Err(CoreError::shape(what, format!("[{batch}, {hidden}]"), format!("[{}, {}]", s.nrows(), s.ncols())));
    }
    Ok(())
}

fn check<F: Real>(kind: CellKind, w: &LayerWeights<F>, x: &ArrayView3<F>, init: &InitialState<F>) -> Result<Checked> {
    let (batch, steps, input) = x.dim();
    for (what, v) in [("batch", batch), ("steps", steps), ("input size", input)] {
        crate::kernels::tensor::positive(what, v)?;
    }
    let hidden = w.check(kind.gates(), input)?;
    check_state("h0", kind, init.hidden.as_ref(), batch, hidden, false)?;
    check_state("c0", kind, init.cell.as_ref(), batch, hidden, true)?;
    Ok(Checked { batch, steps, hidden })
}

/// `[B, T, X]` batch-first to `[T·B, X]` time-major.
fn time_major<F: Real>(x: &ArrayView3<F>) -> Array2<F> {
    let (b, t, f) = x.dim();
    let mut out = Array2::zeros((t * b, f));
    for (row, mut dst) in out.axis_chunks_iter_mut(Axis(0), b).enumerate() {
        dst.assign(&x.index_axis(Axis(1), row));
    }
    out
}

/// `[T·B, X]` time-major to `[B, T, X]` batch-first.
fn batch_first<F: Real>(x: ArrayView2<F>, batch: usize) -> Array3<F> {
    let steps = x.nrows() / batch.max(1);
    let mut out = Array3::zeros((batch, steps, x.ncols()));
    for (t, src) in x.axis_chunks_iter(Axis(0), batch.max(1)).enumerate() {
        out.index_axis_mut(Axis(1), t).assign(&src);
    }
    out
}

fn state_or_zeros<F: Real>(s: Option<&ArrayView2<F>>, batch: usize, hidden: usize) -> Vec<F> {
    match s {
        Some(s) => s.iter().copied().collect(),
        None => vec![F::zero(); batch * hidden],
    }
}

fn run_forward<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    x: &ArrayView3<F>,
    init: &InitialState<F>,
    c: &Checked,
) -> Result<(Array2<F>, crate::rnn::Trace<F>)> {
    let xt = time_major(x);
    let h0 = state_or_zeros(init.hidden.as_ref(), c.batch, c.hidden);
    let c0 = if cell.has_cell_state() { state_or_zeros(init.cell.as_ref(), c.batch, c.hidden) } else { Vec::new() };
    let packing = Packing::uniform(c.batch, c.steps)?;
    let trace = forward_sequence(cell, w, xt.view(), &packing, false, &h0, &c0)?;
    Ok((xt, trace))
}

fn forward_with<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    x: &ArrayView3<F>,
    init: &InitialState<F>,
    c: &Checked,
) -> Result<ForwardOutput<F>> {
    let xt = time_major(x);
    let h0 = state_or_zeros(init.hidden.as_ref(), c.batch, c.hidden);
    let c0 = if cell.has_cell_state() { state_or_zeros(init.cell.as_ref(), c.batch, c.hidden) } else { Vec::new() };
    let packing = Packing::uniform(c.batch, c.steps)?;
    let o = crate::rnn::sequence::infer_sequence(cell, w, None, xt.view(), &packing, false, &h0, &c0)?;
    let out = crate::kernels::tensor::matrix("output", &o.h, c.steps * c.batch, c.hidden)?;
    let state = RecurrentState {
        hidden: Array2::from_shape_vec((c.batch, c.hidden), o.h_n)
            .map_err(|e| CoreError::shape("h_n", "[batch, hidden]", e.to_string()))?,
        cell: if cell.has_cell_state() {
            Some(
                Array2::from_shape_vec((c.batch, c.hidden), o.c_n)
                    .map_err(|e| CoreError::shape("c_n", "[batch, hidden]", e.to_string()))?,
            )
        } else {
            None
        },
    };
    Ok(ForwardOutput { output: batch_first(out, c.batch), state })
}

fn backward_with<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    x: &ArrayView3<F>,
    init: &InitialState<F>,
    grads: &OutputGrads<F>,
    c: &Checked,
) -> Result<Gradients<F>> {
    let kind_has_c = cell.has_cell_state();
    if let Some(g) = &grads.output {
        if g.dim() != (c.batch, c.steps, c.hidden) {
            let (b, t, h) = g.dim();
            return Err(CoreError::shape(
                "grad_output",
                format!("[{}, {}, {}]", c.batch, c.steps, c.hidden),
                format!("[{b}, {t}, {h}]"),
            ));
        }
    }
    let kind = if kind_has_c { CellKind::LSTM } else { CellKind::gru(true) };
    check_state("grad_h_n", kind, grads.hidden.as_ref(), c.batch, c.hidden, false)?;
    check_state("grad_c_n", kind, grads.cell.as_ref(), c.batch, c.hidden, true)?;

    let (xt, trace) = run_forward(cell, w, x, init, c)?;
    let d_out =
        grads.output.as_ref().map(time_major).map(|a| a.iter().copied().collect::<Vec<F>>()).unwrap_or_default();
    let d_hn: Vec<F> = grads.hidden.map(|g| g.iter().copied().collect()).unwrap_or_default();
    let d_cn: Vec<F> = grads.cell.map(|g| g.iter().copied().collect()).unwrap_or_default();
    let g = backward_sequence(cell, w, xt.view(), trace, &d_out, &d_hn, &d_cn, true)?;
    let to2 = |what: &str, v: Vec<F>| {
        Array2::from_shape_vec((c.batch, c.hidden), v)
            .map_err(|e| CoreError::shape(what, "[batch, hidden]", e.to_string()))
    };
    Ok(Gradients {
        input: batch_first(g.input.view(), c.batch),
        initial: RecurrentState {
            hidden: to2("grad_h0", g.h0)?,
            cell: if kind_has_c { Some(to2("grad_c0", g.c0)?) } else { None },
        },
        weights: g.weights,
    })
}

/// Runs one recurrent layer direction over `input: [B, T, I]` from `initial` states
/// (`[B, H]`, zeros when absent) with `weights` in PyTorch layout (`weight_ih: [G·H, I]`,
/// `weight_hh: [G·H, H]`, biases `[G·H]`).
///
/// # Returns
/// The output sequence `[B, T, H]` and the final state (`h_n: [B, H]`, `c_n: [B, H]` for an LSTM).
///
/// # Errors
/// [`CoreError`] naming the argument when a size is zero or a shape disagrees with the others.
pub fn forward<F: Real>(
    kind: CellKind,
    weights: &LayerWeights<F>,
    input: ArrayView3<F>,
    initial: &InitialState<F>,
) -> Result<ForwardOutput<F>> {
    let c = check(kind, weights, &input, initial)?;
    match kind {
        CellKind::Rnn(nonlinearity) => forward_with(&RnnCell { nonlinearity }, weights, &input, initial, &c),
        CellKind::Lstm { recurrent } => forward_with(&LstmCell { recurrent }, weights, &input, initial, &c),
        CellKind::Gru { reset_after, recurrent } => {
            forward_with(&GruCell { reset_after, recurrent }, weights, &input, initial, &c)
        }
    }
}

/// Backpropagation through time for [`forward`] with the same arguments: given the gradients
/// of the loss with respect to the outputs (`[B, T, H]`) and final states (`[B, H]`), returns
/// the gradients with respect to the input (`[B, T, I]`), the initial states (`[B, H]`) and
/// the four weight tensors (their own shapes). The forward pass is recomputed.
///
/// # Errors
/// As [`forward`], and when a gradient's shape disagrees with the output it belongs to.
pub fn backward<F: Real>(
    kind: CellKind,
    weights: &LayerWeights<F>,
    input: ArrayView3<F>,
    initial: &InitialState<F>,
    grads: &OutputGrads<F>,
) -> Result<Gradients<F>> {
    let c = check(kind, weights, &input, initial)?;
    match kind {
        CellKind::Rnn(nonlinearity) => backward_with(&RnnCell { nonlinearity }, weights, &input, initial, grads, &c),
        CellKind::Lstm { recurrent } => backward_with(&LstmCell { recurrent }, weights, &input, initial, grads, &c),
        CellKind::Gru { reset_after, recurrent } => {
            backward_with(&GruCell { reset_after, recurrent }, weights, &input, initial, grads, &c)
        }
    }
}
