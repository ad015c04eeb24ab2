//! A model in one `.safetensors` file: every parameter under its PyTorch-style name, the
//! model's JSON configuration and format version in `__metadata__`, and optionally the
//! optimizer's state so training resumes exactly.
//!
//! Metadata keys: `format` (`"gyre"`), `format_version`, `config` (the model's JSON form),
//! `training` (`{"epochs": n}`), `optimizer` (`{"config": {...}, "step": n}`, when saved with
//! one) and `user` (a JSON string the TypeScript layer keeps: tokenizer, normalization, ...).
//! Optimizer buffers are tensors named `optimizer/{parameter}/{buffer}`.

use crate::error::{CoreError, Result};
use crate::io::safetensors::{parse, serialize, TensorView};
use crate::model::{Model, ModelSpec};
use crate::optim::{NamedBuffer, Optimizer, OptimizerConfig, OptimizerState};
use crate::train::{optimizer_from_json, optimizer_to_json};
use std::collections::{BTreeMap, BTreeSet};

/// The `format` metadata value of a gyre model file.
pub const FORMAT: &str = "gyre";
/// Version of the model file (its layout and the configuration inside it) this build writes, and
/// the newest it reads. The only format version: the configuration has none of its own.
pub const FORMAT_VERSION: u32 = 1;

const OPTIMIZER_PREFIX: &str = "optimizer/";

/// A loaded model file.
#[derive(Debug)]
pub struct Saved {
    /// The model, with its weights and trained-epoch count.
    pub model: Model<f32>,
    /// The optimizer, when the file holds one.
    pub optimizer: Option<Optimizer<f32>>,
    /// The `user` metadata string, when present.
    pub user: Option<String>,
}

pub(crate) fn bad(what: impl Into<String>, detail: impl Into<String>) -> CoreError {
    CoreError::Format { what: what.into(), detail: detail.into() }
}

/// Parameters that are all trained, by name and shape, as the optimizer's part of a file sees them.
pub(crate) fn entries<'a>(params: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> Vec<ParamEntry<'a>> {
    params.into_iter().map(|(name, shape)| ParamEntry { name, shape, trained: true }).collect()
}

/// `model`'s tensors as the optimizer's part of a file sees them (frozen ones not trained).
fn model_entries(model: &Model<f32>) -> Vec<ParamEntry<'_>> {
    model.tensors.iter().map(|t| ParamEntry { name: &t.name, shape: &t.shape, trained: t.trainable }).collect()
}

/// The bytes of a `.safetensors` file holding `model`, `optimizer` (if given) and `user`.
pub fn save(model: &Model<f32>, optimizer: Option<&Optimizer<f32>>, user: Option<&str>) -> Result<Vec<u8>> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("format_version".to_string(), FORMAT_VERSION.to_string());
    meta.insert("config".to_string(), model.config().to_json());
    let mut training = serde_json::json!({ "epochs": model.trained_epochs });
    if let Some(p) = model.plateau.filter(|p| p.best.is_finite() && p.lr.is_finite()) {
        training["plateau"] = serde_json::json!({
            "lr": p.lr, "best": p.best, "badEpochs": p.bad_epochs, "cooldownLeft": p.cooldown_left });
    }
    meta.insert("training".to_string(), training.to_string());
    if let Some(u) = user {
        meta.insert("user".to_string(), u.to_string());
    }
    let tensors: Vec<(&str, &[usize], &[f32])> =
        model.tensors.iter().map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice())).collect();
    let entries = model_entries(model);
    serialize_with_optimizer(&tensors, meta, optimizer.map(|o| (o, entries.as_slice())))
}

/// Fails with one error listing the `expected` names absent from `present` and the `present`
/// names not expected (labelled `extra_label`).
pub(crate) fn check_names<V>(
    expected: &BTreeMap<String, V>,
    present: &BTreeSet<&str>,
    extra_label: &str,
) -> Result<()> {
    let missing: Vec<&str> = expected.keys().map(String::as_str).filter(|n| !present.contains(n)).collect();
    let extra: Vec<&str> = present.iter().copied().filter(|n| !expected.contains_key(*n)).collect();
    let mut detail = Vec::new();
    if !missing.is_empty() {
        detail.push(format!("missing {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        detail.push(format!("{extra_label}: {}", extra.join(", ")));
    }
    if detail.is_empty() {
        return Ok(());
    }
    Err(bad("tensors", detail.join("; ")))
}

pub(crate) fn json(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| bad(format!("__metadata__.{what}"), format!("invalid JSON: {e}")))
}

/// Checks a gyre file's `format` (`want`; another value is "`\"{other}\" {wrong}`", none is
/// `missing`) and its `format_version` (1 to `newest`): the first checks of every gyre loader.
pub(crate) fn check_format(
    meta: &BTreeMap<String, String>,
    want: &str,
    newest: u32,
    wrong: &str,
    missing: &str,
) -> Result<()> {
    match meta.get("format").map(String::as_str) {
        Some(f) if f == want => {}
        Some(other) => return Err(bad("__metadata__.format", format!("\"{other}\" {wrong}"))),
        None => return Err(bad("__metadata__", missing.to_string())),
    }
    let version: u32 = meta
        .get("format_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("__metadata__.format_version", "missing or not an integer"))?;
    if version == 0 || version > newest {
        return Err(bad(
            "__metadata__.format_version",
            format!("{version} is not readable by this version of gyre (it reads 1..={newest})"),
        ));
    }
    Ok(())
}

/// The `training` metadata (parsed) and its `epochs` (0 and `None` when the file has none).
pub(crate) fn training(meta: &BTreeMap<String, String>) -> Result<(usize, Option<serde_json::Value>)> {
    let Some(t) = meta.get("training") else { return Ok((0, None)) };
    let v = json("training", t)?;
    let epochs = v
        .get("epochs")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| bad("__metadata__.training", "no integer \"epochs\""))? as usize;
    Ok((epochs, Some(v)))
}

/// One parameter as the optimizer's part of a file sees it: its name, its shape and whether
/// the optimizer updates it (a frozen tensor has no buffers in the file).
pub(crate) struct ParamEntry<'a> {
    pub(crate) name: &'a str,
    pub(crate) shape: &'a [usize],
    pub(crate) trained: bool,
}

/// A tensor to write: its name, shape and values.
pub(crate) type OwnedTensor = (String, Vec<usize>, Vec<f32>);

/// The bytes of a file of `tensors` (the parameters: name, shape, values) and `meta`, with the
/// optimizer's part ([`optimizer_part`]) for the parameters it is given with.
///
/// # Errors
/// An optimizer made for another number of parameters; a file beyond the format's limits.
pub(crate) fn serialize_with_optimizer(
    tensors: &[(&str, &[usize], &[f32])],
    mut meta: BTreeMap<String, String>,
    optimizer: Option<(&Optimizer<f32>, &[ParamEntry<'_>])>,
) -> Result<Vec<u8>> {
    let buffers = match optimizer {
        Some((o, params)) => {
            let (entry, buffers) = optimizer_part(o, params)?;
            meta.insert("optimizer".to_string(), entry);
            buffers
        }
        None => Vec::new(),
    };
    let mut all = tensors.to_vec();
    all.extend(buffers.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())));
    serialize(&all, &meta)
}

/// The optimizer's part of a file: the `optimizer` metadata entry (`{"config": …, "step": n}`)
/// and its buffers as tensors `optimizer/{parameter}/{buffer}` with their parameter's shape,
/// for `params` in the optimizer's order.
///
/// # Errors
/// An optimizer made for another number of parameters.
fn optimizer_part(o: &Optimizer<f32>, params: &[ParamEntry<'_>]) -> Result<(String, Vec<OwnedTensor>)> {
    if o.sizes().len() != params.len() {
        return Err(CoreError::invalid("optimizer", "one made for this model's parameters", "another model's"));
    }
    let state = o.state();
    let meta = format!(r#"{{"config":{},"step":{}}}"#, optimizer_to_json(o.config()), state.step);
    let mut tensors = Vec::new();
    for (p, buffers) in params.iter().zip(state.params).filter(|(p, _)| p.trained) {
        for b in buffers {
            tensors.push((format!("{OPTIMIZER_PREFIX}{}/{}", p.name, b.name), p.shape.to_vec(), b.data));
        }
    }
    Ok((meta, tensors))
}

/// The optimizer a file's `optimizer` metadata entry describes (see [`optimizer_part`]).
pub(crate) struct SavedOptimizer {
    config: OptimizerConfig,
    step: u64,
}

impl SavedOptimizer {
    /// The file's optimizer entry, if it has one.
    ///
    /// # Errors
    /// A malformed entry (invalid JSON, no or a bad `config`, no integer `step`).
    pub(crate) fn of(meta: &BTreeMap<String, String>) -> Result<Option<Self>> {
        let Some(text) = meta.get("optimizer") else { return Ok(None) };
        let m = json("optimizer", text)?;
        let c = m.get("config").ok_or_else(|| bad("__metadata__.optimizer", "no \"config\""))?;
        let config =
            optimizer_from_json(&c.to_string()).map_err(|e| bad("__metadata__.optimizer.config", e.to_string()))?;
        let step = m
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad("__metadata__.optimizer", "no integer \"step\""))?;
        Ok(Some(SavedOptimizer { config, step }))
    }

    /// Adds the buffer tensors of the trained `params` to the tensors a file must hold.
    pub(crate) fn expect(&self, params: &[ParamEntry<'_>], expected: &mut BTreeMap<String, Vec<usize>>) {
        for p in params.iter().filter(|p| p.trained) {
            for b in self.config.buffer_names() {
                expected.insert(format!("{OPTIMIZER_PREFIX}{}/{b}", p.name), p.shape.to_vec());
            }
        }
    }

    /// The optimizer with its state, its buffers taken out of `values` (checked tensors; see
    /// [`SavedOptimizer::expect`]), for parameters of `sizes` (0 for a frozen one).
    ///
    /// # Errors
    /// A state that does not fit the parameters.
    pub(crate) fn restore(
        self,
        params: &[ParamEntry<'_>],
        sizes: &[usize],
        values: &mut BTreeMap<String, Vec<f32>>,
    ) -> Result<Optimizer<f32>> {
        let mut o = Optimizer::new(self.config, sizes)?;
        let names = self.config.buffer_names();
        let params = params
            .iter()
            .map(|p| {
                names
                    .iter()
                    .map(|b| NamedBuffer {
                        name: b.to_string(),
                        data: values.remove(&format!("{OPTIMIZER_PREFIX}{}/{b}", p.name)).unwrap_or_default(),
                    })
                    .collect()
            })
            .collect();
        o.load_state(OptimizerState { step: self.step, params }).map_err(|e| bad("optimizer state", e.to_string()))?;
        Ok(o)
    }
}

/// Every tensor of a file as f32 by name, after checking that the names are exactly those of
/// `expected` (extra ones reported as "not in `of`"), each with its expected shape ("has shape
/// … but `of` needs …") and finite values.
pub(crate) fn checked_tensors(
    tensors: &[TensorView<'_>],
    expected: &BTreeMap<String, Vec<usize>>,
    of: &str,
) -> Result<BTreeMap<String, Vec<f32>>> {
    let present: BTreeSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    check_names(expected, &present, &format!("not in {of}"))?;
    let mut values = BTreeMap::new();
    for t in tensors {
        let want = &expected[t.name.as_str()];
        if &t.shape != want {
            return Err(bad(
                format!("tensor \"{}\"", t.name),
                format!("has shape {:?} but {of} needs {want:?}", t.shape),
            ));
        }
        let data = t.to_f32()?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("tensor \"{}\"", t.name), format!("value {} at index {i} is not finite", data[i])));
        }
        values.insert(t.name.clone(), data);
    }
    Ok(values)
}

/// Loads a model file written by [`save`], checking everything against everything: the
/// format, the configuration, every expected tensor present with its exact shape and finite
/// values, no tensor the configuration does not account for.
///
/// # Errors
/// [`CoreError::Format`] naming what is wrong: the missing or extra tensors by name, a shape
/// next to the shape the configuration needs, a bad metadata entry; the strict file checks of
/// [`crate::io::safetensors::parse`].
pub fn load(bytes: &[u8]) -> Result<Saved> {
    let file = parse(bytes)?;
    let meta = &file.metadata;
    check_format(
        meta,
        FORMAT,
        FORMAT_VERSION,
        "is not a gyre model",
        "no \"format\": not a gyre model file (to read weights from PyTorch, import them into a model's layer)",
    )?;
    let config_json = meta.get("config").ok_or_else(|| bad("__metadata__.config", "missing"))?;
    let config = ModelSpec::from_json(config_json).map_err(|e| bad("__metadata__.config", e.to_string()))?;
    let mut model = Model::<f32>::new(config, 0).map_err(|e| bad("__metadata__.config", e.to_string()))?;
    let (epochs, training) = training(meta)?;
    model.trained_epochs = epochs;
    if let Some(v) = training {
        if let Some(p) = v.get("plateau") {
            let num = |k: &str| p.get(k).and_then(serde_json::Value::as_f64).filter(|x| x.is_finite());
            let count = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).map(|x| x as usize);
            let (Some(lr), Some(best), Some(bad_epochs), Some(cooldown_left)) =
                (num("lr"), num("best"), count("badEpochs"), count("cooldownLeft"))
            else {
                return Err(bad(
                    "__metadata__.training.plateau",
                    "needs finite lr and best, integer badEpochs and cooldownLeft",
                ));
            };
            model.plateau = Some(crate::optim::Plateau { lr, best, bad_epochs, cooldown_left });
        }
    }
    let saved_optimizer = SavedOptimizer::of(meta)?;
    // The tensors the configuration accounts for, with their shapes.
    let mut expected: BTreeMap<String, Vec<usize>> =
        model.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    if let Some(o) = &saved_optimizer {
        o.expect(&model_entries(&model), &mut expected);
    }
    let mut values = checked_tensors(&file.tensors, &expected, "the configuration")?;
    let params: Vec<Vec<f32>> =
        model.tensors.iter().map(|t| values.remove(t.name.as_str()).unwrap_or_default()).collect();
    model.set_parameters(params)?;
    let optimizer = match saved_optimizer {
        Some(o) => Some(o.restore(&model_entries(&model), &crate::train::optimizer_sizes(&model), &mut values)?),
        None => None,
    };
    Ok(Saved { model, optimizer, user: meta.get("user").cloned() })
}

/// The tensors of layer `layer` as a `.safetensors` file named as the matching PyTorch module's
/// `state_dict` (`weight_ih_l0`, ... for `torch.nn.RNN`/`LSTM`/`GRU`; `weight`, `bias` for
/// `nn.Linear`; `weight` for `nn.Embedding`), loadable with `safetensors.torch.load_file`
/// and `module.load_state_dict`.
///
/// # Errors
/// When `layer` is out of range, or is a GRU with the reset gate before the product (PyTorch's
/// GRU has no such variant), or runs backwards, hard-sigmoid gates or zoneout.
pub fn export_layer(model: &Model<f32>, layer: usize) -> Result<Vec<u8>> {
    check_layer(model, layer)?;
    let prefix = format!("{layer}.");
    let tensors: Vec<(&str, &[usize], &[f32])> = model
        .tensors
        .iter()
        .filter_map(|t| t.name.strip_prefix(&prefix).map(|n| (n, t.shape.as_slice(), t.data.as_slice())))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    serialize(&tensors, &meta)
}

fn check_layer(model: &Model<f32>, layer: usize) -> Result<()> {
    let layers = &model.config().layers;
    let Some(l) = layers.get(layer) else {
        return Err(CoreError::InvalidArgument {
            what: "layer".into(),
            expected: format!("a layer index below {}", layers.len()),
            got: layer.to_string(),
        });
    };
    if let crate::model::LayerSpec::Recurrent(r) = l {
        if let crate::rnn::functional::CellKind::Gru { reset_after: false, .. } = r.cell {
            return Err(CoreError::InvalidArgument {
                what: format!("layers[{layer}].resetAfter"),
                expected: "true: PyTorch's GRU applies the reset gate after the recurrent product".into(),
                got: "false".into(),
            });
        }
        if r.go_backwards {
            return Err(CoreError::InvalidArgument {
                what: format!("layers[{layer}].goBackwards"),
                expected: "false: PyTorch's recurrent modules run forwards (or both ways, bidirectional)".into(),
                got: "true".into(),
            });
        }
        if r.zoneout > 0.0 {
            return Err(CoreError::InvalidArgument {
                what: format!("layers[{layer}].zoneout"),
                expected: "0: PyTorch's recurrent modules have no zoneout (its inference, an expectation, would be \
                           lost)"
                    .into(),
                got: r.zoneout.to_string(),
            });
        }
        let act = r.cell.recurrent_activation();
        if act != crate::rnn::cells::GateActivation::Sigmoid {
            return Err(CoreError::InvalidArgument {
                what: format!("layers[{layer}].recurrentActivation"),
                expected: "'sigmoid': PyTorch's LSTM and GRU gates are sigmoids".into(),
                got: format!("{:?}", act.name()),
            });
        }
    }
    Ok(())
}

/// Reads a PyTorch module's `state_dict` saved as `.safetensors` into layer `layer`: the
/// tensors named `{prefix}weight_ih_l0`, ... (all of them, nothing else under `prefix`; other
/// names are ignored when `prefix` is not empty), with exactly the layer's shapes. Float64,
/// float16 and bfloat16 tensors are converted. Nothing changes unless everything fits.
///
/// # Errors
/// [`CoreError::Format`] listing missing and extra tensors by name, or naming a tensor with its
/// shape and the layer's.
pub fn import_layer(model: &mut Model<f32>, layer: usize, bytes: &[u8], prefix: &str) -> Result<()> {
    check_layer(model, layer)?;
    let file = parse(bytes)?;
    let own = format!("{layer}.");
    let wanted: BTreeMap<String, (usize, Vec<usize>)> = model
        .tensors
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.name.strip_prefix(&own).map(|n| (format!("{prefix}{n}"), (i, t.shape.clone()))))
        .collect();
    let present: BTreeSet<&str> =
        file.tensors.iter().map(|t| t.name.as_str()).filter(|n| prefix.is_empty() || n.starts_with(prefix)).collect();
    check_names(&wanted, &present, &format!("not in layer {layer}"))?;
    let mut updates = Vec::new();
    for (name, (index, shape)) in &wanted {
        let Some(t) = file.get(name) else { continue };
        if &t.shape != shape {
            return Err(bad(
                format!("tensor \"{name}\""),
                format!("has shape {:?} but layer {layer} needs {:?}", t.shape, shape),
            ));
        }
        let data = t.to_f32()?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("tensor \"{name}\""), format!("value {} at index {i} is not finite", data[i])));
        }
        updates.push((*index, data));
    }
    for (index, data) in updates {
        model.tensors[index].data = data;
    }
    Ok(())
}
