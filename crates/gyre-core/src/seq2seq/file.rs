//! A [`Seq2Seq`] in one `.safetensors` file: its parameters under their names, metadata
//! `format` (`"gyre-seq2seq"`), `format_version`, `config` (the JSON of [`Seq2SeqConfig`]),
//! `training` (`{"epochs": n}`), `optimizer` (`{"config": …, "step": n}` when saved with one,
//! its buffers as tensors `optimizer/{parameter}/{buffer}`) and `user` (the TypeScript layer's
//! tokenizers).

use super::{Seq2Seq, Seq2SeqConfig};
use crate::error::Result;
use crate::io::model_file::{
    bad, check_format, checked_tensors, entries, serialize_with_optimizer, training, SavedOptimizer,
};
use crate::io::safetensors::parse;
use crate::optim::Optimizer;
use std::collections::BTreeMap;

/// The `format` metadata value of an encoder–decoder file.
pub const FORMAT: &str = "gyre-seq2seq";
const FORMAT_VERSION: u32 = 1;

/// A loaded encoder–decoder file.
#[derive(Debug)]
pub struct SavedSeq2Seq {
    /// The model.
    pub model: Seq2Seq<f32>,
    /// Epochs trained so far.
    pub epochs: usize,
    /// The optimizer, when the file holds one.
    pub optimizer: Option<Optimizer<f32>>,
    /// The `user` metadata string, when present.
    pub user: Option<String>,
}

/// The bytes of a file holding `model`, its trained `epochs`, `optimizer` (if given) and
/// `user`.
///
/// # Errors
/// When the optimizer was made for other parameters.
pub fn save(
    model: &Seq2Seq<f32>,
    epochs: usize,
    optimizer: Option<&Optimizer<f32>>,
    user: Option<&str>,
) -> Result<Vec<u8>> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("config".to_string(), model.config().to_json());
    meta.insert("training".to_string(), serde_json::json!({ "epochs": epochs }).to_string());
    if let Some(u) = user {
        meta.insert("user".to_string(), u.to_string());
    }
    let tensors: Vec<(&str, &[usize], &[f32])> = model.params().collect();
    let params = entries(model.params().map(|(n, s, _)| (n, s)));
    serialize_with_optimizer(&tensors, meta, optimizer.map(|o| (o, params.as_slice())))
}

/// Loads a file written by [`save`], checking the format, the configuration, every tensor's
/// presence, shape and finiteness, and that no tensor is left unaccounted for.
///
/// # Errors
/// [`CoreError::Format`] naming what is wrong (a missing or extra tensor by name, a shape
/// beside the one the configuration needs, a bad metadata entry).
pub fn load(bytes: &[u8]) -> Result<SavedSeq2Seq> {
    let file = parse(bytes)?;
    let meta = &file.metadata;
    check_format(
        meta,
        FORMAT,
        FORMAT_VERSION,
        "is not an encoder–decoder (seq2seq) model",
        "no \"format\": not a gyre file",
    )?;
    let config_json = meta.get("config").ok_or_else(|| bad("__metadata__.config", "missing"))?;
    let config = Seq2SeqConfig::from_json(config_json).map_err(|e| bad("__metadata__.config", e.to_string()))?;
    let shapes = Seq2Seq::<f32>::param_shapes(&config)?;
    let (epochs, _) = training(meta)?;
    let saved_optimizer = SavedOptimizer::of(meta)?;
    let params = entries(shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())));
    let mut expected: BTreeMap<String, Vec<usize>> = shapes.iter().cloned().collect();
    if let Some(o) = &saved_optimizer {
        o.expect(&params, &mut expected);
    }
    let mut values = checked_tensors(&file.tensors, &expected, "the configuration")?;
    let weights: Vec<(String, Vec<f32>)> =
        shapes.iter().map(|(n, _)| (n.clone(), values.remove(n).unwrap_or_default())).collect();
    let sizes: Vec<usize> = shapes.iter().map(|(_, s)| s.iter().product()).collect();
    let optimizer = saved_optimizer.map(|o| o.restore(&params, &sizes, &mut values)).transpose()?;
    let model = Seq2Seq::from_params(config, weights)?;
    Ok(SavedSeq2Seq { model, epochs, optimizer, user: meta.get("user").cloned() })
}
