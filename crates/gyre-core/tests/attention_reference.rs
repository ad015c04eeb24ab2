//! Attention (`gyre_core::attention`) against values from an independent NumPy implementation
//! written one query and one memory step at a time (`tests/reference/attention.py`, which checks
//! its own gradients by finite differences): contexts, weights and every gradient, for the dot,
//! general and additive scores with variable lengths (empty sequences included). f64 within
//! 1e-10; f32 within 2e-5. And the attention decoder against the script's decoder (every cell,
//! each score, with and without input feeding).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::{attention_backward, attention_forward, AttentionScore, Real};
use ndarray::{Array1, Array2, Array3};
use serde_json::Value;

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key].as_array().unwrap_or_else(|| panic!("missing {key}")).iter().map(|x| x.as_f64().expect("number")).collect()
}

fn close(what: &str, got: impl IntoIterator<Item = f64>, want: &[f64], tol: f64) -> f64 {
    let got: Vec<f64> = got.into_iter().collect();
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: f64 = 0.0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(err <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
        worst = worst.max(err);
    }
    worst
}

fn check<F: Real>(case: &Value, tol: f64) -> f64 {
    let n = |k: &str| case[k].as_u64().expect("size") as usize;
    let (b, tq, hq, tk, hk, a) =
        (n("batch"), n("query_steps"), n("query_size"), n("memory_steps"), n("memory_size"), n("units"));
    let lengths: Vec<usize> =
        case["lengths"].as_array().expect("lengths").iter().map(|v| v.as_u64().expect("length") as usize).collect();
    let inp = &case["inputs"];
    let cast = |k: &str| floats(inp, k).into_iter().map(F::lit).collect::<Vec<F>>();
    let a3 = |k: &str, d: (usize, usize, usize)| Array3::from_shape_vec(d, cast(k)).expect(k);
    let a2 = |k: &str, d: (usize, usize)| Array2::from_shape_vec(d, cast(k)).expect(k);
    let (query, memory) = (a3("query", (b, tq, hq)), a3("memory", (b, tk, hk)));
    let (gc, gw) = (a3("grad_context", (b, tq, hk)), a3("grad_weights", (b, tq, tk)));
    let name = case["name"].as_str().expect("name");
    let owned = match case["score"].as_str().expect("score") {
        "general" => vec![a2("weight", (hq, hk))],
        "additive" => vec![a2("query_weight", (a, hq)), a2("key_weight", (a, hk))],
        _ => vec![],
    };
    let (bias, v) =
        (Array1::from(if a > 0 { cast("bias") } else { vec![] }), Array1::from(if a > 0 { cast("v") } else { vec![] }));
    let score = match case["score"].as_str().expect("score") {
        "dot" => AttentionScore::Dot,
        "general" => AttentionScore::General { weight: owned[0].view() },
        _ => AttentionScore::Additive {
            query_weight: owned[0].view(),
            key_weight: owned[1].view(),
            bias: bias.view(),
            v: v.view(),
        },
    };
    let f64s = |it: &mut dyn Iterator<Item = &F>| it.map(|x| x.to_f64().expect("finite")).collect::<Vec<f64>>();
    let out = attention_forward(&score, query.view(), memory.view(), &lengths).expect("forward");
    let outputs = &case["outputs"];
    let mut worst = close(&format!("{name} context"), f64s(&mut out.context.iter()), &floats(outputs, "context"), tol);
    worst =
        worst.max(close(&format!("{name} weights"), f64s(&mut out.weights.iter()), &floats(outputs, "weights"), tol));
    let g = attention_backward(&score, query.view(), memory.view(), &lengths, Some(gc.view()), Some(gw.view()))
        .expect("backward");
    let grads = &case["gradients"];
    worst = worst.max(close(&format!("{name} d query"), f64s(&mut g.query.iter()), &floats(grads, "query"), tol));
    worst = worst.max(close(&format!("{name} d memory"), f64s(&mut g.memory.iter()), &floats(grads, "memory"), tol));
    assert_eq!(g.params.len(), score.param_names().len());
    for (param, values) in &g.params {
        worst = worst.max(close(&format!("{name} d {param}"), f64s(&mut values.iter()), &floats(grads, param), tol));
    }
    worst
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/attention.json"))
        .expect("reference file");
    let doc: Value = serde_json::from_str(&text).expect("reference json");
    doc["cases"].as_array().expect("cases").clone()
}

#[test]
fn attention_matches_the_numpy_reference_in_f64_and_f32() {
    let cases = cases();
    assert_eq!(cases.len(), 6);
    let mut worst = (0.0f64, 0.0f64);
    for case in &cases {
        worst.0 = worst.0.max(check::<f64>(case, 1e-10));
        worst.1 = worst.1.max(check::<f32>(case, 2e-5));
    }
    println!("attention reference: largest difference f64 {:.2e}, f32 {:.2e}", worst.0, worst.1);
}

/// The attention decoder against the NumPy decoder (`decoder_cases`): outputs, attention
/// weights and final states; the gradients, which the script takes by central finite differences,
/// within what those carry (1e-7 + 1e-6 relative in f64).
fn check_decoder<F: Real>(case: &Value, tol: f64, grad_tol: f64) -> f64 {
    use gyre_core::attention::{decoder_backward, decoder_forward, DecoderOutputGrads, DecoderSpec, DecoderWeights};
    use gyre_core::{CellKind, GateActivation, InitialState, LayerWeights, Nonlinearity};
    let n = |k: &str| case[k].as_u64().expect("size") as usize;
    let (b, tq, i, h, tk, hk, a) = (
        n("batch"),
        n("query_steps"),
        n("input_size"),
        n("hidden_size"),
        n("memory_steps"),
        n("memory_size"),
        n("units"),
    );
    let feed = case["input_feeding"].as_bool().expect("feeding");
    let lengths: Vec<usize> =
        case["lengths"].as_array().expect("lengths").iter().map(|v| v.as_u64().expect("length") as usize).collect();
    let name = case["name"].as_str().expect("name");
    let kind = match case["cell"].as_str().expect("cell") {
        "lstm" => CellKind::Lstm { recurrent: GateActivation::Sigmoid },
        "gru" => CellKind::Gru { reset_after: true, recurrent: GateActivation::Sigmoid },
        "gru_reset_before" => CellKind::Gru { reset_after: false, recurrent: GateActivation::Sigmoid },
        "rnn_tanh" => CellKind::Rnn(Nonlinearity::Tanh),
        _ => CellKind::Rnn(Nonlinearity::Relu),
    };
    let gh = kind.gates() * h;
    let inp = &case["inputs"];
    let cast = |k: &str| floats(inp, k).into_iter().map(F::lit).collect::<Vec<F>>();
    let a2 = |k: &str, d: (usize, usize)| Array2::from_shape_vec(d, cast(k)).expect(k);
    let a3 = |k: &str, d: (usize, usize, usize)| Array3::from_shape_vec(d, cast(k)).expect(k);
    let (x, memory, h0) = (a3("x", (b, tq, i)), a3("memory", (b, tk, hk)), a2("h0", (b, h)));
    let lstm = kind.has_cell_state();
    let c0 = lstm.then(|| a2("c0", (b, h)));
    let (w_ih, w_hh) = (a2("weight_ih", (gh, if feed { i + h } else { i })), a2("weight_hh", (gh, h)));
    let (b_ih, b_hh) = (Array1::from(cast("bias_ih")), Array1::from(cast("bias_hh")));
    let (w_c, b_c) = (a2("combine_weight", (h, hk + h)), Array1::from(cast("combine_bias")));
    let score_name = case["score"].as_str().expect("score");
    let owned = match score_name {
        "general" => vec![a2("weight", (h, hk))],
        "additive" => vec![a2("query_weight", (a, h)), a2("key_weight", (a, hk))],
        _ => vec![],
    };
    let (bias, v) =
        (Array1::from(if a > 0 { cast("bias") } else { vec![] }), Array1::from(if a > 0 { cast("v") } else { vec![] }));
    let score = match score_name {
        "dot" => AttentionScore::Dot,
        "general" => AttentionScore::General { weight: owned[0].view() },
        _ => AttentionScore::Additive {
            query_weight: owned[0].view(),
            key_weight: owned[1].view(),
            bias: bias.view(),
            v: v.view(),
        },
    };
    let spec = DecoderSpec { cell: kind, score, input_feeding: feed };
    let weights = DecoderWeights {
        cell: LayerWeights {
            weight_ih: w_ih.view(),
            weight_hh: w_hh.view(),
            bias_ih: b_ih.view(),
            bias_hh: b_hh.view(),
        },
        combine_weight: w_c.view(),
        combine_bias: b_c.view(),
    };
    let init = InitialState { hidden: Some(h0.view()), cell: c0.as_ref().map(|c| c.view()) };
    let f64s = |it: &mut dyn Iterator<Item = &F>| it.map(|x| x.to_f64().expect("finite")).collect::<Vec<f64>>();
    let out = decoder_forward(&spec, &weights, None, x.view(), memory.view(), &lengths, &init).expect("forward");
    let o = &case["outputs"];
    let mut worst = close(&format!("{name} output"), f64s(&mut out.output.iter()), &floats(o, "output"), tol);
    worst = worst.max(close(&format!("{name} weights"), f64s(&mut out.weights.iter()), &floats(o, "weights"), tol));
    worst = worst.max(close(&format!("{name} hidden"), f64s(&mut out.hidden.iter()), &floats(o, "hidden"), tol));
    if let Some(c) = &out.cell {
        worst = worst.max(close(&format!("{name} cell"), f64s(&mut c.iter()), &floats(o, "cell"), tol));
    }
    let (go, gw, ghid) = (a3("grad_output", (b, tq, h)), a3("grad_weights", (b, tq, tk)), a2("grad_hidden", (b, h)));
    let gcell = lstm.then(|| a2("grad_cell", (b, h)));
    let upstream = DecoderOutputGrads {
        output: Some(go.view()),
        weights: Some(gw.view()),
        hidden: Some(ghid.view()),
        cell: gcell.as_ref().map(|c| c.view()),
    };
    let g = decoder_backward(&spec, &weights, x.view(), memory.view(), &lengths, &init, &upstream).expect("backward");
    let grads = &case["gradients"];
    let mut ours: Vec<(&str, Vec<f64>)> = vec![
        ("x", f64s(&mut g.input.iter())),
        ("memory", f64s(&mut g.memory.iter())),
        ("h0", f64s(&mut g.h0.iter())),
        ("weight_ih", f64s(&mut g.cell.weight_ih.iter())),
        ("weight_hh", f64s(&mut g.cell.weight_hh.iter())),
        ("bias_ih", f64s(&mut g.cell.bias_ih.iter())),
        ("bias_hh", f64s(&mut g.cell.bias_hh.iter())),
        ("combine_weight", f64s(&mut g.combine_weight.iter())),
        ("combine_bias", f64s(&mut g.combine_bias.iter())),
    ];
    if let Some(c0) = &g.c0 {
        ours.push(("c0", f64s(&mut c0.iter())));
    }
    for (param, values) in &g.attention {
        ours.push((param, f64s(&mut values.iter())));
    }
    assert_eq!(ours.len(), grads.as_object().expect("gradients").len(), "{name}: every gradient");
    for (field, values) in ours {
        let want = floats(grads, field);
        assert_eq!(values.len(), want.len(), "{name} d {field}");
        for (k, (got, w)) in values.iter().zip(&want).enumerate() {
            assert!((got - w).abs() <= grad_tol * (1.0 + w.abs()), "{name} d {field}[{k}]: got {got}, want {w}");
        }
    }
    worst
}

#[test]
fn the_attention_decoder_matches_the_numpy_decoder_in_f64_and_f32() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/attention.json"))
        .expect("reference file");
    let doc: Value = serde_json::from_str(&text).expect("reference json");
    let cases = doc["decoder_cases"].as_array().expect("decoder cases");
    assert_eq!(cases.len(), 8);
    let mut worst = (0.0f64, 0.0f64);
    for case in cases {
        worst.0 = worst.0.max(check_decoder::<f64>(case, 1e-10, 1e-6));
        worst.1 = worst.1.max(check_decoder::<f32>(case, 2e-5, 2e-4));
    }
    println!("attention decoder reference: largest output difference f64 {:.2e}, f32 {:.2e}", worst.0, worst.1);
}
