#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)]

use super::run::{Cache, Val};
use super::*;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rnn::functional::{forward_sequences, CellKind, InitialState, SequenceOptions};
use crate::ErrorCode;

/// An encoder–decoder graph over two token inputs: a (stacked, optionally bidirectional)
/// encoder that returns its states, a decoder started from them, attention of the decoder over
/// the encoder, the two concatenated, a softmax over the target vocabulary; and a second,
/// vector output: a classifier over the encoder's final state read by a dense layer.
fn enc_dec(cell: &str, layers: usize, bidirectional: bool, score: serde_json::Value) -> GraphSpec {
    let dirs = if bidirectional { 2 } else { 1 };
    GraphSpec::from_value(serde_json::json!({
        "inputs": [ { "name": "source", "vocabSize": 7 }, { "name": "target", "vocabSize": 6 } ],
        "nodes": [
            { "name": "se", "layer": { "type": "embedding", "embeddingDim": 3 }, "inputs": ["source"] },
            { "name": "enc", "layer": { "type": cell, "hiddenSize": 3, "numLayers": layers, "bidirectional": bidirectional, "returnState": true }, "inputs": ["se"] },
            { "name": "te", "layer": { "type": "embedding", "embeddingDim": 3 }, "inputs": ["target"] },
            { "name": "dec", "layer": { "type": cell, "hiddenSize": 3 * dirs, "numLayers": layers }, "inputs": ["te"], "initialState": "enc" },
            { "name": "ctx", "layer": { "type": "attention", "score": score }, "inputs": ["dec", "enc"] },
            { "name": "cat", "layer": { "type": "concatenate" }, "inputs": ["dec", "ctx"] },
            { "name": "drop", "layer": { "type": "dropout", "rate": 0.3 }, "inputs": ["cat"] },
            { "name": "out", "layer": { "type": "dense", "units": 6, "activation": "softmax" }, "inputs": ["drop"] },
            { "name": "last", "layer": { "type": "gru", "hiddenSize": 2, "returnSequences": false }, "inputs": ["enc"] },
            { "name": "value", "layer": { "type": "dense", "units": 2, "activation": "tanh" }, "inputs": ["last"] }
        ],
        "outputs": ["out", "value"],
        "seed": 3
    }))
    .unwrap()
}

fn data<F: Real>() -> GraphData<F> {
    GraphData {
        samples: 3,
        inputs: vec![
            GraphInput {
                steps: 4,
                lengths: vec![4, 2, 3],
                values: GraphValues::Tokens(vec![3, 4, 5, 6, 0, 6, 0, 0, 5, 5, 3, 0]),
            },
            GraphInput {
                steps: 5,
                lengths: vec![3, 1, 5],
                values: GraphValues::Tokens(vec![1, 3, 4, 0, 0, 1, 0, 0, 0, 0, 1, 5, 0, 3, 4]),
            },
        ],
        targets: vec![
            GraphTarget::Classes(vec![3, 4, 2, 0, 0, 2, 0, 0, 0, 0, 5, 0, 3, 4, 2]),
            GraphTarget::Values([0.5, -0.2, 0.1, 0.3, -0.7, 0.9].iter().map(|&v| F::lit(v)).collect()),
        ],
    }
}

const LOSSES: [GraphLoss; 2] = [GraphLoss::CrossEntropy, GraphLoss::Mse];

/// `graph`'s gradient of its loss on samples `idx` of `d` (dropout seeded by `seed`), at the
/// entries `entries(len)` of each parameter, against central differences in f64.
fn assert_gradient(
    graph: &Graph<f64>,
    d: &GraphData<f64>,
    idx: &[usize],
    losses: &[GraphLoss],
    seed: Option<u64>,
    mut entries: impl FnMut(usize) -> Vec<usize>,
) {
    let (_, grads) = graph.loss_and_gradient(d, idx, losses, seed).unwrap();
    for (k, (name, _, values)) in graph.params().enumerate() {
        for i in entries(values.len()) {
            let at = |delta: f64| {
                let mut g = graph.clone();
                g.values[k][i] += delta;
                g.loss_and_gradient(d, idx, losses, seed).unwrap().0
            };
            let h = 1e-6;
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            let err = (numeric - grads[k][i]).abs() / numeric.abs().max(grads[k][i].abs()).max(1e-4);
            assert!(err < 1e-5, "{name}[{i}]: analytic {} vs numeric {numeric}", grads[k][i]);
        }
    }
}

/// Every parameter tensor's gradient, at a few entries each, against central differences of
/// the loss in f64 (the dropout masks fixed by their seed).
fn gradcheck(spec: GraphSpec) {
    let graph = Graph::<f64>::new(spec.clone()).unwrap();
    let mut rng = Rng::new(9);
    assert_gradient(&graph, &data::<f64>(), &[0, 1, 2], &LOSSES, Some(5), |n| (0..4).map(|_| rng.below(n)).collect());
}

#[test]
fn gradients_match_finite_differences_for_every_parameter() {
    gradcheck(enc_dec("lstm", 1, true, serde_json::json!("general")));
    gradcheck(enc_dec("lstm", 2, false, serde_json::json!("dot")));
    gradcheck(enc_dec("gru", 2, true, serde_json::json!({ "additive": { "units": 4 } })));
    gradcheck(enc_dec("rnn", 1, true, serde_json::json!("general")));
}

#[test]
fn a_float_graph_with_two_inputs_checks_its_gradient() {
    // A forecaster: the history through an LSTM, its state starting a second LSTM over the
    // known future inputs, a linear readout at every future step (mse), with a relu layer between.
    let spec = GraphSpec::from_value(serde_json::json!({
        "inputs": [ { "name": "past", "features": 2 }, { "name": "future", "features": 1 } ],
        "nodes": [
            { "name": "h", "layer": { "type": "lstm", "hiddenSize": 3, "returnState": true, "returnSequences": false }, "inputs": ["past"] },
            { "name": "f", "layer": { "type": "dense", "units": 3, "activation": "relu" }, "inputs": ["future"] },
            { "name": "g", "layer": { "type": "lstm", "hiddenSize": 3 }, "inputs": ["f"], "initialState": "h" },
            { "name": "y", "layer": { "type": "dense", "units": 1 }, "inputs": ["g"] }
        ],
        "outputs": ["y"], "seed": 2
    }))
    .unwrap();
    let graph = Graph::<f64>::new(spec).unwrap();
    let mut rng = Rng::new(1);
    let d = GraphData {
        samples: 2,
        inputs: vec![
            GraphInput {
                steps: 3,
                lengths: vec![3, 2],
                values: GraphValues::Floats((0..12).map(|_| rng.normal()).collect()),
            },
            GraphInput {
                steps: 2,
                lengths: vec![2, 1],
                values: GraphValues::Floats((0..4).map(|_| rng.normal()).collect()),
            },
        ],
        targets: vec![GraphTarget::Values(vec![0.3, -0.1, 0.2, 0.0])],
    };
    assert_gradient(&graph, &d, &[0, 1], &[GraphLoss::Mse], None, |n| (0..n.min(5)).collect());
}

#[test]
fn a_batch_of_several_shards_has_the_batch_gradient_on_any_number_of_threads() {
    // 70 samples: three shards of a training batch. The gradient is that of the batch's mean
    // (finite differences), and the same bits on 1 and 2 threads.
    let spec = GraphSpec::from_value(serde_json::json!({
        "inputs": [ { "name": "past", "features": 2 }, { "name": "future", "features": 1 } ],
        "nodes": [
            { "name": "h", "layer": { "type": "gru", "hiddenSize": 3, "returnState": true, "returnSequences": false }, "inputs": ["past"] },
            { "name": "g", "layer": { "type": "gru", "hiddenSize": 3 }, "inputs": ["future"], "initialState": "h" },
            { "name": "y", "layer": { "type": "dense", "units": 1 }, "inputs": ["g"] },
            { "name": "z", "layer": { "type": "dense", "units": 3, "activation": "softmax" }, "inputs": ["h"] }
        ],
        "outputs": ["y", "z"], "seed": 3
    }))
    .unwrap();
    let graph = Graph::<f64>::new(spec).unwrap();
    let n = 70;
    let mut rng = Rng::new(9);
    let d = GraphData {
        samples: n,
        inputs: vec![
            GraphInput {
                steps: 4,
                lengths: (0..n).map(|i| 1 + i % 4).collect(),
                values: GraphValues::Floats((0..n * 8).map(|_| rng.normal()).collect()),
            },
            GraphInput {
                steps: 3,
                lengths: (0..n).map(|i| 1 + (i * 7) % 3).collect(),
                values: GraphValues::Floats((0..n * 3).map(|_| rng.normal()).collect()),
            },
        ],
        targets: vec![
            GraphTarget::Values((0..n * 3).map(|_| rng.normal()).collect()),
            GraphTarget::Classes((0..n).map(|i| (i % 3) as u32).collect()),
        ],
    };
    let idx: Vec<usize> = (0..n).rev().collect();
    let losses = [GraphLoss::Mse, GraphLoss::CrossEntropy];
    assert_gradient(&graph, &d, &idx, &losses, None, |n| (0..n.min(3)).collect());
    // The loss is the batch's: evaluate's, whatever its batches.
    let (loss, _) = graph.loss_and_gradient(&d, &idx, &losses, None).unwrap();
    assert!((loss - graph.evaluate(&d, &losses, 64).unwrap()).abs() < 1e-12);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| graph.loss_and_gradient(&d, &idx, &losses, Some(5)).unwrap())
    };
    let (one, two) = (on(1), on(2));
    assert_eq!(one.0.to_bits(), two.0.to_bits());
    assert_eq!(one.1, two.1);
}

#[test]
fn a_decoder_starts_from_the_encoders_concatenated_states() {
    // The graph's decoder output equals the functional API run from [h_fwd; h_bwd] of the
    // bidirectional encoder, computed here by hand.
    let spec = GraphSpec::from_value(serde_json::json!({
        "inputs": [ { "name": "a", "features": 2 }, { "name": "b", "features": 2 } ],
        "nodes": [
            { "name": "enc", "layer": { "type": "lstm", "hiddenSize": 2, "bidirectional": true, "returnState": true }, "inputs": ["a"] },
            { "name": "dec", "layer": { "type": "lstm", "hiddenSize": 4 }, "inputs": ["b"], "initialState": "enc" }
        ],
        "outputs": ["dec"], "seed": 5
    }))
    .unwrap();
    let graph = Graph::<f64>::new(spec).unwrap();
    let xa: Vec<f64> = (0..6).map(|i| (i as f64 * 0.7).sin()).collect();
    let xb: Vec<f64> = (0..4).map(|i| (i as f64 * 0.3).cos()).collect();
    let d = GraphData {
        samples: 1,
        inputs: vec![
            GraphInput { steps: 3, lengths: vec![3], values: GraphValues::Floats(xa.clone()) },
            GraphInput { steps: 2, lengths: vec![2], values: GraphValues::Floats(xb.clone()) },
        ],
        targets: vec![],
    };
    let got = graph.predict(&d, 8).unwrap().outputs.remove(0).1;
    let w = |first: usize| graph.rnn_weights(first).unwrap();
    let a = ndarray::Array3::from_shape_vec((1, 3, 2), xa).unwrap();
    let b = ndarray::Array3::from_shape_vec((1, 2, 2), xb).unwrap();
    let fwd = forward_sequences(CellKind::LSTM, &w(0), a.view(), &InitialState::default(), &SequenceOptions::default())
        .unwrap();
    let bwd = forward_sequences(
        CellKind::LSTM,
        &w(4),
        a.view(),
        &InitialState::default(),
        &SequenceOptions { lengths: None, reverse: true },
    )
    .unwrap();
    let h0 = ndarray::concatenate(ndarray::Axis(1), &[fwd.state.hidden.view(), bwd.state.hidden.view()]).unwrap();
    let c0 = ndarray::concatenate(
        ndarray::Axis(1),
        &[fwd.state.cell.as_ref().unwrap().view(), bwd.state.cell.as_ref().unwrap().view()],
    )
    .unwrap();
    let dec = forward_sequences(
        CellKind::LSTM,
        &w(8),
        b.view(),
        &InitialState { hidden: Some(h0.view()), cell: Some(c0.view()) },
        &SequenceOptions::default(),
    )
    .unwrap();
    let want: Vec<f64> = dec.output.iter().copied().collect();
    assert_eq!(got, want);
}

#[test]
fn training_learns_to_reverse_sequences_and_save_load_keeps_the_predictions() {
    // Reverse 3–5 symbols of 4 through a bidirectional GRU encoder, a GRU decoder started from
    // its states, dot attention: teacher forcing (the decoder reads start, y1 … yn-1).
    let spec = GraphSpec::from_value(serde_json::json!({
        "inputs": [ { "name": "source", "vocabSize": 4 }, { "name": "target", "vocabSize": 5 } ],
        "nodes": [
            { "name": "se", "layer": { "type": "embedding", "embeddingDim": 8 }, "inputs": ["source"] },
            { "name": "enc", "layer": { "type": "gru", "hiddenSize": 16, "bidirectional": true, "returnState": true }, "inputs": ["se"] },
            { "name": "te", "layer": { "type": "embedding", "embeddingDim": 8 }, "inputs": ["target"] },
            { "name": "dec", "layer": { "type": "gru", "hiddenSize": 32 }, "inputs": ["te"], "initialState": "enc" },
            { "name": "ctx", "layer": { "type": "attention" }, "inputs": ["dec", "enc"] },
            { "name": "cat", "layer": { "type": "concatenate" }, "inputs": ["dec", "ctx"] },
            { "name": "out", "layer": { "type": "dense", "units": 4, "activation": "softmax" }, "inputs": ["cat"] }
        ],
        "outputs": ["out"], "seed": 1
    }))
    .unwrap();
    let mut graph = Graph::<f32>::new(spec).unwrap();
    let mut rng = Rng::new(4);
    let n = 256;
    let (mut src, mut tgt_in, mut tgt, mut lens) =
        (vec![0u32; n * 5], vec![0u32; n * 5], vec![0u32; n * 5], vec![0; n]);
    for i in 0..n {
        let l = 3 + rng.below(3);
        lens[i] = l;
        let s: Vec<u32> = (0..l).map(|_| rng.below(4) as u32).collect();
        for k in 0..l {
            src[i * 5 + k] = s[k];
            tgt[i * 5 + k] = s[l - 1 - k];
            tgt_in[i * 5 + k] = if k == 0 { 4 } else { s[l - k] };
        }
    }
    let d = GraphData {
        samples: n,
        inputs: vec![
            GraphInput { steps: 5, lengths: lens.clone(), values: GraphValues::Tokens(src) },
            GraphInput { steps: 5, lengths: lens, values: GraphValues::Tokens(tgt_in) },
        ],
        targets: vec![GraphTarget::Classes(tgt)],
    };
    let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &graph.sizes()).unwrap();
    let losses = vec![GraphLoss::CrossEntropy];
    let first = graph.evaluate(&d, &losses, 64).unwrap();
    for epoch in 1..=30 {
        let opts = GraphEpochOptions {
            batch_size: 32,
            lr: 0.01,
            clip_norm: Some(5.0),
            losses: losses.clone(),
            shuffle: Some(epoch),
            dropout_seed: 7,
            epoch: epoch as usize,
        };
        graph.train_epoch(&mut opt, &d, &opts).unwrap();
    }
    let last = graph.evaluate(&d, &losses, 64).unwrap();
    assert!(first > 1.2 && last < 0.1, "loss {first} -> {last}");
    // The mean over every valid step of the data, whatever the batches.
    assert!((graph.evaluate(&d, &losses, 7).unwrap() - last).abs() < 1e-9);

    let bytes = save(&graph, 30, None, Some("{\"x\":1}")).unwrap();
    let loaded = load(&bytes).unwrap();
    assert_eq!(loaded.epochs, 30);
    assert!(loaded.optimizer.is_none());
    assert_eq!(loaded.user.as_deref(), Some("{\"x\":1}"));
    assert_eq!(loaded.graph.spec(), graph.spec());
    assert_eq!(loaded.graph.predict(&d, 64).unwrap(), graph.predict(&d, 64).unwrap());
    // With the optimizer's state, training goes on from the file as it goes on in memory.
    let mut resumed = load(&save(&graph, 30, Some(&opt), None).unwrap()).unwrap();
    let mut resumed_opt = resumed.optimizer.take().unwrap();
    assert_eq!(resumed_opt.step_count(), opt.step_count());
    let more = GraphEpochOptions {
        batch_size: 32,
        lr: 0.01,
        clip_norm: Some(5.0),
        losses: losses.clone(),
        shuffle: Some(31),
        dropout_seed: 7,
        epoch: 31,
    };
    let mut on = load(&bytes).unwrap().graph;
    let mut fresh = Optimizer::new(OptimizerConfig::adam(0.01), &on.sizes()).unwrap();
    on.train_epoch(&mut fresh, &d, &more).unwrap();
    graph.train_epoch(&mut opt, &d, &more).unwrap();
    resumed.graph.train_epoch(&mut resumed_opt, &d, &more).unwrap();
    let values = |g: &Graph<f32>| g.params().map(|(_, _, v)| v.to_vec()).collect::<Vec<_>>();
    assert_eq!(values(&resumed.graph), values(&graph));
    // (A fresh optimizer does not: the test can tell.)
    assert_ne!(values(&on), values(&graph));
    // An optimizer of another model is refused.
    let other = Optimizer::<f32>::new(OptimizerConfig::adam(0.01), &[3]).unwrap();
    assert!(save(&graph, 31, Some(&other), None).is_err());
    // The batch size of prediction does not change a value.
    assert_eq!(graph.predict(&d, 7).unwrap(), graph.predict(&d, 64).unwrap());
    // Attention weights: one row per valid query step summing to 1, 0 past the memory's length.
    let p = graph.predict(&d, 64).unwrap();
    let (name, shape, w) = &p.attention[0];
    assert_eq!((name.as_str(), shape.as_slice()), ("ctx", &[n, 5, 5][..]));
    let l0 = d.inputs[0].lengths[0];
    let row: f32 = w[..5].iter().sum();
    assert!((row - 1.0).abs() < 1e-5 && w[l0..5].iter().all(|&v| v == 0.0));
}

#[test]
fn the_spec_round_trips_through_json_with_every_default_written() {
    let spec = enc_dec("gru", 2, true, serde_json::json!({ "additive": { "units": 4 } }));
    let again = GraphSpec::from_json(&spec.to_json()).unwrap();
    assert_eq!(again, spec);
    assert!(spec.to_json().contains("\"resetAfter\":true"));
}

fn err(v: serde_json::Value) -> String {
    match GraphSpec::from_value(v).and_then(Graph::<f32>::new) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_graphs_are_errors_that_name_the_option() {
    let base = |nodes: serde_json::Value, outputs: serde_json::Value| serde_json::json!({ "inputs": [ { "name": "x", "features": 2 }, { "name": "t", "vocabSize": 5 } ], "nodes": nodes, "outputs": outputs });
    let e = err(base(
        serde_json::json!([{ "name": "a", "layer": { "type": "lstm", "hiddenSize": 2 }, "inputs": ["nope"] }]),
        serde_json::json!(["a"]),
    ));
    assert!(e.contains("nodes[0].inputs[0]") && e.contains("\"nope\""), "{e}");
    let e = err(base(
        serde_json::json!([{ "name": "a", "layer": { "type": "lstm", "hiddenSize": 0 }, "inputs": ["x"] }]),
        serde_json::json!(["a"]),
    ));
    assert!(e.contains("nodes[0].layer.hiddenSize"), "{e}");
    let e = err(base(
        serde_json::json!([{ "name": "a", "layer": { "type": "lstm", "hiddenSize": 2 }, "inputs": ["t"] }]),
        serde_json::json!(["a"]),
    ));
    assert!(e.contains("embedding first"), "{e}");
    let e = err(base(
        serde_json::json!([
            { "name": "a", "layer": { "type": "gru", "hiddenSize": 2, "returnState": true }, "inputs": ["x"] },
            { "name": "b", "layer": { "type": "lstm", "hiddenSize": 2 }, "inputs": ["x"], "initialState": "a" }
        ]),
        serde_json::json!(["b"]),
    ));
    assert!(e.contains("nodes[1].initialState") && e.contains("cell state"), "{e}");
    let e = err(base(
        serde_json::json!([
            { "name": "a", "layer": { "type": "lstm", "hiddenSize": 2 }, "inputs": ["x"] },
            { "name": "b", "layer": { "type": "lstm", "hiddenSize": 2 }, "inputs": ["x"], "initialState": "a" }
        ]),
        serde_json::json!(["b"]),
    ));
    assert!(e.contains("returnState: true"), "{e}");
    let e = err(base(
        serde_json::json!([
            { "name": "a", "layer": { "type": "lstm", "hiddenSize": 2, "bidirectional": true, "returnState": true }, "inputs": ["x"] },
            { "name": "b", "layer": { "type": "lstm", "hiddenSize": 2 }, "inputs": ["x"], "initialState": "a" }
        ]),
        serde_json::json!(["b"]),
    ));
    assert!(e.contains("width hiddenSize × directions (2)") && e.contains("width 4"), "{e}");
    let e = err(base(
        serde_json::json!([{ "name": "x", "layer": { "type": "dense", "units": 2 }, "inputs": ["x"] }]),
        serde_json::json!(["x"]),
    ));
    assert!(e.contains("nodes[0].name"), "{e}");
    let e = err(base(
        serde_json::json!([{ "name": "a", "layer": { "type": "dense", "units": 2 }, "inputs": ["x"] }]),
        serde_json::json!(["x"]),
    ));
    assert!(e.contains("outputs[0]"), "{e}");
    let e = err(base(
        serde_json::json!([{ "name": "a", "layer": { "type": "conv" }, "inputs": ["x"] }]),
        serde_json::json!(["a"]),
    ));
    assert!(e.contains("nodes[0].layer.type"), "{e}");
    let e = err(base(
        serde_json::json!([
            { "name": "a", "layer": { "type": "lstm", "hiddenSize": 3 }, "inputs": ["x"] },
            { "name": "b", "layer": { "type": "attention" }, "inputs": ["a", "x"] }
        ]),
        serde_json::json!(["b"]),
    ));
    assert!(e.contains("nodes[1].inputs[1]") && e.contains("'general'"), "{e}");
}

#[test]
fn bad_data_is_an_error_that_names_the_input_and_leaves_the_weights() {
    let mut graph = Graph::<f32>::new(enc_dec("lstm", 1, false, serde_json::json!("dot"))).unwrap();
    let before: Vec<Vec<f32>> = graph.params().map(|(_, _, v)| v.to_vec()).collect();
    let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &graph.sizes()).unwrap();
    let opts = GraphEpochOptions {
        batch_size: 2,
        lr: 0.01,
        clip_norm: None,
        losses: LOSSES.to_vec(),
        shuffle: None,
        dropout_seed: 7,
        epoch: 1,
    };
    let mut d = data::<f32>();
    d.inputs[0].values = GraphValues::Tokens(vec![3, 4, 5, 9, 0, 6, 0, 0, 5, 5, 3, 0]);
    let e = graph.train_epoch(&mut opt, &d, &opts).unwrap_err();
    assert!(e.to_string().contains("inputs.source[0][3]") && e.to_string().contains("vocabSize 7"), "{e}");
    let mut d = data::<f32>();
    d.inputs[1].lengths[2] = 6;
    assert!(graph.train_epoch(&mut opt, &d, &opts).unwrap_err().to_string().contains("inputs.target.lengths[2]"));
    let mut d = data::<f32>();
    d.targets[0] = GraphTarget::Classes(vec![3, 4, 2, 0, 0, 2, 0, 0, 0, 0, 5, 0, 3, 4, 6]);
    let e = graph.train_epoch(&mut opt, &d, &opts).unwrap_err();
    assert!(e.to_string().contains("targets.out[14]"), "{e}");
    let d = data::<f32>();
    let e = graph
        .train_epoch(&mut opt, &d, &GraphEpochOptions { losses: vec![GraphLoss::Mse, GraphLoss::Mse], ..opts.clone() })
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let after: Vec<Vec<f32>> = graph.params().map(|(_, _, v)| v.to_vec()).collect();
    assert_eq!(before, after);
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    let spec = enc_dec("lstm", 2, true, serde_json::json!("general"));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut graph = Graph::<f32>::new(spec.clone()).unwrap();
            let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &graph.sizes()).unwrap();
            let opts = GraphEpochOptions {
                batch_size: 2,
                lr: 0.01,
                clip_norm: None,
                losses: LOSSES.to_vec(),
                shuffle: Some(1),
                dropout_seed: 7,
                epoch: 1,
            };
            graph.train_epoch(&mut opt, &data::<f32>(), &opts).unwrap();
            graph.params().map(|(_, _, v)| v.to_vec()).collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn dropout_drops_in_training_only_with_its_seed() {
    let graph = Graph::<f64>::new(enc_dec("lstm", 1, true, serde_json::json!("general"))).unwrap();
    let d = data::<f64>();
    let idx = [0, 1, 2];
    let loss = |seed: Option<u64>| graph.loss_and_gradient(&d, &idx, &LOSSES, seed).unwrap().0;
    // Outside training the identity: evaluate's loss is the loss without masks.
    assert!((graph.evaluate(&d, &LOSSES, 8).unwrap() - loss(None)).abs() < 1e-12);
    assert_eq!(loss(Some(1)), loss(Some(1)));
    assert_ne!(loss(Some(1)), loss(Some(2)));
    assert_ne!(loss(Some(1)), loss(None));
    // About `rate` of the values are dropped, the rest scaled by 1/(1 − rate).
    let (vals, lengths) = graph.batch_inputs(&d, &idx);
    let pass = graph.forward(vals, lengths, Some(3)).unwrap();
    let k = graph.spec.nodes.iter().position(|n| n.name == "drop").unwrap();
    let Cache::Dropout { mask: Val::Seq(m) } = &pass.caches[k] else { panic!("no mask") };
    let zeros = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
    assert!((zeros - 0.3).abs() < 0.1, "{zeros}");
    assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
    let e = match GraphSpec::from_value(serde_json::json!({
        "inputs": [ { "name": "x", "features": 2 } ],
        "nodes": [ { "name": "d", "layer": { "type": "dropout", "rate": 1.0 }, "inputs": ["x"] } ],
        "outputs": ["d"]
    })) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted"),
    };
    assert!(e.contains("nodes[0].layer.rate"), "{e}");
}
