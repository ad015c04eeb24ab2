//! The driver with a trivial cell, `h_t = a·h_prev + x_t·W_ihᵀ + b_ih`, whose outputs and
//! gradients have closed forms: time-order, direction, packing, state-carry and
//! accumulation bugs show here without any gate math in the way.

use super::backward::backward_sequence;
use super::cell::{BackwardStep, Cell, Dims, ForwardStep};
use super::packing::Packing;
use super::pass::Transposed;
use super::sequence::{forward_sequence, infer_sequence};
use super::shards::shards;
use super::trace::{PrevRun, Trace};
use super::weights::LayerWeights;
use crate::error::{CoreError, Result};
use ndarray::ArrayView2;
use ndarray::{Array1, Array2};

const A: f64 = 0.5;

struct Leaky;

impl Cell<f64> for Leaky {
    fn gates(&self) -> usize {
        1
    }
    fn forward_step(&self, s: ForwardStep<'_, '_, f64>) -> Result<()> {
        for ((h, &hp), g) in s.h.iter_mut().zip(s.h_prev).zip(s.gates.iter()) {
            *h = A * hp + g;
        }
        Ok(())
    }
    fn backward_step(&self, s: BackwardStep<'_, '_, f64>) -> Result<()> {
        s.dgx.copy_from_slice(s.dh);
        for (p, &d) in s.dh_prev.iter_mut().zip(s.dh) {
            *p = A * d;
        }
        Ok(())
    }
    // The trivial cell ignores W_hh: its gradient is zero, unlike the default product.
    fn weight_hh_grad(
        &self,
        _: ArrayView2<f64>,
        _: ArrayView2<f64>,
        _: ArrayView2<f64>,
        _: ArrayView2<f64>,
        mut d: ndarray::ArrayViewMut2<f64>,
    ) -> Result<()> {
        d.fill(0.0);
        Ok(())
    }
}

/// Checks outputs, final states and gradients of the leaky sum against closed forms for
/// sequences of the given (decreasing) lengths, in one direction.
fn check_closed_form(lengths: &[usize], reverse: bool) {
    let hidden = 3usize;
    let batch = lengths.len();
    let packing = Packing::from_sorted_lengths(lengths).expect("packing");
    let rows = packing.rows();
    assert_eq!(rows, lengths.iter().sum::<usize>());
    // W_ih = identity, so the projection of x is x + b.
    let w_ih = Array2::from_shape_fn((hidden, hidden), |(i, j)| if i == j { 1.0 } else { 0.0 });
    let w_hh = Array2::zeros((hidden, hidden));
    let b_ih = Array1::from(vec![0.25, -0.5, 1.0]);
    let b_hh = Array1::zeros(hidden);
    let w = LayerWeights { weight_ih: w_ih.view(), weight_hh: w_hh.view(), bias_ih: b_ih.view(), bias_hh: b_hh.view() };
    // Distinct values at every packed row, so a reversed, shifted or mis-packed loop shows.
    let x = Array2::from_shape_fn((rows, hidden), |(r, j)| (r * 10 + j) as f64 * 0.1 - 1.0);
    let h0: Vec<f64> = (0..batch * hidden).map(|i| i as f64 - 2.0).collect();
    let trace = forward_sequence(&Leaky, &w, x.view(), &packing, reverse, &h0, &[]).expect("forward");
    let inferred = infer_sequence(&Leaky, &w, None, x.view(), &packing, reverse, &h0, &[]).expect("infer");
    assert_eq!((&inferred.h, &inferred.h_n), (&trace.h, &trace.final_hidden()));

    let row = |t: usize, b: usize| packing.offset(t) + b;
    let xp = |t: usize, b: usize, j: usize| x[[row(t, b), j]] + b_ih[j];
    let pow = |e: usize| A.powi(e as i32);
    let close = |got: f64, want: f64, what: &str| assert!((got - want).abs() < 1e-10, "{what}: {got} vs {want}");
    for (b, &len) in lengths.iter().enumerate() {
        for j in 0..hidden {
            let h0v = h0[b * hidden + j];
            // Forwards h_t = a^(t+1)·h0 + Σ_{s≤t} a^(t−s)·xp_s; in reverse
            // h_t = a^(len−t)·h0 + Σ_{s≥t} a^(s−t)·xp_s.
            let h_at = |t: usize| {
                if reverse {
                    pow(len - t) * h0v + (t..len).map(|s| pow(s - t) * xp(s, b, j)).sum::<f64>()
                } else {
                    pow(t + 1) * h0v + (0..=t).map(|s| pow(t - s) * xp(s, b, j)).sum::<f64>()
                }
            };
            for t in 0..len {
                close(trace.outputs()[row(t, b) * hidden + j], h_at(t), &format!("h[{t},{b},{j}]"));
            }
            let last = if reverse { 0 } else { len - 1 };
            close(trace.final_hidden()[b * hidden + j], h_at(last), &format!("h_n[{b},{j}]"));
        }
    }

    let d_out: Vec<f64> = (0..rows * hidden).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
    let d_hn: Vec<f64> = (0..batch * hidden).map(|i| i as f64 * 0.5).collect();
    let g = backward_sequence(&Leaky, &w, x.view(), trace, &d_out, &d_hn, &[], true).expect("backward");
    let mut db = [0.0; 3];
    for (b, &len) in lengths.iter().enumerate() {
        for j in 0..hidden {
            let dout = |t: usize| d_out[row(t, b) * hidden + j];
            let dhn = d_hn[b * hidden + j];
            // dL/dxp_s, and dL/dh0.
            let dxp = |s: usize| {
                if reverse {
                    (0..=s).map(|t| pow(s - t) * dout(t)).sum::<f64>() + pow(s) * dhn
                } else {
                    (s..len).map(|t| pow(t - s) * dout(t)).sum::<f64>() + pow(len - 1 - s) * dhn
                }
            };
            let dh0 = if reverse {
                (0..len).map(|t| pow(len - t) * dout(t)).sum::<f64>() + pow(len) * dhn
            } else {
                (0..len).map(|t| pow(t + 1) * dout(t)).sum::<f64>() + pow(len) * dhn
            };
            for s in 0..len {
                close(g.input[[row(s, b), j]], dxp(s), &format!("dx[{s},{b},{j}]"));
                db[j] += dxp(s);
            }
            close(g.h0[b * hidden + j], dh0, &format!("dh0[{b},{j}]"));
        }
    }
    for (j, &want) in db.iter().enumerate() {
        close(g.weights.bias_ih[j], want, &format!("db[{j}]"));
        for k in 0..hidden {
            let want: f64 = (0..rows).map(|r| g.input[[r, j]] * x[[r, k]]).sum();
            close(g.weights.weight_ih[[j, k]], want, &format!("dW_ih[{j},{k}]"));
        }
    }
    assert!(g.weights.weight_hh.iter().all(|&v| v == 0.0));
    assert!(g.c0.is_empty());
}

#[test]
fn equal_lengths_forwards_and_in_reverse() {
    check_closed_form(&[5, 5], false);
    check_closed_form(&[5, 5], true);
}

#[test]
fn variable_lengths_forwards_and_in_reverse() {
    check_closed_form(&[6, 4, 4, 1], false);
    check_closed_form(&[6, 4, 4, 1], true);
    check_closed_form(&[1], true);
}

/// The inference pass gives the training pass's outputs and final states bit for bit, for
/// every cell, variable lengths, both directions and several projection groups.
#[test]
fn inference_pass_matches_the_training_pass() {
    use crate::rnn::cells::{GateActivation, GruCell, LstmCell, Nonlinearity, RnnCell};
    const ACTIVATIONS: [GateActivation; 3] =
        [GateActivation::Sigmoid, GateActivation::HardSigmoidTfjs, GateActivation::HardSigmoidKeras3];
    let (input, hidden) = (3usize, 4usize);
    let val = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 0.8;
    fn run<C: Cell<f64>>(cell: &C, w: &LayerWeights<f64>, x: ArrayView2<f64>, p: &Packing, h0: &[f64], c0: &[f64]) {
        for reverse in [false, true] {
            let t = forward_sequence(cell, w, x, p, reverse, h0, c0).expect("forward");
            let o = infer_sequence(cell, w, None, x, p, reverse, h0, c0).expect("infer");
            let given = Transposed::of(w).expect("transpose");
            let o2 = infer_sequence(cell, w, Some(&given), x, p, reverse, h0, c0).expect("infer");
            assert_eq!((&o2.h, &o2.h_n, &o2.c_n), (&o.h, &o.h_n, &o.c_n), "given transposes");
            assert_eq!(o.h, t.h, "outputs, reverse {reverse}");
            assert_eq!(o.h_n, t.final_hidden(), "h_n, reverse {reverse}");
            assert_eq!(o.c_n, t.final_cell(), "c_n, reverse {reverse}");
        }
    }
    for lengths in [vec![7, 5, 5, 2, 1], vec![4, 4, 4], vec![1], vec![9]] {
        let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
        let (rows, batch) = (packing.rows(), packing.batch());
        let x = Array2::from_shape_fn((rows, input), |(r, j)| val(r * input + j, 1) * 2.0);
        let h0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 2)).collect();
        let c0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
        for gates in [1, 3, 4] {
            let gh = gates * hidden;
            let w_ih = Array2::from_shape_fn((gh, input), |(i, j)| val(i * input + j, 4));
            let w_hh = Array2::from_shape_fn((gh, hidden), |(i, j)| val(i * hidden + j, 5));
            let (b_ih, b_hh) = (Array1::from_shape_fn(gh, |i| val(i, 6)), Array1::from_shape_fn(gh, |i| val(i, 7)));
            let w = LayerWeights {
                weight_ih: w_ih.view(),
                weight_hh: w_hh.view(),
                bias_ih: b_ih.view(),
                bias_hh: b_hh.view(),
            };
            match gates {
                1 => run(&RnnCell { nonlinearity: Nonlinearity::Tanh }, &w, x.view(), &packing, &h0, &[]),
                3 => {
                    for recurrent in ACTIVATIONS {
                        run(&GruCell { reset_after: true, recurrent }, &w, x.view(), &packing, &h0, &[]);
                        run(&GruCell { reset_after: false, recurrent }, &w, x.view(), &packing, &h0, &[]);
                    }
                }
                _ => {
                    for recurrent in ACTIVATIONS {
                        run(&LstmCell { recurrent }, &w, x.view(), &packing, &h0, &c0);
                    }
                }
            }
        }
    }
}

#[test]
fn packing_rejects_unsorted_empty_and_zero_lengths() {
    assert!(Packing::from_sorted_lengths(&[2, 3]).is_err());
    assert!(Packing::from_sorted_lengths(&[]).is_err());
    let err = Packing::from_sorted_lengths(&[3, 0]).expect_err("zero length");
    assert!(err.to_string().contains("lengths[1]"), "{err}");
    let p = Packing::from_sorted_lengths(&[3, 2, 2]).expect("packing");
    assert_eq!((p.batch(), p.steps(), p.rows()), (3, 3, 7));
    assert_eq!((p.rows_at(2), p.offset(2), p.length(1)), (1, 6, 2));
}

#[test]
fn input_rows_must_match_the_packing() {
    let w_ih = Array2::<f64>::zeros((1, 1));
    let b = Array1::zeros(1);
    let w = LayerWeights { weight_ih: w_ih.view(), weight_hh: w_ih.view(), bias_ih: b.view(), bias_hh: b.view() };
    let x = Array2::zeros((5, 1));
    let packing = Packing::uniform(2, 2).expect("packing");
    let err = forward_sequence(&Leaky, &w, x.view(), &packing, false, &[0.0, 0.0], &[]).expect_err("5 rows, 4 packed");
    assert!(matches!(err, CoreError::ShapeMismatch { .. }), "{err}");
}

/// Every packed row's starting state, as `prev_runs` gives it, is the one the forward pass
/// started it from: the previous step's row of `h` for a sequence that carries on, else
/// its initial state; every row is covered exactly once.
#[test]
fn prev_runs_give_each_row_the_state_it_started_from() {
    for reverse in [false, true] {
        for lengths in [vec![4usize, 4, 4], vec![5, 3, 3, 1], vec![2, 1], vec![1]] {
            let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
            let (rows, batch) = (packing.rows(), lengths.len());
            let trace = Trace {
                dims: Dims { batch, input: 1, hidden: 1 },
                packing: packing.clone(),
                reverse,
                gates: Vec::new(),
                h: (0..rows).map(|r| r as f64).collect(),
                c: Vec::new(),
                h0: (0..batch).map(|b| -(b as f64) - 1.0).collect(),
                c0: Vec::new(),
                extra: Vec::new(),
            };
            let mut want = vec![f64::NAN; rows];
            for p in 0..packing.steps() {
                let t = packing.step(p, reverse);
                let prev = (p > 0).then(|| packing.step(p - 1, reverse));
                let from_prev = prev.map_or(0, |q| packing.rows_at(q).min(packing.rows_at(t)));
                for i in 0..packing.rows_at(t) {
                    want[packing.offset(t) + i] = match prev {
                        Some(q) if i < from_prev => (packing.offset(q) + i) as f64,
                        _ => -(i as f64) - 1.0,
                    };
                }
            }
            let mut got = vec![f64::NAN; rows];
            for PrevRun { r0, len, from_h, src0 } in trace.prev_runs() {
                for i in 0..len {
                    assert!(got[r0 + i].is_nan(), "row {} twice ({lengths:?}, reverse {reverse})", r0 + i);
                    got[r0 + i] = if from_h { trace.h[src0 + i] } else { trace.h0[src0 + i] };
                }
            }
            assert_eq!(got, want, "{lengths:?}, reverse {reverse}");
        }
    }
    // Equal lengths: one run from the initial state and one through h, in each direction.
    let packing = Packing::uniform(3, 5).expect("packing");
    for reverse in [false, true] {
        let zeros = vec![0.0f64; 15];
        let trace = Trace {
            dims: Dims { batch: 3, input: 1, hidden: 1 },
            packing: packing.clone(),
            reverse,
            gates: Vec::new(),
            h: zeros,
            c: Vec::new(),
            h0: vec![0.0; 3],
            c0: Vec::new(),
            extra: Vec::new(),
        };
        assert_eq!(trace.prev_runs().len(), 2, "reverse {reverse}");
    }
}

/// Shards (training in a pool with threads) and row blocks (inference in one) give the bits
/// of the single-threaded pass: outputs, states, every gradient, for every cell, variable
/// lengths and both directions.
#[test]
fn shards_and_row_blocks_give_the_bits_of_one_thread() {
    use crate::rnn::cells::{AnyCell, GateActivation, GruCell, LstmCell, Nonlinearity, RnnCell};
    let (input, hidden) = (5usize, 6usize);
    let val = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 0.8;
    type Out = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    fn pass<C: Cell<f64>>(
        cell: &C,
        w: &LayerWeights<f64>,
        x: ArrayView2<f64>,
        p: &Packing,
        st: [&[f64]; 4],
        rev: bool,
    ) -> Out {
        let [h0, c0, d_out, d_hn] = st;
        let t = forward_sequence(cell, w, x, p, rev, h0, c0).expect("forward");
        let (h, c) = (t.h.clone(), t.c.clone());
        let g = backward_sequence(cell, w, x, t, d_out, d_hn, &[], true).expect("backward");
        let wg = g.weights;
        let flat = |a: &Array2<f64>| a.iter().copied().collect::<Vec<_>>();
        let mut weights = flat(&wg.weight_ih);
        weights.extend(flat(&wg.weight_hh));
        weights.extend(wg.bias_ih.iter().chain(wg.bias_hh.iter()));
        (h, c, g.h0, g.c0, flat(&g.input), weights)
    }
    let cells = [
        AnyCell::Lstm(LstmCell::default()),
        AnyCell::Gru(GruCell { reset_after: true, recurrent: GateActivation::Sigmoid }),
        AnyCell::Gru(GruCell { reset_after: false, recurrent: GateActivation::Sigmoid }),
        AnyCell::Rnn(RnnCell { nonlinearity: Nonlinearity::Tanh }),
        AnyCell::Lstm(LstmCell { recurrent: GateActivation::HardSigmoidTfjs }),
        AnyCell::Gru(GruCell { reset_after: true, recurrent: GateActivation::HardSigmoidKeras3 }),
        AnyCell::Gru(GruCell { reset_after: false, recurrent: GateActivation::HardSigmoidTfjs }),
    ];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
    for lengths in [vec![9, 9, 8, 7, 7, 5, 5, 4, 3, 2, 2, 1, 1], vec![6; 12], vec![5; 8]] {
        let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
        assert!(pool.install(|| shards(&packing, 1)).len() > 2, "{lengths:?} runs in shards");
        let (rows, batch) = (packing.rows(), packing.batch());
        let x = Array2::from_shape_fn((rows, input), |(r, j)| val(r * input + j, 1) * 2.0);
        let h0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 2)).collect();
        let c0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
        let d_out: Vec<f64> = (0..rows * hidden).map(|i| val(i, 8)).collect();
        let d_hn: Vec<f64> = (0..batch * hidden).map(|i| val(i, 9)).collect();
        for cell in cells {
            let gh = Cell::<f64>::gates(&cell) * hidden;
            let w_ih = Array2::from_shape_fn((gh, input), |(i, j)| val(i * input + j, 4));
            let w_hh = Array2::from_shape_fn((gh, hidden), |(i, j)| val(i * hidden + j, 5));
            let (b_ih, b_hh) = (Array1::from_shape_fn(gh, |i| val(i, 6)), Array1::from_shape_fn(gh, |i| val(i, 7)));
            let w = LayerWeights {
                weight_ih: w_ih.view(),
                weight_hh: w_hh.view(),
                bias_ih: b_ih.view(),
                bias_hh: b_hh.view(),
            };
            let c0: &[f64] = if Cell::<f64>::has_cell_state(&cell) { &c0 } else { &[] };
            for rev in [false, true] {
                let st = [&h0[..], c0, &d_out[..], &d_hn[..]];
                let one = pass(&cell, &w, x.view(), &packing, st, rev);
                let shards = pool.install(|| pass(&cell, &w, x.view(), &packing, st, rev));
                assert_eq!(one, shards, "{cell:?}, {lengths:?}, reverse {rev}");
                // Inference splits each step's rows over the pool instead: the same bits.
                let infer = || infer_sequence(&cell, &w, None, x.view(), &packing, rev, &h0, c0).expect("infer");
                let (a, b) = (infer(), pool.install(infer));
                assert_eq!(
                    (&a.h, &a.h_n, &a.c_n),
                    (&b.h, &b.h_n, &b.c_n),
                    "inference, {cell:?}, {lengths:?}, reverse {rev}"
                );
                assert_eq!(one.0, b.h, "inference against training, {cell:?}");
            }
        }
    }
}
