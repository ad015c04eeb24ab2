//! Helpers shared by the integration tests: cells by name, owned weights, a loss.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::{CellKind, GateActivation, InitialState, LayerWeights, Nonlinearity, OutputGrads, Real};
use ndarray::{Array1, Array2, Array3};

pub const CELLS: [&str; 5] = ["rnn_tanh", "rnn_relu", "lstm", "gru", "gru_reset_before"];
/// LSTM and GRU with hard sigmoid gates (TensorFlow.js's and Keras 3's).
pub const HARD_CELLS: [&str; 4] =
    ["lstm_hard_tfjs", "lstm_hard_keras3", "gru_hard_tfjs", "gru_reset_before_hard_keras3"];

pub fn kind(name: &str) -> CellKind {
    match name {
        "rnn_tanh" => CellKind::Rnn(Nonlinearity::Tanh),
        "rnn_relu" => CellKind::Rnn(Nonlinearity::Relu),
        "lstm" => CellKind::LSTM,
        "gru" => CellKind::gru(true),
        "gru_reset_before" => CellKind::gru(false),
        "lstm_hard_tfjs" => CellKind::Lstm { recurrent: GateActivation::HardSigmoidTfjs },
        "lstm_hard_keras3" => CellKind::Lstm { recurrent: GateActivation::HardSigmoidKeras3 },
        "gru_hard_tfjs" => CellKind::Gru { reset_after: true, recurrent: GateActivation::HardSigmoidTfjs },
        "gru_reset_before_hard_keras3" => {
            CellKind::Gru { reset_after: false, recurrent: GateActivation::HardSigmoidKeras3 }
        }
        other => panic!("unknown cell {other}"),
    }
}

/// Every tensor of one forward/backward problem, owned.
#[derive(Clone, Debug)]
pub struct Problem<F> {
    pub kind: CellKind,
    pub x: Array3<F>,
    pub h0: Array2<F>,
    pub c0: Option<Array2<F>>,
    pub weight_ih: Array2<F>,
    pub weight_hh: Array2<F>,
    pub bias_ih: Array1<F>,
    pub bias_hh: Array1<F>,
    pub grad_output: Array3<F>,
    pub grad_h_n: Array2<F>,
    pub grad_c_n: Option<Array2<F>>,
}

impl<F: Real> Problem<F> {
    pub fn weights(&self) -> LayerWeights<'_, F> {
        LayerWeights {
            weight_ih: self.weight_ih.view(),
            weight_hh: self.weight_hh.view(),
            bias_ih: self.bias_ih.view(),
            bias_hh: self.bias_hh.view(),
        }
    }

    pub fn initial(&self) -> InitialState<'_, F> {
        InitialState { hidden: Some(self.h0.view()), cell: self.c0.as_ref().map(|c| c.view()) }
    }

    pub fn output_grads(&self) -> OutputGrads<'_, F> {
        OutputGrads {
            output: Some(self.grad_output.view()),
            hidden: Some(self.grad_h_n.view()),
            cell: self.grad_c_n.as_ref().map(|c| c.view()),
        }
    }

    /// `L = Σ output·grad_output + Σ h_n·grad_h_n + Σ c_n·grad_c_n`, whose gradients
    /// `backward` returns.
    pub fn loss(&self) -> F {
        let out = gyre_core::forward(self.kind, &self.weights(), self.x.view(), &self.initial()).expect("forward");
        let mut l = (&out.output * &self.grad_output).sum() + (&out.state.hidden * &self.grad_h_n).sum();
        if let (Some(c), Some(g)) = (&out.state.cell, &self.grad_c_n) {
            l = l + (c * g).sum();
        }
        l
    }

    /// Mutable flat access to the tensor called `name` (PyTorch names and `x`, `h0`, `c0`).
    pub fn tensor_mut(&mut self, name: &str) -> &mut [F] {
        let t = match name {
            "x" => self.x.as_slice_mut(),
            "h0" => self.h0.as_slice_mut(),
            "c0" => self.c0.as_mut().and_then(|c| c.as_slice_mut()),
            "weight_ih_l0" => self.weight_ih.as_slice_mut(),
            "weight_hh_l0" => self.weight_hh.as_slice_mut(),
            "bias_ih_l0" => self.bias_ih.as_slice_mut(),
            "bias_hh_l0" => self.bias_hh.as_slice_mut(),
            other => panic!("unknown tensor {other}"),
        };
        t.expect("contiguous tensor")
    }
}

/// Deterministic pseudo-random numbers in [-1, 1) (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    pub fn array<D: ndarray::Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(
        &mut self,
        shape: Sh,
        scale: f64,
    ) -> ndarray::Array<f64, D> {
        ndarray::Array::from_shape_simple_fn(shape, || self.next() * scale)
    }
}

/// A random problem with non-zero initial states and output gradients.
pub fn random_problem(name: &str, batch: usize, steps: usize, input: usize, hidden: usize, seed: u64) -> Problem<f64> {
    let kind = kind(name);
    let gh = kind.gates() * hidden;
    let mut r = Rng(seed);
    let lstm = kind.has_cell_state();
    Problem {
        kind,
        x: r.array((batch, steps, input), 1.0),
        h0: r.array((batch, hidden), 0.8),
        c0: lstm.then(|| r.array((batch, hidden), 0.8)),
        weight_ih: r.array((gh, input), 0.6),
        weight_hh: r.array((gh, hidden), 0.6),
        bias_ih: r.array(gh, 0.3),
        bias_hh: r.array(gh, 0.3),
        grad_output: r.array((batch, steps, hidden), 1.0),
        grad_h_n: r.array((batch, hidden), 1.0),
        grad_c_n: lstm.then(|| r.array((batch, hidden), 1.0)),
    }
}
