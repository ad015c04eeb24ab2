//! Weights of one recurrent layer in PyTorch's layout, and their gradients.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

/// Weights of one direction of one recurrent layer, named and laid out as in PyTorch
/// (`weight_ih_l0`, ...), gate blocks stacked along the rows in the cell's gate order
/// (LSTM `i, f, g, o`; GRU `r, z, n`).
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a, F> {
    /// `[G·H, I]` input-to-hidden weights.
    pub weight_ih: ArrayView2<'a, F>,
    /// `[G·H, H]` hidden-to-hidden weights.
    pub weight_hh: ArrayView2<'a, F>,
    /// `[G·H]` input-to-hidden bias.
    pub bias_ih: ArrayView1<'a, F>,
    /// `[G·H]` hidden-to-hidden bias.
    pub bias_hh: ArrayView1<'a, F>,
}

impl<F> LayerWeights<'_, F> {
    /// The same weights, their views borrowed for a shorter time.
    pub fn reborrow(&self) -> LayerWeights<'_, F> {
        LayerWeights {
            weight_ih: self.weight_ih.view(),
            weight_hh: self.weight_hh.view(),
            bias_ih: self.bias_ih.view(),
            bias_hh: self.bias_hh.view(),
        }
    }
}

impl<'a, F: Real> LayerWeights<'a, F> {
    /// Checks the four shapes against `gates` blocks and `input_size` features; returns the
    /// hidden size `H` (taken from `weight_hh`'s columns).
    pub fn check(&self, gates: usize, input_size: usize) -> Result<usize> {
        let hidden = self.weight_hh.ncols();
        if hidden == 0 {
            return Err(CoreError::invalid("hidden size", "a positive integer", 0));
        }
        let gh = gates * hidden;
        let want2 = |what: &str, a: &ArrayView2<F>, cols: usize| -> Result<()> {
            if a.dim() != (gh, cols) {
                return Err(CoreError::shape(
                    what,
                    format!("[{gh}, {cols}]"),
                    format!("[{}, {}]", a.nrows(), a.ncols()),
                ));
            }
            Ok(())
        };
        want2("weight_hh", &self.weight_hh, hidden)?;
        want2("weight_ih", &self.weight_ih, input_size)?;
        for (what, b) in [("bias_ih", &self.bias_ih), ("bias_hh", &self.bias_hh)] {
            if b.len() != gh {
                return Err(CoreError::shape(what, format!("[{gh}]"), format!("[{}]", b.len())));
            }
        }
        Ok(hidden)
    }
}

/// Gradients of the loss with respect to a [`LayerWeights`], same names and shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightGrads<F> {
    /// `[G·H, I]`
    pub weight_ih: Array2<F>,
    /// `[G·H, H]`
    pub weight_hh: Array2<F>,
    /// `[G·H]`
    pub bias_ih: Array1<F>,
    /// `[G·H]`
    pub bias_hh: Array1<F>,
}
