//! A [`Seq2Seq`] in one `.safetensors` file: its parameters under their names, metadata
//! `format` (`"gyre-seq2seq"`), `format_version`, `config` (the JSON of [`Seq2SeqConfig`]),
//! `training` (`{"epochs": n}`), `optimizer` (`{"config": …, "step": n}` when saved with one,
//! its buffers as tensors `optimizer/{parameter}/{buffer}`) and `user` (the TypeScript layer's
//! tokenizers).

use super::{Seq2Seq, Seq2SeqConfig};
use crate::error::{CoreError, Result};
use crate::io::model_file::{bad, check_format, checked_tensors, json, training};
use crate::io::safetensors::{parse, serialize};
use crate::optim::{NamedBuffer, Optimizer, OptimizerState};
use crate::train::{optimizer_from_json, optimizer_to_json};
use std::collections::BTreeMap;

/// The `format` metadata value of an encoder–decoder file.
pub const FORMAT: &str = "gyre-seq2seq";
const FORMAT_VERSION: u32 = 1;
const OPTIMIZER_PREFIX: &str = "optimizer/";

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
    let mut owned: Vec<(String, &[usize], &[f32])> = model.params().map(|(n, s, v)| (n.to_string(), s, v)).collect();
    let state;
    if let Some(o) = optimizer {
        if o.sizes().len() != owned.len() {
            return Err(CoreError::invalid("optimizer", "one made for this model's parameters", "another model's"));
        }
        state = o.state();
        meta.insert(
            "optimizer".to_string(),
            format!(r#"{{"config":{},"step":{}}}"#, optimizer_to_json(o.config()), state.step),
        );
        for ((name, shape, _), buffers) in model.params().zip(&state.params) {
            for b in buffers {
                owned.push((format!("{OPTIMIZER_PREFIX}{name}/{}", b.name), shape, b.data.as_slice()));
            }
        }
    }
    let refs: Vec<(&str, &[usize], &[f32])> = owned.iter().map(|(n, s, d)| (n.as_str(), *s, *d)).collect();
    serialize(&refs, &meta)
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
    let optimizer_meta = meta.get("optimizer").map(|o| json("optimizer", o)).transpose()?;
    let optimizer_config = optimizer_meta
        .as_ref()
        .map(|o| {
            let c = o.get("config").ok_or_else(|| bad("__metadata__.optimizer", "no \"config\""))?;
            optimizer_from_json(&c.to_string()).map_err(|e| bad("__metadata__.optimizer.config", e.to_string()))
        })
        .transpose()?;
    let mut expected: BTreeMap<String, Vec<usize>> = shapes.iter().cloned().collect();
    if let Some(c) = &optimizer_config {
        for (name, shape) in &shapes {
            for b in c.buffer_names() {
                expected.insert(format!("{OPTIMIZER_PREFIX}{name}/{b}"), shape.clone());
            }
        }
    }
    let mut values = checked_tensors(&file.tensors, &expected, "the configuration")?;
    let params: Vec<(String, Vec<f32>)> =
        shapes.iter().map(|(n, _)| (n.clone(), values.remove(n).unwrap_or_default())).collect();
    let model = Seq2Seq::from_params(config, params)?;
    let optimizer = match (optimizer_config, optimizer_meta) {
        (Some(c), Some(m)) => {
            let step = m
                .get("step")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| bad("__metadata__.optimizer", "no integer \"step\""))?;
            let sizes: Vec<usize> = model.params().map(|(_, _, v)| v.len()).collect();
            let mut o = Optimizer::new(c, &sizes)?;
            let params = shapes
                .iter()
                .map(|(name, _)| {
                    c.buffer_names()
                        .into_iter()
                        .map(|b| NamedBuffer {
                            name: b.to_string(),
                            data: values.remove(&format!("{OPTIMIZER_PREFIX}{name}/{b}")).unwrap_or_default(),
                        })
                        .collect()
                })
                .collect();
            o.load_state(OptimizerState { step, params }).map_err(|e| bad("optimizer state", e.to_string()))?;
            Some(o)
        }
        _ => None,
    };
    Ok(SavedSeq2Seq { model, epochs, optimizer, user: meta.get("user").cloned() })
}
