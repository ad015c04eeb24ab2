//! A [`Graph`] in one `.safetensors` file: its parameters under their names, metadata `format`
//! (`"gyre-graph"`), `format_version`, `graph` (the JSON of [`GraphSpec`]), `training`
//! (`{"epochs": n}`), `optimizer` (`{"config": …, "step": n}` when saved with one, its buffers as
//! tensors `optimizer/{parameter}/{buffer}`, so that training resumed from the file continues
//! exactly) and `user` (the TypeScript layer's own entry).

use super::{Graph, GraphSpec};
use crate::error::Result;
use crate::io::model_file::{
    bad, check_format, checked_tensors, entries, serialize_with_optimizer, training, SavedOptimizer,
};
use crate::io::safetensors::parse;
use crate::optim::Optimizer;
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
    /// The optimizer, when the file holds one.
    pub optimizer: Option<Optimizer<f32>>,
    /// The `user` metadata string, when present.
    pub user: Option<String>,
}

/// The bytes of a file holding `graph`, its trained `epochs`, `optimizer` (if given) and `user`.
///
/// # Errors
/// An optimizer made for other parameters; a file beyond the format's limits.
pub fn save(
    graph: &Graph<f32>,
    epochs: usize,
    optimizer: Option<&Optimizer<f32>>,
    user: Option<&str>,
) -> Result<Vec<u8>> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("graph".to_string(), graph.spec().to_json());
    meta.insert("training".to_string(), serde_json::json!({ "epochs": epochs }).to_string());
    if let Some(u) = user {
        meta.insert("user".to_string(), u.to_string());
    }
    let tensors: Vec<(&str, &[usize], &[f32])> = graph.params().collect();
    let params = entries(graph.param_shapes());
    serialize_with_optimizer(&tensors, meta, optimizer.map(|o| (o, params.as_slice())))
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
    let saved_optimizer = SavedOptimizer::of(meta)?;
    let shapes: Vec<(String, Vec<usize>)> = graph.param_shapes().map(|(n, s)| (n.to_string(), s.to_vec())).collect();
    let params = entries(shapes.iter().map(|(n, s)| (n.as_str(), s.as_slice())));
    let mut expected: BTreeMap<String, Vec<usize>> = shapes.iter().cloned().collect();
    if let Some(o) = &saved_optimizer {
        o.expect(&params, &mut expected);
    }
    let mut values = checked_tensors(&file.tensors, &expected, "the graph")?;
    let optimizer = saved_optimizer.map(|o| o.restore(&params, &graph.sizes(), &mut values)).transpose()?;
    for (name, _) in &shapes {
        graph.set_param(name, &values.remove(name).unwrap_or_default())?;
    }
    Ok(SavedGraph { graph, epochs, optimizer, user: meta.get("user").cloned() })
}
