//! Datasets as JavaScript gives them (flat typed arrays) and their owned copies, and the scan of
//! an input for non-finite values.

use crate::error::{contain, Result};
use gyre_core::kernels::scan;
use gyre_core::model::{InputKind, Inputs};
use gyre_core::train::{Dataset, Targets};
use gyre_core::{threads, CoreError};
use napi::bindgen_prelude::{Float32Array, Uint32Array};
use napi_derive::napi;
use ndarray::{Array2, Array3};

/// A dataset as flat typed arrays: `samples` sequences of `steps` steps.
#[napi(object)]
pub struct DataArgs {
    /// Number of sequences `S`.
    pub samples: u32,
    /// Steps per sequence `T` (the padded length).
    pub steps: u32,
    /// `[S, T, I]` float features (models without an embedding).
    pub features: Option<Float32Array>,
    /// `[S, T]` token ids (models starting with an embedding).
    pub tokens: Option<Uint32Array>,
    /// `[S]` lengths, each in `1..=T` (default: all `T`).
    pub lengths: Option<Uint32Array>,
    /// Class ids: `[S]`, or `[S, T]` for a model that outputs a sequence.
    pub classes: Option<Uint32Array>,
    /// Float targets: `[S, O]`, or `[S, T, O]` for a model that outputs a sequence.
    pub values: Option<Float32Array>,
    /// `[S]` each sample's weight in the loss (default: all 1).
    pub weights: Option<Float32Array>,
}

/// An owned copy of [`DataArgs`]: training never reads JavaScript memory after the call.
pub(crate) struct OwnedData {
    pub(crate) features: Option<Array3<f32>>,
    pub(crate) tokens: Option<Array2<u32>>,
    pub(crate) lengths: Option<Vec<usize>>,
    pub(crate) classes: Option<Vec<u32>>,
    pub(crate) values: Option<Vec<f32>>,
    pub(crate) weights: Option<Vec<f32>>,
}

impl OwnedData {
    pub(crate) fn copy(d: &DataArgs, input: InputKind, what: &str) -> gyre_core::Result<Self> {
        let (s, t) = (d.samples as usize, d.steps as usize);
        gyre_core::tensor::positive(&format!("{what} samples"), s)?;
        gyre_core::tensor::positive(&format!("{what} steps"), t)?;
        let (features, tokens) = match input {
            InputKind::Features { size } => {
                let x = d.features.as_deref().ok_or_else(|| CoreError::Missing {
                    what: format!("{what} x"),
                    context: "as float features (the model has no embedding)".into(),
                })?;
                gyre_core::tensor::tensor3(&format!("{what} x"), x, s, t, size)?;
                let copy = Array3::from_shape_vec((s, t, size), threads::copied(x)?).map_err(|e| {
                    CoreError::ShapeMismatch {
                        what: format!("{what} x"),
                        expected: format!("[{s}, {t}, {size}]"),
                        got: e.to_string(),
                    }
                })?;
                (Some(copy), None)
            }
            InputKind::Tokens { .. } => {
                let x = d.tokens.as_deref().ok_or_else(|| CoreError::Missing {
                    what: format!("{what} x"),
                    context: "as token ids (the model starts with an embedding)".into(),
                })?;
                (None, Some(gyre_core::tensor::matrix(&format!("{what} x"), x, s, t)?.to_owned()))
            }
        };
        Ok(OwnedData {
            features,
            tokens,
            lengths: d.lengths.as_deref().map(|l| l.iter().map(|&v| v as usize).collect()),
            classes: d.classes.as_deref().map(<[u32]>::to_vec),
            values: d.values.as_deref().map(threads::copied).transpose()?,
            weights: d.weights.as_deref().map(<[f32]>::to_vec),
        })
    }

    pub(crate) fn inputs(&self) -> gyre_core::Result<Inputs<'_, f32>> {
        match (&self.features, &self.tokens) {
            (Some(f), _) => Ok(Inputs::Features(f.view())),
            (None, Some(t)) => Ok(Inputs::Tokens(t.view())),
            (None, None) => Err(CoreError::Missing { what: "x".into(), context: "for every call".into() }),
        }
    }

    pub(crate) fn dataset(&self) -> gyre_core::Result<Dataset<'_, f32>> {
        let targets = match (&self.classes, &self.values) {
            (Some(c), _) => Targets::Classes(c),
            (None, Some(v)) => Targets::Values(v),
            (None, None) => {
                return Err(CoreError::Missing { what: "y".into(), context: "for training and evaluation".into() })
            }
        };
        Ok(Dataset {
            inputs: self.inputs()?,
            lengths: self.lengths.as_deref(),
            targets,
            weights: self.weights.as_deref(),
        })
    }
}

/// Index of the first value of `data` that is NaN or infinite, or -1. `data` holds sequences of
/// `per` values each; only the first `counts[s]` values of sequence `s` are read (all of `data`
/// without `counts`). See [`scan::first_non_finite`].
#[napi(catch_unwind)]
pub fn first_non_finite(data: Float32Array, per: u32, counts: Option<Uint32Array>) -> Result<i64> {
    contain(|| Ok(scan::first_non_finite(&data, per as usize, counts.as_deref()).map_or(-1, |i| i as i64)))
}
