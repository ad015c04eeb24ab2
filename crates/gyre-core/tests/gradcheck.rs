//! Finite-difference gradient checks in f64 for every cell: several steps, batch > 1,
//! non-zero initial states, every weight, bias, input and initial-state element.
//! Tolerance: |analytic − numeric| ≤ 1e-6 + 1e-4·|numeric|.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

mod common;
use common::{random_problem, Problem, CELLS, HARD_CELLS};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-4;

/// Returns the largest absolute difference between analytic and central-difference gradients.
fn check(mut p: Problem<f64>) -> f64 {
    let g = gyre_core::backward(p.kind, &p.weights(), p.x.view(), &p.initial(), &p.output_grads()).expect("backward");
    let mut analytic: Vec<(&str, Vec<f64>)> = vec![
        ("x", g.input.iter().copied().collect()),
        ("h0", g.initial.hidden.iter().copied().collect()),
        ("weight_ih_l0", g.weights.weight_ih.iter().copied().collect()),
        ("weight_hh_l0", g.weights.weight_hh.iter().copied().collect()),
        ("bias_ih_l0", g.weights.bias_ih.to_vec()),
        ("bias_hh_l0", g.weights.bias_hh.to_vec()),
    ];
    if let Some(c) = &g.initial.cell {
        analytic.push(("c0", c.iter().copied().collect()));
    }
    let mut worst: f64 = 0.0;
    for (name, grad) in analytic {
        assert_eq!(grad.len(), p.tensor_mut(name).len(), "{name}");
        for (i, &a) in grad.iter().enumerate() {
            let orig = p.tensor_mut(name)[i];
            p.tensor_mut(name)[i] = orig + EPS;
            let up = p.loss();
            p.tensor_mut(name)[i] = orig - EPS;
            let down = p.loss();
            p.tensor_mut(name)[i] = orig;
            let numeric = (up - down) / (2.0 * EPS);
            let err = (a - numeric).abs();
            assert!(
                err <= ATOL + RTOL * numeric.abs(),
                "{:?} d{name}[{i}]: analytic {a}, numeric {numeric}, error {err}",
                p.kind
            );
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn gradients_match_finite_differences_for_every_cell() {
    for (k, cell) in CELLS.iter().enumerate() {
        let mut worst: f64 = 0.0;
        for (j, &(batch, steps, input, hidden)) in [(3, 7, 4, 5), (2, 4, 1, 3), (1, 1, 2, 2)].iter().enumerate() {
            worst =
                worst.max(check(random_problem(cell, batch, steps, input, hidden, 1000 + 10 * k as u64 + j as u64)));
        }
        println!("gradcheck {cell}: largest |analytic - numeric| = {worst:.3e}");
    }
}

/// The hard sigmoid gates, with weights large enough that some gates sit in each flat part
/// (their gradient 0 there) and the rest on the slope.
#[test]
fn gradients_match_finite_differences_for_hard_sigmoid_gates() {
    for (k, cell) in HARD_CELLS.iter().enumerate() {
        let mut worst: f64 = 0.0;
        for (j, &(batch, steps, input, hidden)) in [(3, 6, 4, 5), (2, 3, 2, 3)].iter().enumerate() {
            let mut p = random_problem(cell, batch, steps, input, hidden, 2000 + 10 * k as u64 + j as u64);
            p.weight_ih.mapv_inplace(|w| 4.0 * w);
            p.weight_hh.mapv_inplace(|w| 4.0 * w);
            p.x.mapv_inplace(|v| 2.0 * v);
            // How many gate values are saturated: forward once and count h's extremes through
            // the pre-activations of the first step's gates (x·W_ihᵀ + b alone reach past ±3).
            let pre: Vec<f64> =
                p.x.outer_iter().flat_map(|seq| seq.dot(&p.weight_ih.t()).into_iter().collect::<Vec<_>>()).collect();
            let (low, high) = (pre.iter().filter(|&&v| v < -3.5).count(), pre.iter().filter(|&&v| v > 3.5).count());
            assert!(low > 0 && high > 0 && low + high < pre.len(), "{cell}: {low} low, {high} high of {}", pre.len());
            worst = worst.max(check(p));
        }
        println!("gradcheck {cell}: largest |analytic - numeric| = {worst:.3e}");
    }
}

#[test]
fn zero_output_gradients_give_zero_parameter_gradients() {
    let mut p = random_problem("lstm", 2, 3, 2, 3, 7);
    p.grad_output.fill(0.0);
    p.grad_h_n.fill(0.0);
    if let Some(c) = p.grad_c_n.as_mut() {
        c.fill(0.0);
    }
    let g = gyre_core::backward(p.kind, &p.weights(), p.x.view(), &p.initial(), &p.output_grads()).expect("backward");
    assert!(g.weights.weight_hh.iter().all(|&v| v == 0.0));
    assert!(g.input.iter().all(|&v| v == 0.0));
}
