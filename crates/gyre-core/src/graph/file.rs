//! A [`Graph`] in one `.safetensors` file: its parameters under their names, metadata `format`
//! (`"gyre-graph"`), `format_version`, `graph` (the JSON of [`GraphSpec`]), `training`
//! (`{"epochs": n}`) and `user` (the TypeScript layer's own entry). The optimizer's state is not
//! kept: training resumed from a file starts a fresh optimizer.

use super::{Graph, GraphSpec};
use crate::error::Result;
use crate::io::model_file::{bad, check_names, json};
use crate::io::safetensors::{parse, serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => return Err(bad("__metadata__.format", format!("\"{other}\" is not a model graph"))),
        None => return Err(bad("__metadata__", "no \"format\": not a gyre file")),
    }
    let version: u32 = meta
        .get("format_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("__metadata__.format_version", "missing or not an integer"))?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(bad(
            "__metadata__.format_version",
            format!("{version} is not readable by this version of gyre (it reads 1..={FORMAT_VERSION})"),
        ));
    }
    let text = meta.get("graph").ok_or_else(|| bad("__metadata__.graph", "missing"))?;
    let spec = GraphSpec::from_json(text).map_err(|e| bad("__metadata__.graph", e.to_string()))?;
    let mut graph = Graph::<f32>::new(spec).map_err(|e| bad("__metadata__.graph", e.to_string()))?;
    let epochs = match meta.get("training") {
        Some(t) => json("training", t)?
            .get("epochs")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("__metadata__.training", "no integer \"epochs\""))? as usize,
        None => 0,
    };
    let expected: BTreeMap<String, Vec<usize>> =
        graph.param_shapes().map(|(n, s)| (n.to_string(), s.to_vec())).collect();
    let present: BTreeSet<&str> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    check_names(&expected, &present, "not in the graph")?;
    for t in &file.tensors {
        let want = &expected[t.name.as_str()];
        if &t.shape != want {
            return Err(bad(
                format!("tensor \"{}\"", t.name),
                format!("has shape {:?} but the graph needs {want:?}", t.shape),
            ));
        }
        let data = t.to_f32()?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("tensor \"{}\"", t.name), format!("value {} at index {i} is not finite", data[i])));
        }
        graph.set_param(&t.name, &data)?;
    }
    Ok(SavedGraph { graph, epochs, user: meta.get("user").cloned() })
}
