//! The recurrent state of independent streams, for step-by-step inference.

use napi::bindgen_prelude::Float32Array;
use napi_derive::napi;

/// The recurrent state of `batch` independent streams of one model, for step-by-step
/// inference (a server keeping many live sequences holds one per sequence or per group).
#[napi]
pub struct StreamState {
    pub(crate) state: gyre_core::model::ModelState<f32>,
    pub(crate) batch: u32,
}

#[napi]
impl StreamState {
    /// Number of streams.
    #[napi(getter, catch_unwind)]
    pub fn batch(&self) -> u32 {
        self.batch
    }

    /// Sets every state back to zeros (the start of new sequences).
    #[napi(catch_unwind)]
    pub fn reset(&mut self) {
        for v in self.state.hidden.iter_mut().chain(self.state.cell.iter_mut()).flatten() {
            v.fill(0.0);
        }
    }

    /// An independent copy.
    #[napi(catch_unwind)]
    pub fn copy(&self) -> StreamState {
        StreamState { state: self.state.clone(), batch: self.batch }
    }

    /// All state values in one array (hidden then cell states, layer by layer); pass it to
    /// `NativeModel.stateFromArray` to restore.
    #[napi(catch_unwind)]
    pub fn to_array(&self) -> Float32Array {
        let flat: Vec<f32> = self.state.hidden.iter().chain(&self.state.cell).flatten().flatten().copied().collect();
        Float32Array::new(flat)
    }
}
