//! Outputs and gradients against values from an independent NumPy implementation of PyTorch's
//! cells (`tests/reference/generate.py`, which also checks its own gradients by finite
//! differences). f64 within 1e-10; f32 within 2e-5.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

mod common;
use common::{kind, Problem};
use ndarray::{Array1, Array2, Array3};
use serde_json::Value;

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key].as_array().unwrap_or_else(|| panic!("missing {key}")).iter().map(|x| x.as_f64().expect("number")).collect()
}

fn load() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/recurrent.json"))
        .expect("reference file");
    let doc: Value = serde_json::from_str(&text).expect("reference json");
    doc["cases"].as_array().expect("cases").clone()
}

fn problem(case: &Value) -> Problem<f64> {
    let n = |k: &str| case[k].as_u64().expect("size") as usize;
    let (b, t, i, h) = (n("batch"), n("steps"), n("input_size"), n("hidden_size"));
    let kind = kind(case["cell"].as_str().expect("cell"));
    let gh = kind.gates() * h;
    let inp = &case["inputs"];
    let a2 = |k: &str, r: usize, c: usize| Array2::from_shape_vec((r, c), floats(inp, k)).expect(k);
    let lstm = kind.has_cell_state();
    Problem {
        kind,
        x: Array3::from_shape_vec((b, t, i), floats(inp, "x")).expect("x"),
        h0: a2("h0", b, h),
        c0: lstm.then(|| a2("c0", b, h)),
        weight_ih: a2("weight_ih_l0", gh, i),
        weight_hh: a2("weight_hh_l0", gh, h),
        bias_ih: Array1::from(floats(inp, "bias_ih_l0")),
        bias_hh: Array1::from(floats(inp, "bias_hh_l0")),
        grad_output: Array3::from_shape_vec((b, t, h), floats(inp, "grad_output")).expect("grad_output"),
        grad_h_n: a2("grad_h_n", b, h),
        grad_c_n: lstm.then(|| a2("grad_c_n", b, h)),
    }
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: f64 = 0.0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        assert!(err <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
        worst = worst.max(err);
    }
    worst
}

/// Named flat tensors, as f64.
type Named = Vec<(String, Vec<f64>)>;

fn run<F: gyre_core::Real>(p: &Problem<F>) -> (Named, Named) {
    let to = |a: &mut dyn Iterator<Item = &F>| a.map(|v| v.to_f64().unwrap_or(f64::NAN)).collect::<Vec<f64>>();
    let out = gyre_core::forward(p.kind, &p.weights(), p.x.view(), &p.initial()).expect("forward");
    let mut outs =
        vec![("output".to_string(), to(&mut out.output.iter())), ("h_n".to_string(), to(&mut out.state.hidden.iter()))];
    if let Some(c) = &out.state.cell {
        outs.push(("c_n".to_string(), to(&mut c.iter())));
    }
    let g = gyre_core::backward(p.kind, &p.weights(), p.x.view(), &p.initial(), &p.output_grads()).expect("backward");
    let mut grads = vec![
        ("x".to_string(), to(&mut g.input.iter())),
        ("h0".to_string(), to(&mut g.initial.hidden.iter())),
        ("weight_ih_l0".to_string(), to(&mut g.weights.weight_ih.iter())),
        ("weight_hh_l0".to_string(), to(&mut g.weights.weight_hh.iter())),
        ("bias_ih_l0".to_string(), to(&mut g.weights.bias_ih.iter())),
        ("bias_hh_l0".to_string(), to(&mut g.weights.bias_hh.iter())),
    ];
    if let Some(c) = &g.initial.cell {
        grads.push(("c0".to_string(), to(&mut c.iter())));
    }
    (outs, grads)
}

fn cast(p: &Problem<f64>) -> Problem<f32> {
    let c2 = |a: &Array2<f64>| a.mapv(|v| v as f32);
    Problem {
        kind: p.kind,
        x: p.x.mapv(|v| v as f32),
        h0: c2(&p.h0),
        c0: p.c0.as_ref().map(c2),
        weight_ih: c2(&p.weight_ih),
        weight_hh: c2(&p.weight_hh),
        bias_ih: p.bias_ih.mapv(|v| v as f32),
        bias_hh: p.bias_hh.mapv(|v| v as f32),
        grad_output: p.grad_output.mapv(|v| v as f32),
        grad_h_n: c2(&p.grad_h_n),
        grad_c_n: p.grad_c_n.as_ref().map(c2),
    }
}

#[test]
fn every_cell_matches_the_numpy_reference_in_f64_and_f32() {
    let cases = load();
    assert!(cases.len() >= 15, "expected the full reference set, got {} cases", cases.len());
    let mut seen = std::collections::BTreeSet::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        seen.insert(case["cell"].as_str().expect("cell").to_string());
        let p = problem(case);
        for (tol, (outs, grads)) in [(1e-10, run(&p)), (2e-5, run(&cast(&p)))] {
            for (k, got) in outs {
                close(
                    &format!("{name} f{} output {k}", if tol < 1e-6 { 64 } else { 32 }),
                    &got,
                    &floats(&case["outputs"], &k),
                    tol,
                );
            }
            for (k, got) in grads {
                close(&format!("{name} gradient {k} (tol {tol})"), &got, &floats(&case["gradients"], &k), tol);
            }
        }
    }
    assert_eq!(seen.len(), 5, "cells covered: {seen:?}");
}
