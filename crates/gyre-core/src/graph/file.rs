//! A [`Graph`] in one `.safetensors` file: its parameters under their names, metadata `format`
//! (`"gyre-graph"`), `format_version`, `graph` (the JSON of [`GraphSpec`]), `training`
//! (`{"epochs": n}`) and `user` (the TypeScript layer's own entry). The optimizer's state is not
//! kept: training resumed from a file starts a fresh optimizer.

use super::{Graph, GraphSpec};
use crate::error::Result;
use crate::io::model_file::{bad, check_format, checked_tensors, training};
use crate::io::safetensors::{parse, serialize};
use std::collections::BTreeMap;

/// The `format` metadata value of a graph file.
pub const FORMAT: &str = "gyre-graph";
const FORMAT_VERSION: u32 = 1;

/// A loaded graph file.
#[derive(Debug)]
pub struct SavedGraph {
    /// The model.
    pub graph: Graph<f32>,
    /// Epochs trained so far.
    pub epochs: usize,
    /// The `user` metadata string, when present.
    pub user: Option<String>,
}

/// The bytes of a file holding `graph`, its trained `epochs` and `user`.
///
/// # Errors
/// When the file would exceed the format's limits.
pub fn save(graph: &Graph<f32>, epochs: usize, user: Option<&str>) -> Result<Vec<u8>> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("graph".to_string(), graph.spec().to_json());
    meta.insert("training".to_string(), serde_json::json!({ "epochs": epochs }).to_string());
    if let Some(u) = user {
        meta.insert("user".to_string(), u.to_string());
    }
    let tensors: Vec<(&str, &[usize], &[f32])> = graph.params().collect();
    serialize(&tensors, &meta)
}

/// Loads a file written by [`save`], checking the format, the graph, every tensor's presence,
/// shape and finiteness, and that no tensor is left unaccounted for.
///
/// # Errors
/// [`crate::CoreError::Format`] naming what is wrong.
pub fn load(bytes: &[u8]) -> Result<SavedGraph> {
    let file = parse(bytes)?;
    let meta = &file.metadata;
    check_format(meta, FORMAT, FORMAT_VERSION, "is not a model graph", "no \"format\": not a gyre file")?;
    let text = meta.get("graph").ok_or_else(|| bad("__metadata__.graph", "missing"))?;
    let spec = GraphSpec::from_json(text).map_err(|e| bad("__metadata__.graph", e.to_string()))?;
    let mut graph = Graph::<f32>::new(spec).map_err(|e| bad("__metadata__.graph", e.to_string()))?;
    let (epochs, _) = training(meta)?;
    let expected: BTreeMap<String, Vec<usize>> =
        graph.param_shapes().map(|(n, s)| (n.to_string(), s.to_vec())).collect();
    for (name, data) in checked_tensors(&file.tensors, &expected, "the graph")? {
        graph.set_param(&name, &data)?;
    }
    Ok(SavedGraph { graph, epochs, user: meta.get("user").cloned() })
}
