//! A model's backward pass: the gradient of every parameter from the gradient of its output,
//! layer by layer from the last, through the recurrent layers' stacked layers and directions.

use super::config::{LayerSpec, Merge, RecurrentLayerSpec};
use super::forward::{Cache, ForwardTrace};
use super::init::{invalid, LayerInfo, Model};
use super::layers::activation_backward;
use crate::error::Result;
use crate::kernels::linalg::{column_sums, gemm};
use crate::kernels::real::Real;
use crate::kernels::tensor::into_vec;
use crate::kernels::tensor::matrix;
use crate::rnn::cells::AnyCell;
use crate::rnn::{backward_sequence, Packing, Trace};
use ndarray::Array2;

impl<F: Real> Model<F> {
    /// Gradients of every parameter (same order and sizes as [`Model::tensors`]) given the
    /// gradient of the loss with respect to the last layer's output: `d_logits` before its
    /// activation when `pre_activation` (softmax/sigmoid fused into the loss), else after.
    /// The trace is consumed: each layer's cache is freed once its gradients are computed
    /// (take [`ForwardTrace::state`] out first to keep it).
    pub fn backward(&self, trace: ForwardTrace<F>, d_last: Array2<F>, pre_activation: bool) -> Result<Vec<Vec<F>>> {
        // Every gradient is written whole by its layer, except the embedding's (accumulated).
        let mut grads: Vec<Vec<F>> = vec![Vec::new(); self.tensors.len()];
        let ForwardTrace { mut caches, batch, logits, output, sequence: _, state } = trace;
        drop((logits, output, state));
        let packing = &batch.packing;
        let mut d = d_last;
        for (i, info) in self.layers.iter().enumerate().rev() {
            let last = i + 1 == self.layers.len();
            let cache = caches.pop().ok_or_else(|| invalid("trace", "a trace of this model", "a shorter trace"))?;
            match (info.config, cache) {
                (LayerSpec::Dense { units, activation }, Cache::Dense { input, output }) => {
                    let mut d_pre = d;
                    if let (false, Some(output)) = (last && pre_activation, &output) {
                        activation_backward(activation, output, &mut d_pre);
                    }
                    let w = &self.tensors[info.first_tensor];
                    // Products accumulate into fresh zeros (β = 1): one pass of zeroing, not two.
                    let mut dw = Array2::zeros((units, info.input_width));
                    gemm(F::one(), d_pre.t(), input.view(), F::one(), dw.view_mut());
                    grads[info.first_tensor] = into_vec(dw);
                    let mut db = ndarray::Array1::zeros(units);
                    column_sums(d_pre.view(), db.view_mut());
                    grads[info.first_tensor + 1] = db.to_vec();
                    if i == 0 {
                        break;
                    }
                    let wm = matrix(&w.name, &w.data, units, info.input_width)?;
                    let mut dx = Array2::zeros((input.nrows(), info.input_width));
                    gemm(F::one(), d_pre.view(), wm, F::one(), dx.view_mut());
                    d = dx;
                }
                (LayerSpec::Recurrent(r), Cache::Recurrent { inputs, traces, masks, input_mask }) => {
                    d = self.recurrent_backward(info, &r, inputs, traces, &masks, d, packing, &mut grads, i > 0)?;
                    if let Some(mask) = input_mask.filter(|_| i > 0) {
                        // The input was read through its dropout mask: so is its gradient.
                        super::forward::mask_by_sequence(&mut d, &mask, packing);
                    }
                    if i == 0 {
                        break;
                    }
                }
                (LayerSpec::Embedding { dim }, Cache::Embedding { ids }) => {
                    let g = &mut grads[info.first_tensor];
                    g.resize(self.tensors[info.first_tensor].data.len(), F::zero());
                    for (row, &id) in d.rows().into_iter().zip(&ids) {
                        let dst = &mut g[id as usize * dim..(id as usize + 1) * dim];
                        dst.iter_mut().zip(row).for_each(|(a, &v)| *a = *a + v);
                    }
                }
                _ => return Err(invalid("trace", "a trace of this model", "a trace of another model")),
            }
        }
        Ok(grads)
    }

    #[allow(clippy::too_many_arguments)]
    fn recurrent_backward(
        &self,
        info: &LayerInfo,
        r: &RecurrentLayerSpec,
        mut inputs: Vec<Array2<F>>,
        mut traces: Vec<Trace<F>>,
        masks: &[Vec<F>],
        mut d_out: Array2<F>,
        packing: &Packing,
        grads: &mut [Vec<F>],
        input_grad: bool,
    ) -> Result<Array2<F>> {
        let cell = AnyCell::new(r.cell);
        let h = r.hidden_size;
        let dirs = r.directions();
        let n = packing.rows();
        // Per direction of the top layer: the gradient of its packed outputs or final states.
        let split = |a: &Array2<F>, d: usize| -> Vec<F> {
            let cols = if dirs == 2 && r.merge == Merge::Sum { 0..h } else { d * h..(d + 1) * h };
            a.slice(ndarray::s![.., cols]).iter().copied().collect()
        };
        if r.go_backwards && r.return_sequences {
            // The output was reversed in time; so is its gradient (the reversal is its own inverse).
            super::layers::reverse_in_time(&mut d_out, packing);
        }
        let mut d_seq: Vec<Vec<F>> = vec![Vec::new(); dirs];
        let mut d_fin: Vec<Vec<F>> = vec![Vec::new(); dirs];
        let target = if r.return_sequences { &mut d_seq } else { &mut d_fin };
        if dirs == 1 {
            // One direction: the gradient is the layer's whole output gradient (no copy).
            target[0] = into_vec(d_out);
        } else {
            for (d, t) in target.iter_mut().enumerate() {
                *t = split(&d_out, d);
            }
            drop(d_out);
        }
        let mut dx = Array2::zeros((0, 0));
        for l in (0..r.num_layers).rev() {
            let x = inputs.pop().ok_or_else(|| invalid("trace", "a trace of this model", "a shorter trace"))?;
            // The model's own input needs no gradient (nothing before it learns).
            let need_dx = l > 0 || input_grad;
            dx = if need_dx { Array2::zeros(x.dim()) } else { Array2::zeros((0, x.ncols())) };
            let layer_traces = traces.split_off(l * dirs);
            for (d, trace) in layer_traces.into_iter().enumerate() {
                let k = l * dirs + d;
                let first = info.first_tensor + 4 * k;
                let w = self.weights(first)?;
                let g = backward_sequence(&cell, &w, x.view(), trace, &d_seq[d], &d_fin[d], &[], need_dx)?;
                if need_dx {
                    dx.zip_mut_with(&g.input, |a, &v| *a = *a + v);
                }
                grads[first] = into_vec(g.weights.weight_ih);
                grads[first + 1] = into_vec(g.weights.weight_hh);
                grads[first + 2] = g.weights.bias_ih.to_vec();
                grads[first + 3] = g.weights.bias_hh.to_vec();
            }
            if l > 0 {
                if let Some(mask) = masks.get(l - 1) {
                    dx.iter_mut().zip(mask).for_each(|(v, &m)| *v = *v * m);
                }
                for d in 0..dirs {
                    d_seq[d] = dx.slice(ndarray::s![.., d * h..(d + 1) * h]).iter().copied().collect();
                    d_fin[d] = Vec::new();
                }
            }
        }
        debug_assert!(dx.nrows() == n || !input_grad);
        Ok(dx)
    }
}
