//! Model files: round trips with and without optimizer state, and every way a file can
//! disagree with its own configuration, each a specific error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::io::model_file::{export_layer, import_layer, load, save};
use gyre_core::io::safetensors::{parse, serialize};
use gyre_core::model::{Activation, InputKind, LayerSpec, Merge, Model, ModelSpec, RecurrentLayerSpec};
use gyre_core::optim::OptimizerConfig;
use gyre_core::train::optimizer_for;
use gyre_core::train::optimizer_to_json;
use gyre_core::{CellKind, CoreError};
use std::collections::BTreeMap;

fn model() -> Model<f32> {
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Tokens { vocab_size: 7 },
        layers: vec![
            LayerSpec::Embedding { dim: 3 },
            LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::LSTM,
                hidden_size: 4,
                num_layers: 2,
                bidirectional: true,
                merge: Merge::Concat,
                return_sequences: true,
                dropout: 0.0,
                go_backwards: false,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            }),
            LayerSpec::Dense { units: 7, activation: Activation::Softmax },
        ],
    };
    let mut m = Model::new(config, 3).unwrap();
    m.trained_epochs = 5;
    m
}

/// Re-serializes a saved file after `edit` changes its tensors or metadata.
fn rewrite(
    bytes: &[u8],
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>, &mut BTreeMap<String, String>),
) -> Vec<u8> {
    let file = parse(bytes).unwrap();
    let mut meta = file.metadata.clone();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        file.tensors.iter().map(|t| (t.name.clone(), t.shape.clone(), t.to_f32().unwrap())).collect();
    edit(&mut tensors, &mut meta);
    let refs: Vec<(&str, &[usize], &[f32])> =
        tensors.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
    serialize(&refs, &meta).unwrap()
}

fn format_error(bytes: &[u8]) -> (String, String) {
    match load(bytes).unwrap_err() {
        CoreError::Format { what, detail } => (what, detail),
        other => panic!("expected a format error, got {other}"),
    }
}

#[test]
fn a_saved_model_loads_back_identical_with_its_optimizer_and_metadata() {
    let m = model();
    let mut opt = optimizer_for(&m, OptimizerConfig::adam(0.01)).unwrap();
    // Give the optimizer non-trivial state.
    let grads: Vec<Vec<f32>> = m.tensors.iter().map(|t| t.data.iter().map(|v| v * 0.5).collect()).collect();
    let mut m2 = m.clone();
    let mut params: Vec<gyre_core::optim::Param<f32>> =
        m2.tensors.iter_mut().zip(&grads).map(|(t, g)| gyre_core::optim::Param::new(&mut t.data, g, t.decay)).collect();
    opt.step(&mut params, 0.01).unwrap();
    let bytes = save(&m2, Some(&opt), Some(r#"{"tokenizer":"abc"}"#)).unwrap();
    let back = load(&bytes).unwrap();
    assert_eq!(back.model, m2);
    assert_eq!(back.model.trained_epochs, 5);
    assert_eq!(back.user.as_deref(), Some(r#"{"tokenizer":"abc"}"#));
    let o = back.optimizer.expect("optimizer");
    assert_eq!(o.config(), opt.config());
    assert_eq!(o.state(), opt.state());
    let plain = load(&save(&m2, None, None).unwrap()).unwrap();
    assert!(plain.optimizer.is_none() && plain.user.is_none());
    assert_eq!(plain.model, m2);
    let meta = parse(&bytes).unwrap().metadata.clone();
    assert_eq!(meta.get("format").map(String::as_str), Some("gyre"));
    assert_eq!(meta.get("format_version").map(String::as_str), Some("1"));
}

#[test]
fn files_that_disagree_with_their_configuration_are_specific_errors() {
    let m = model();
    let opt = optimizer_for(&m, OptimizerConfig::sgd(0.1)).unwrap();
    let good = save(&m, Some(&opt), None).unwrap();

    let (what, detail) = format_error(&rewrite(&good, |t, _| t.retain(|(n, _, _)| n != "1.weight_hh_l1_reverse")));
    assert_eq!(what, "tensors");
    assert!(detail.contains("missing 1.weight_hh_l1_reverse"), "{detail}");

    let (_, detail) = format_error(&rewrite(&good, |t, _| t.push(("1.weight_ih_l2".into(), vec![2], vec![0.0, 0.0]))));
    assert!(detail.contains("not in the configuration: 1.weight_ih_l2"), "{detail}");

    let (what, detail) = format_error(&rewrite(&good, |t, _| {
        let e = t.iter_mut().find(|(n, _, _)| n == "2.weight").unwrap();
        e.1 = vec![8, 7];
    }));
    assert_eq!(what, "tensor \"2.weight\"");
    assert!(detail.contains("[8, 7]") && detail.contains("[7, 8]"), "{detail}");

    let (_, detail) =
        format_error(&rewrite(&good, |t, _| t.iter_mut().find(|(n, _, _)| n == "0.weight").unwrap().2[4] = f32::NAN));
    assert!(detail.contains("index 4") && detail.contains("not finite"), "{detail}");

    // A configuration that no longer matches the tensors: both shapes named.
    let (what, detail) = format_error(&rewrite(&good, |_, meta| {
        let c = meta.get("config").unwrap().replace(r#""dim":3"#, r#""dim":5"#);
        meta.insert("config".into(), c);
    }));
    assert!(what.starts_with("tensor \"0.weight\"") || what == "tensor \"1.weight_ih_l0\"", "{what}");
    assert!(detail.contains("needs"), "{detail}");

    let (what, _) = format_error(&rewrite(&good, |_, meta| {
        meta.insert("config".into(), "{not json".into());
    }));
    assert_eq!(what, "__metadata__.config");
    let (what, detail) = format_error(&rewrite(&good, |_, meta| {
        meta.insert("format_version".into(), "9".into());
    }));
    assert_eq!(what, "__metadata__.format_version");
    assert!(detail.contains('9'), "{detail}");
    let (what, _) = format_error(&rewrite(&good, |_, meta| {
        meta.remove("format");
    }));
    assert_eq!(what, "__metadata__");
    // Optimizer buffers whose configuration was dropped are extra tensors.
    let (_, detail) = format_error(&rewrite(
        &save(&m, Some(&optimizer_for(&m, OptimizerConfig::adam(0.1)).unwrap()), None).unwrap(),
        |_, meta| {
            meta.remove("optimizer");
        },
    ));
    assert!(detail.contains("optimizer/0.weight/exp_avg"), "{detail}");
    let (what, _) = format_error(&rewrite(&good, |_, meta| {
        meta.insert(
            "optimizer".into(),
            format!(r#"{{"config":{},"step":"x"}}"#, optimizer_to_json(&OptimizerConfig::sgd(0.1))),
        );
    }));
    assert_eq!(what, "__metadata__.optimizer");
}

#[test]
fn a_layer_moves_to_and_from_pytorch_names() {
    let m = model();
    let bytes = export_layer(&m, 1).unwrap();
    let file = parse(&bytes).unwrap();
    let names: Vec<&str> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 16);
    assert!(names.contains(&"weight_ih_l0") && names.contains(&"bias_hh_l1_reverse"));
    assert_eq!(file.get("weight_ih_l1").unwrap().shape, vec![16, 8]);

    // Into a fresh model under a prefix, with an unrelated tensor beside it.
    let prefixed = rewrite(&bytes, |t, _| {
        for e in t.iter_mut() {
            e.0 = format!("rnn.{}", e.0);
        }
        t.push(("head.weight".into(), vec![1], vec![1.0]));
    });
    let mut fresh = Model::new(m.config().clone(), 99).unwrap();
    import_layer(&mut fresh, 1, &prefixed, "rnn.").unwrap();
    for (a, b) in fresh.tensors.iter().zip(&m.tensors).filter(|(t, _)| t.name.starts_with("1.")) {
        assert_eq!(a.data, b.data, "{}", a.name);
    }
    // Without the prefix everything must match exactly.
    let before = fresh.clone();
    let err = import_layer(&mut fresh, 1, &prefixed, "").unwrap_err().to_string();
    assert!(
        err.contains("missing bias_hh_l0")
            && err.contains("weight_hh_l0,")
            && err.contains("not in layer 1: head.weight"),
        "{err}"
    );
    let wrong = rewrite(&bytes, |t, _| t.iter_mut().find(|(n, _, _)| n == "weight_hh_l0").unwrap().1 = vec![4, 16]);
    let err = import_layer(&mut fresh, 1, &wrong, "").unwrap_err().to_string();
    assert!(err.contains("[4, 16]") && err.contains("[16, 4]"), "{err}");
    assert_eq!(fresh, before, "a failed import changes nothing");
    assert!(export_layer(&m, 3).unwrap_err().to_string().contains("layer"));
    let gru_before = Model::<f32>::new(
        ModelSpec {
            mask_value: None,
            frozen: vec![],
            input: InputKind::Features { size: 2 },
            layers: vec![LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::gru(false),
                hidden_size: 2,
                num_layers: 1,
                bidirectional: false,
                merge: Merge::Concat,
                return_sequences: true,
                dropout: 0.0,
                go_backwards: false,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            })],
        },
        0,
    )
    .unwrap();
    assert!(export_layer(&gru_before, 0).unwrap_err().to_string().contains("resetAfter"));
    // Zoneout has no PyTorch module; recurrent dropout (training only) exports.
    let mut spec = gru_before.config().clone();
    if let LayerSpec::Recurrent(r) = &mut spec.layers[0] {
        (r.cell, r.recurrent_dropout, r.zoneout) = (CellKind::gru(true), 0.3, 0.1);
    }
    let err = export_layer(&Model::<f32>::new(spec.clone(), 0).unwrap(), 0).unwrap_err().to_string();
    assert!(err.contains("layers[0].zoneout") && err.contains("0.1"), "{err}");
    if let LayerSpec::Recurrent(r) = &mut spec.layers[0] {
        r.zoneout = 0.0;
    }
    assert!(export_layer(&Model::<f32>::new(spec, 0).unwrap(), 0).is_ok());
}

#[test]
fn a_pickle_or_other_non_safetensors_file_is_rejected_as_such() {
    for bytes in [&b"\x80\x02}q\x00."[..], &b"PK\x03\x04rest-of-a-zip"[..], &b"\x08\x07\x12\x04onnx"[..]] {
        let err = load(bytes).unwrap_err();
        assert_eq!(err.code().as_str(), "GYRE_BAD_FILE", "{err}");
    }
}
