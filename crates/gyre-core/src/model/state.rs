//! The recurrent state a model carries between calls (truncated backpropagation through time,
//! streams), and streams: one time step at a time for many independent sequences.

use super::batch::Inputs;
use super::config::{InputKind, LayerSpec, RecurrentLayerSpec};
use super::init::{invalid, Model, MAX_PARAMETERS};
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;
use crate::kernels::tensor::into_vec;

/// The state of the recurrent layers between calls (truncated BPTT, streaming): for each
/// recurrent layer, for each stacked layer and direction, `h: [B, H]` and `c: [B, H]` (LSTM).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelState<F> {
    /// `[layer][l·D + d]` hidden states `[B, H]`.
    pub hidden: Vec<Vec<Vec<F>>>,
    /// `[layer][l·D + d]` cell states `[B, H]` (empty for cells without one).
    pub cell: Vec<Vec<Vec<F>>>,
}

impl<F> Default for ModelState<F> {
    fn default() -> Self {
        ModelState { hidden: Vec::new(), cell: Vec::new() }
    }
}

impl<F: Real> Model<F> {
    /// The zero state of the recurrent layers for `batch` sequences (the starting state of
    /// [`Model::forward`]'s; [`Model::stream_state`] for streams).
    pub fn zero_state(&self, batch: usize) -> ModelState<F> {
        self.try_zero_state(batch).unwrap_or_default()
    }

    /// [`Model::zero_state`], refusing (instead of allocating) more than [`MAX_PARAMETERS`] values.
    pub fn try_zero_state(&self, batch: usize) -> Result<ModelState<F>> {
        let per: usize = self
            .layers
            .iter()
            .filter_map(|l| match l.config {
                LayerSpec::Recurrent(r) => {
                    let n = r.num_layers * r.directions();
                    Some(n * r.hidden_size * if r.cell.has_cell_state() { 2 } else { 1 })
                }
                _ => None,
            })
            .sum();
        if batch.checked_mul(per).is_none_or(|n| n > MAX_PARAMETERS) {
            return Err(invalid(
                "batch",
                format!("at most {} streams for this model", MAX_PARAMETERS / per.max(1)),
                batch,
            ));
        }
        Ok(self.zero_state_unchecked(batch))
    }

    /// Lengths of the vectors of a state of `batch` streams, hidden states then cell states, in
    /// [`ModelState`]'s order — what [`Model::step`] checks a state against without building one.
    fn state_lengths(&self, batch: usize) -> Vec<usize> {
        let recurrent = || {
            self.layers.iter().filter_map(|l| match l.config {
                LayerSpec::Recurrent(r) => Some((r.num_layers * r.directions(), r)),
                _ => None,
            })
        };
        let hidden = recurrent().flat_map(|(n, r)| std::iter::repeat_n(batch * r.hidden_size, n));
        let cell = recurrent()
            .flat_map(|(n, r)| std::iter::repeat_n(if r.cell.has_cell_state() { batch * r.hidden_size } else { 0 }, n));
        hidden.chain(cell).collect()
    }

    fn zero_state_unchecked(&self, batch: usize) -> ModelState<F> {
        let mut state = ModelState::default();
        for info in &self.layers {
            if let LayerSpec::Recurrent(r) = info.config {
                let n = r.num_layers * r.directions();
                let lstm = r.cell.has_cell_state();
                state.hidden.push(vec![vec![F::zero(); batch * r.hidden_size]; n]);
                state.cell.push(vec![if lstm { vec![F::zero(); batch * r.hidden_size] } else { Vec::new() }; n]);
            }
        }
        state
    }

    /// Refuses a model with a bidirectional recurrent layer as a stream: a stream runs one step
    /// at a time, and a backward direction needs the whole sequence (its first output depends
    /// on the last step).
    ///
    /// # Errors
    /// [`CoreError::InvalidArgument`] naming the first bidirectional or `go_backwards` layer.
    pub fn check_streamable(&self) -> Result<()> {
        for (i, info) in self.layers.iter().enumerate() {
            if let LayerSpec::Recurrent(RecurrentLayerSpec { bidirectional: true, .. }) = info.config {
                return Err(invalid(
                    format!("layers[{i}].bidirectional"),
                    format!(
                        "false for a stream (a stream runs one step at a time and cannot run layer {i}'s backward \
                         direction, which needs the whole sequence; use predict)"
                    ),
                    true,
                ));
            }
            if let LayerSpec::Recurrent(RecurrentLayerSpec { go_backwards: true, .. }) = info.config {
                return Err(invalid(
                    format!("layers[{i}].goBackwards"),
                    format!(
                        "false for a stream (a stream runs one step at a time and cannot run layer {i} from the \
                         last step to the first, which needs the whole sequence; use predict)"
                    ),
                    true,
                ));
            }
        }
        Ok(())
    }

    /// The zero state of `batch` independent streams, for [`Model::step`].
    ///
    /// # Errors
    /// As [`Model::check_streamable`] and [`Model::try_zero_state`].
    pub fn stream_state(&self, batch: usize) -> Result<ModelState<F>> {
        self.check_streamable()?;
        self.try_zero_state(batch)
    }

    /// One time step for `B` independent streams: `inputs` is `[B, 1, I]` (or `[B, 1]` token
    /// ids), `state` the streams' state (from [`Model::stream_state`] or an earlier step),
    /// updated in place. Returns the model's output at this step, `[B, O]`.
    ///
    /// # Errors
    /// When the model has a bidirectional layer ([`Model::check_streamable`]), or the input or
    /// the state does not fit the model (nothing is changed then).
    pub fn step(&self, inputs: Inputs<F>, state: &mut ModelState<F>) -> Result<Vec<F>> {
        self.check_streamable()?;
        let (b, t) = inputs.dims();
        if t != 1 {
            return Err(invalid("x", "one step per stream", format!("{t} steps")));
        }
        let lens: Vec<usize> = state.hidden.iter().chain(&state.cell).flatten().map(Vec::len).collect();
        if lens != self.state_lengths(b) {
            return Err(CoreError::shape("state", format!("the state of {b} streams of this model"), "another shape"));
        }
        if let (Inputs::Tokens(x), InputKind::Tokens { vocab_size }) = (inputs, self.config.input) {
            if let Some((b, &id)) = x.iter().enumerate().find(|(_, &id)| id as usize >= vocab_size) {
                return Err(invalid(
                    format!("input[{b}]"),
                    format!("a token id below the vocabulary size {vocab_size}"),
                    id,
                ));
            }
        }
        let batch = self.pack(inputs, None)?;
        let inferred = self.infer(&batch, Some(state), None)?;
        if inferred.state.hidden.len() != state.hidden.len() {
            return Err(CoreError::shape("state", "one entry per recurrent layer", "another count"));
        }
        *state = inferred.state;
        Ok(into_vec(inferred.output))
    }
}
