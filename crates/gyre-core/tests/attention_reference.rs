//! Attention (`gyre_core::attention`) against values from an independent NumPy implementation
//! written one query and one memory step at a time (`tests/reference/attention.py`, which checks
//! its own gradients by finite differences): contexts, weights and every gradient, for the dot,
//! general and additive scores with variable lengths (empty sequences included). f64 within
//! 1e-10; f32 within 2e-5.
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
