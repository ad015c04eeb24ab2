//! The recurrent state of independent streams, for step-by-step inference.

use crate::error::{contain, Result};
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
    pub fn batch(&self) -> Result<u32> {
        contain(|| Ok(self.batch))
    }

    /// Sets every state back to zeros (the start of new sequences).
    #[napi(catch_unwind)]
    pub fn reset(&mut self) -> Result<()> {
        contain(|| {
            for v in self.state.hidden.iter_mut().chain(self.state.cell.iter_mut()).flatten() {
                v.fill(0.0);
            }
            Ok(())
        })
    }

    /// An independent copy.
    #[napi(catch_unwind)]
    pub fn copy(&self) -> Result<StreamState> {
        contain(|| Ok(StreamState { state: self.state.clone(), batch: self.batch }))
    }

    /// All state values in one array (hidden then cell states, layer by layer); pass it to
    /// `NativeModel.stateFromArray` to restore.
    #[napi(catch_unwind)]
    pub fn to_array(&self) -> Result<Float32Array> {
        contain(|| {
            let flat: Vec<f32> =
                self.state.hidden.iter().chain(&self.state.cell).flatten().flatten().copied().collect();
            Ok(Float32Array::new(flat))
        })
    }
}
