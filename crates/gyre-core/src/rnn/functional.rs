//! The batch-first functional API: one recurrent layer direction over a batch of sequences,
//! forward and backward, with explicit weights. This is what the Node binding exposes.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::rnn::cell::Cell;
use crate::rnn::cells::{GateActivation, GruCell, LstmCell, Nonlinearity, RnnCell};
use crate::rnn::sequence::forward_sequence;
use crate::rnn::weights::{LayerWeights, WeightGrads};
use crate::rnn::{backward_sequence, Packing};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

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

impl<F> InitialState<'_, F> {
    /// The same states, their views borrowed for a shorter time.
    pub fn reborrow(&self) -> InitialState<'_, F> {
        InitialState { hidden: self.hidden.as_ref().map(|h| h.view()), cell: self.cell.as_ref().map(|c| c.view()) }
    }
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

/// How the sequences of a functional call run: their lengths and direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct SequenceOptions<'a> {
    /// `[B]` each sequence's steps (1 … `T`; the steps past them are padding: outputs 0 there,
    /// inputs unread, the final state taken at the sequence's last step). `None`: all `T`.
    pub lengths: Option<&'a [usize]>,
    /// Run each sequence from its last step to its first (outputs stay at their steps; the
    /// final state is the one after the first step).
    pub reverse: bool,
}

/// Where each sequence's steps are in the packed rows: the batch sorted by decreasing length
/// (`order[i]` the original index of sorted sequence `i`, stable), packed time-major.
struct Layout {
    order: Vec<usize>,
    packing: Packing,
}

impl Layout {
    fn new(batch: usize, steps: usize, lengths: Option<&[usize]>) -> Result<Self> {
        let Some(lengths) = lengths else {
            return Ok(Layout { order: (0..batch).collect(), packing: Packing::uniform(batch, steps)? });
        };
        if lengths.len() != batch {
            return Err(CoreError::shape(
                "lengths",
                format!("{batch} values (one per sequence)"),
                format!("{}", lengths.len()),
            ));
        }
        if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, &l)| l == 0 || l > steps) {
            return Err(CoreError::invalid(format!("lengths[{i}]"), format!("an integer in 1..={steps}"), l));
        }
        let mut order: Vec<usize> = (0..batch).collect();
        order.sort_by_key(|&b| std::cmp::Reverse(lengths[b]));
        let sorted: Vec<usize> = order.iter().map(|&b| lengths[b]).collect();
        Ok(Layout { order, packing: Packing::from_sorted_lengths(&sorted)? })
    }

    /// `[B, T, X]` batch-first to the packed `[N, X]` rows.
    fn pack<F: Real>(&self, x: &ArrayView3<F>) -> Array2<F> {
        let mut out = Array2::zeros((self.packing.rows(), x.dim().2));
        for t in 0..self.packing.steps() {
            let at = self.packing.offset(t);
            for i in 0..self.packing.rows_at(t) {
                out.row_mut(at + i).assign(&x.slice(ndarray::s![self.order[i], t, ..]));
            }
        }
        out
    }

    /// Packed `[N, X]` rows to `[B, T, X]` batch-first, zeros at the padded steps.
    fn unpack<F: Real>(&self, rows: ArrayView2<F>, steps: usize) -> Array3<F> {
        let mut out = Array3::zeros((self.order.len(), steps, rows.ncols()));
        for t in 0..self.packing.steps() {
            let at = self.packing.offset(t);
            for i in 0..self.packing.rows_at(t) {
                out.slice_mut(ndarray::s![self.order[i], t, ..]).assign(&rows.row(at + i));
            }
        }
        out
    }

    /// `[B, H]` states in the original order to the sorted order, flat.
    fn sort_states<F: Real>(&self, s: Option<&ArrayView2<F>>, hidden: usize) -> Vec<F> {
        let mut out = vec![F::zero(); self.order.len() * hidden];
        if let Some(s) = s {
            for (i, &b) in self.order.iter().enumerate() {
                out[i * hidden..(i + 1) * hidden].iter_mut().zip(s.row(b)).for_each(|(o, &v)| *o = v);
            }
        }
        out
    }

    /// Flat `[B, H]` states in the sorted order back to the original order.
    fn unsort_states<F: Real>(&self, what: &str, s: &[F], hidden: usize) -> Result<Array2<F>> {
        let mut out = Array2::zeros((self.order.len(), hidden));
        for (i, &b) in self.order.iter().enumerate() {
            let row = s
                .get(i * hidden..(i + 1) * hidden)
                .ok_or_else(|| CoreError::shape(what, "[batch, hidden]", "fewer values"))?;
            out.row_mut(b).assign(&ndarray::ArrayView1::from(row));
        }
        Ok(out)
    }
}

/// `$body` with `$cell` bound to the cell of kind `$kind` (one compiled copy per cell).
macro_rules! with_cell {
    ($kind:expr, $cell:ident => $body:expr) => {
        match $kind {
            CellKind::Rnn(nonlinearity) => {
                let $cell = RnnCell { nonlinearity };
                $body
            }
            CellKind::Lstm { recurrent } => {
                let $cell = LstmCell { recurrent };
                $body
            }
            CellKind::Gru { reset_after, recurrent } => {
                let $cell = GruCell { reset_after, recurrent };
                $body
            }
        }
    };
}

fn run_forward<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    x: &ArrayView3<F>,
    init: &InitialState<F>,
    c: &Checked,
    layout: &Layout,
    reverse: bool,
) -> Result<(Array2<F>, crate::rnn::Trace<F>)> {
    let xt = layout.pack(x);
    let h0 = layout.sort_states(init.hidden.as_ref(), c.hidden);
    let c0 = if cell.has_cell_state() { layout.sort_states(init.cell.as_ref(), c.hidden) } else { Vec::new() };
    let trace = forward_sequence(cell, w, xt.view(), &layout.packing, reverse, &h0, &c0)?;
    Ok((xt, trace))
}

fn forward_with<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    x: &ArrayView3<F>,
    init: &InitialState<F>,
    c: &Checked,
    opts: &SequenceOptions,
) -> Result<ForwardOutput<F>> {
    let layout = Layout::new(c.batch, c.steps, opts.lengths)?;
    let xt = layout.pack(x);
    let h0 = layout.sort_states(init.hidden.as_ref(), c.hidden);
    let c0 = if cell.has_cell_state() { layout.sort_states(init.cell.as_ref(), c.hidden) } else { Vec::new() };
    let o = crate::rnn::sequence::infer_sequence(cell, w, None, xt.view(), &layout.packing, opts.reverse, &h0, &c0)?;
    let out = crate::kernels::tensor::matrix("output", &o.h, layout.packing.rows(), c.hidden)?;
    let state = RecurrentState {
        hidden: layout.unsort_states("h_n", &o.h_n, c.hidden)?,
        cell: if cell.has_cell_state() { Some(layout.unsort_states("c_n", &o.c_n, c.hidden)?) } else { None },
    };
    Ok(ForwardOutput { output: layout.unpack(out, c.steps), state })
}

fn backward_with<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    x: &ArrayView3<F>,
    init: &InitialState<F>,
    grads: &OutputGrads<F>,
    c: &Checked,
    opts: &SequenceOptions,
) -> Result<Gradients<F>> {
    check_grads(cell, grads, c)?;
    let layout = Layout::new(c.batch, c.steps, opts.lengths)?;
    let (xt, trace) = run_forward(cell, w, x, init, c, &layout, opts.reverse)?;
    backward_from(cell, w, &layout, xt, trace, grads, c)
}

/// Checks the gradients of a call's outputs against its sizes.
fn check_grads<F: Real, C: Cell<F>>(cell: &C, grads: &OutputGrads<F>, c: &Checked) -> Result<()> {
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
    let kind = if cell.has_cell_state() { CellKind::LSTM } else { CellKind::gru(true) };
    check_state("grad_h_n", kind, grads.hidden.as_ref(), c.batch, c.hidden, false)?;
    check_state("grad_c_n", kind, grads.cell.as_ref(), c.batch, c.hidden, true)
}

/// The backward pass from a training forward pass's packed input `xt` and trace.
fn backward_from<F: Real, C: Cell<F>>(
    cell: &C,
    w: &LayerWeights<F>,
    layout: &Layout,
    xt: Array2<F>,
    trace: crate::rnn::Trace<F>,
    grads: &OutputGrads<F>,
    c: &Checked,
) -> Result<Gradients<F>> {
    let d_out = grads.output.as_ref().map(|g| layout.pack(g).iter().copied().collect::<Vec<F>>()).unwrap_or_default();
    let d_hn: Vec<F> =
        if grads.hidden.is_some() { layout.sort_states(grads.hidden.as_ref(), c.hidden) } else { Vec::new() };
    let d_cn: Vec<F> =
        if grads.cell.is_some() { layout.sort_states(grads.cell.as_ref(), c.hidden) } else { Vec::new() };
    let g = backward_sequence(cell, w, xt.view(), trace, &d_out, &d_hn, &d_cn, true)?;
    Ok(Gradients {
        input: layout.unpack(g.input.view(), c.steps),
        initial: RecurrentState {
            hidden: layout.unsort_states("grad_h0", &g.h0, c.hidden)?,
            cell: if cell.has_cell_state() { Some(layout.unsort_states("grad_c0", &g.c0, c.hidden)?) } else { None },
        },
        weights: g.weights,
    })
}

/// A forward pass kept for its backward pass ([`forward_traced`], [`backward_traced`]): the
/// call's sizes, the packed input and the training pass's trace.
pub(crate) struct TracedForward<F> {
    kind: CellKind,
    checked: Checked,
    layout: Layout,
    xt: Array2<F>,
    trace: crate::rnn::Trace<F>,
}

/// [`forward_sequences`] keeping what backpropagation needs, so that [`backward_traced`] does
/// not run the forward pass again: the same outputs and final states, bit for bit (the
/// training pass's arithmetic is the inference pass's).
///
/// # Errors
/// As [`forward_sequences`].
pub(crate) fn forward_traced<F: Real>(
    kind: CellKind,
    weights: &LayerWeights<F>,
    input: ArrayView3<F>,
    initial: &InitialState<F>,
    opts: &SequenceOptions,
) -> Result<(ForwardOutput<F>, TracedForward<F>)> {
    let c = check(kind, weights, &input, initial)?;
    let layout = Layout::new(c.batch, c.steps, opts.lengths)?;
    let (xt, trace) =
        with_cell!(kind, cell => run_forward(&cell, weights, &input, initial, &c, &layout, opts.reverse)?);
    let h = c.hidden;
    let out = crate::kernels::tensor::matrix("output", trace.outputs(), layout.packing.rows(), h)?;
    // Each sequence's final states: the rows of its last step processed.
    let last = |b: usize| layout.packing.offset(if opts.reverse { 0 } else { layout.packing.length(b) - 1 }) + b;
    let finals = |rows: &[F]| -> Vec<F> {
        (0..c.batch).flat_map(|b| rows[last(b) * h..(last(b) + 1) * h].iter().copied()).collect()
    };
    let state = RecurrentState {
        hidden: layout.unsort_states("h_n", &finals(&trace.h), h)?,
        cell: if kind.has_cell_state() { Some(layout.unsort_states("c_n", &finals(&trace.c), h)?) } else { None },
    };
    let output = ForwardOutput { output: layout.unpack(out, c.steps), state };
    Ok((output, TracedForward { kind, checked: c, layout, xt, trace }))
}

/// [`backward_sequences`] from a [`forward_traced`] pass of the same `weights` (not run again).
///
/// # Errors
/// As [`backward_sequences`].
pub(crate) fn backward_traced<F: Real>(
    weights: &LayerWeights<F>,
    traced: TracedForward<F>,
    grads: &OutputGrads<F>,
) -> Result<Gradients<F>> {
    let TracedForward { kind, checked: c, layout, xt, trace } = traced;
    with_cell!(kind, cell => {
        check_grads(&cell, grads, &c)?;
        backward_from(&cell, weights, &layout, xt, trace, grads, &c)
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
    forward_sequences(kind, weights, input, initial, &SequenceOptions::default())
}

/// [`forward`] over sequences of their own lengths, in either direction ([`SequenceOptions`]).
///
/// # Errors
/// As [`forward`], and when a length is 0 or exceeds `T`, or there is not one per sequence.
pub fn forward_sequences<F: Real>(
    kind: CellKind,
    weights: &LayerWeights<F>,
    input: ArrayView3<F>,
    initial: &InitialState<F>,
    opts: &SequenceOptions,
) -> Result<ForwardOutput<F>> {
    let c = check(kind, weights, &input, initial)?;
    with_cell!(kind, cell => forward_with(&cell, weights, &input, initial, &c, opts))
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
    backward_sequences(kind, weights, input, initial, grads, &SequenceOptions::default())
}

/// [`backward`] for [`forward_sequences`] with the same options: the gradients at padded steps
/// are 0 (their inputs are not read; their outputs' gradients are ignored).
///
/// # Errors
/// As [`backward`] and [`forward_sequences`].
pub fn backward_sequences<F: Real>(
    kind: CellKind,
    weights: &LayerWeights<F>,
    input: ArrayView3<F>,
    initial: &InitialState<F>,
    grads: &OutputGrads<F>,
    opts: &SequenceOptions,
) -> Result<Gradients<F>> {
    let c = check(kind, weights, &input, initial)?;
    with_cell!(kind, cell => backward_with(&cell, weights, &input, initial, grads, &c, opts))
}
