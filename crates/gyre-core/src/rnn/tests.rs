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
                noise: super::noise::Noise::none(),
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
            noise: super::noise::Noise::none(),
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
        let c0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
        let d_out: Vec<f64> = (0..rows * hidden).map(|i| val(i, 8)).collect();
        let d_hn: Vec<f64> = (0..batch * hidden).map(|i| val(i, 9)).collect();
        // A given state, and the zero state (whose first step skips its recurrent products).
        for (cell, h0) in cells.into_iter().flat_map(|c| {
            [(c, (0..batch * hidden).map(|i| val(i, 2)).collect::<Vec<f64>>()), (c, vec![0.0; batch * hidden])]
        }) {
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

/// The cells of the noise tests: every kind and gate variant that has its own backward code.
fn noise_cells() -> [crate::rnn::cells::AnyCell; 5] {
    use crate::rnn::cells::{AnyCell, GateActivation, GruCell, LstmCell, Nonlinearity, RnnCell};
    [
        AnyCell::Lstm(LstmCell::default()),
        AnyCell::Gru(GruCell { reset_after: true, recurrent: GateActivation::Sigmoid }),
        AnyCell::Gru(GruCell { reset_after: false, recurrent: GateActivation::Sigmoid }),
        AnyCell::Rnn(RnnCell { nonlinearity: Nonlinearity::Tanh }),
        AnyCell::Rnn(RnnCell { nonlinearity: Nonlinearity::Relu }),
    ]
}

/// A layer's weights for `gates` gate blocks (owned; see [`OwnedWeights::view`]).
struct OwnedWeights {
    w_ih: Array2<f64>,
    w_hh: Array2<f64>,
    b_ih: Array1<f64>,
    b_hh: Array1<f64>,
}

impl OwnedWeights {
    fn new(gates: usize, input: usize, hidden: usize, salt: usize) -> Self {
        let val = |i: usize, s: usize| (((i * 7919 + (s + salt) * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.2;
        let gh = gates * hidden;
        OwnedWeights {
            w_ih: Array2::from_shape_fn((gh, input), |(i, j)| val(i * input + j, 4)),
            w_hh: Array2::from_shape_fn((gh, hidden), |(i, j)| val(i * hidden + j, 5)),
            b_ih: Array1::from_shape_fn(gh, |i| val(i, 6)),
            b_hh: Array1::from_shape_fn(gh, |i| val(i, 7)),
        }
    }
    fn view(&self) -> LayerWeights<'_, f64> {
        LayerWeights {
            weight_ih: self.w_ih.view(),
            weight_hh: self.w_hh.view(),
            bias_ih: self.b_ih.view(),
            bias_hh: self.b_hh.view(),
        }
    }
}

/// Recurrent dropout and zoneout masks for a pass: the recurrent mask `0` or `1 / (1 − 0.4)`
/// per sequence and unit, the zoneout draws `0` or `1` per packed row and unit (about 30%).
fn draws(packing: &Packing, hidden: usize, seed: u64) -> super::noise::Noise<f64> {
    let mut rng = crate::random::Rng::new(seed);
    let recurrent = (0..packing.batch() * hidden).map(|_| if rng.uniform() < 0.6 { 1.0 / 0.6 } else { 0.0 }).collect();
    let zone = (0..packing.rows() * hidden).map(|_| if rng.uniform() < 0.3 { 1.0 } else { 0.0 }).collect();
    super::noise::Noise { recurrent, zone, zoneout: 0.3 }
}

/// Recurrent dropout and zoneout against the same recurrence written one sequence and one step
/// at a time (each step a batch-1 call of the cell, its products on the masked state and the
/// GRU's carry on the unmasked one, then the blend):
/// training's drawn masks and inference's expectation, for every cell, variable lengths and
/// both directions; the driver's masks are one per sequence for every step.
#[test]
fn recurrent_dropout_and_zoneout_are_the_recurrence_written_step_by_step() {
    use super::noise::Noise;
    use super::sequence::{forward_with_noise, infer_with_noise};
    let (input, hidden) = (3usize, 4usize);
    let lengths = [6usize, 5, 5, 2];
    let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
    let (rows, batch) = (packing.rows(), packing.batch());
    let val = |i: usize, s: usize| (((i * 7919 + s * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.6;
    let x = Array2::from_shape_fn((rows, input), |(r, j)| val(r * input + j, 1));
    let h0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 2)).collect();
    let c0: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
    for cell in noise_cells() {
        let (gates, has_c) = (Cell::<f64>::gates(&cell), Cell::<f64>::has_cell_state(&cell));
        let (gh, width) = (gates * hidden, Cell::<f64>::extra(&cell) * hidden);
        let owned = OwnedWeights::new(gates, input, hidden, 0);
        let w = owned.view();
        let c0: &[f64] = if has_c { &c0 } else { &[] };
        for reverse in [false, true] {
            for noise in [draws(&packing, hidden, 11), Noise::expected_zoneout(0.3)] {
                let mut want_h = vec![0.0; rows * hidden];
                let mut want_c = vec![0.0; if has_c { rows * hidden } else { 0 }];
                for (b, &len) in lengths.iter().enumerate() {
                    let mut h = h0[b * hidden..(b + 1) * hidden].to_vec();
                    let mut c = if has_c { c0[b * hidden..(b + 1) * hidden].to_vec() } else { vec![] };
                    for k in 0..len {
                        let t = if reverse { len - 1 - k } else { k };
                        let row = packing.offset(t) + b;
                        let mut g: Vec<f64> = (0..gh)
                            .map(|i| owned.b_ih[i] + (0..input).map(|j| x[[row, j]] * owned.w_ih[[i, j]]).sum::<f64>())
                            .collect();
                        let read: Vec<f64> = match noise.recurrent.is_empty() {
                            true => h.clone(),
                            false => (0..hidden).map(|j| h[j] * noise.recurrent[b * hidden + j]).collect(),
                        };
                        let (mut h_new, mut c_new) = (vec![0.0; hidden], vec![0.0; c.len()]);
                        let (mut extra, mut scratch) = (vec![0.0; width], vec![0.0; gh]);
                        let step = ForwardStep {
                            dims: Dims { batch: 1, input, hidden },
                            w_hh: owned.w_hh.as_slice().expect("contiguous"),
                            w_hh_t: &[],
                            b_hh: owned.b_hh.as_slice().expect("contiguous"),
                            gates: &mut g,
                            h_prev: &read,
                            h_prev_zero: false,
                            h_carry: &h,
                            c_prev: &c,
                            h: &mut h_new,
                            c: &mut c_new,
                            extra: &mut extra,
                            scratch: &mut scratch,
                        };
                        cell.forward_step(step).expect("step");
                        let d = |j: usize| if noise.zone.is_empty() { 0.3 } else { noise.zone[row * hidden + j] };
                        for j in 0..hidden {
                            h[j] = d(j) * h[j] + (1.0 - d(j)) * h_new[j];
                            if has_c {
                                c[j] = d(j) * c[j] + (1.0 - d(j)) * c_new[j];
                            }
                        }
                        want_h[row * hidden..(row + 1) * hidden].copy_from_slice(&h);
                        if has_c {
                            want_c[row * hidden..(row + 1) * hidden].copy_from_slice(&c);
                        }
                    }
                }
                let what = format!("{cell:?}, reverse {reverse}, drawn {}", !noise.zone.is_empty());
                let trace = forward_with_noise(&cell, &w, x.view(), &packing, reverse, &h0, c0, noise.clone())
                    .expect("forward");
                let close = |a: &[f64], b: &[f64], part: &str| {
                    assert_eq!(a.len(), b.len());
                    for (i, (p, q)) in a.iter().zip(b).enumerate() {
                        assert!((p - q).abs() < 1e-12, "{what}: {part}[{i}] {p} vs {q}");
                    }
                };
                close(&trace.h, &want_h, "h");
                close(&trace.c, &want_c, "c");
                // Inference runs the expectation only: the masks are training's.
                if noise.zone.is_empty() {
                    let o =
                        infer_with_noise(&cell, &w, None, x.view(), &packing, reverse, &h0, c0, noise).expect("infer");
                    assert_eq!(
                        (&o.h, &o.h_n, &o.c_n),
                        (&trace.h, &trace.final_hidden(), &trace.final_cell()),
                        "{what}"
                    );
                }
            }
        }
    }
}

/// Backpropagation through recurrent dropout and zoneout with the masks fixed, against central
/// finite differences in f64 of `L = Σ g·h + Σ g_n·h_n + Σ g_c·c_n`, for the input, both initial
/// states and every weight; every cell, variable lengths, both directions; and the same bits on
/// a pool of threads (shards) as on one. A pass that ran zoneout's expectation is refused.
#[test]
fn recurrent_dropout_and_zoneout_gradients_match_finite_differences() {
    let (input, hidden) = (2usize, 3usize);
    let val = |i: usize, s: usize| (((i * 7919 + s * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.6;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
    for lengths in [vec![5usize, 4, 4, 2, 1], vec![9, 9, 8, 7, 7, 5, 5, 4, 3, 2, 2, 1, 1]] {
        let packing = Packing::from_sorted_lengths(&lengths).expect("packing");
        let (rows, batch) = (packing.rows(), packing.batch());
        let sharded = pool.install(|| shards(&packing, 1)).len() > 2;
        let x0 = Array2::from_shape_fn((rows, input), |(r, j)| val(r * input + j, 1));
        let h00: Vec<f64> = (0..batch * hidden).map(|i| val(i, 2)).collect();
        let c00: Vec<f64> = (0..batch * hidden).map(|i| val(i, 3)).collect();
        let g_out: Vec<f64> = (0..rows * hidden).map(|i| val(i, 8)).collect();
        let g_hn: Vec<f64> = (0..batch * hidden).map(|i| val(i, 9)).collect();
        let g_cn: Vec<f64> = (0..batch * hidden).map(|i| val(i, 10)).collect();
        let noise = draws(&packing, hidden, 5);
        for cell in noise_cells() {
            let (gates, has_c) = (Cell::<f64>::gates(&cell), Cell::<f64>::has_cell_state(&cell));
            let base = OwnedWeights::new(gates, input, hidden, 3);
            let c00: &[f64] = if has_c { &c00 } else { &[] };
            let g_cn: &[f64] = if has_c { &g_cn } else { &[] };
            for reverse in [false, true] {
                let what = format!("{cell:?}, {lengths:?}, reverse {reverse}");
                let run = |o: &OwnedWeights, x: &Array2<f64>, h0: &[f64], c0: &[f64]| {
                    let t = super::sequence::forward_with_noise(
                        &cell,
                        &o.view(),
                        x.view(),
                        &packing,
                        reverse,
                        h0,
                        c0,
                        noise.clone(),
                    )
                    .expect("forward");
                    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
                    let loss = dot(&t.h, &g_out) + dot(&t.final_hidden(), &g_hn) + dot(&t.final_cell(), g_cn);
                    (loss, t)
                };
                let grads = |o: &OwnedWeights| {
                    let (_, t) = run(o, &x0, &h00, c00);
                    backward_sequence(&cell, &o.view(), x0.view(), t, &g_out, &g_hn, g_cn, true).expect("backward")
                };
                let g = grads(&base);
                if !sharded {
                    // The small batch checks the gradients; the large one that shards give the same bits.
                    let eps = 1e-6;
                    let check = |analytic: f64, up: f64, down: f64, name: String| {
                        let numeric = (up - down) / (2.0 * eps);
                        let err = (analytic - numeric).abs();
                        assert!(
                            err <= 1e-7 + 1e-5 * numeric.abs(),
                            "{what}: {name}: analytic {analytic}, numeric {numeric}"
                        );
                    };
                    for k in 0..x0.len() {
                        let (mut up, mut down) = (x0.clone(), x0.clone());
                        up.as_slice_mut().expect("x")[k] += eps;
                        down.as_slice_mut().expect("x")[k] -= eps;
                        let a = g.input.as_slice().expect("dx")[k];
                        check(a, run(&base, &up, &h00, c00).0, run(&base, &down, &h00, c00).0, format!("x[{k}]"));
                    }
                    for k in 0..h00.len() {
                        let (mut up, mut down) = (h00.clone(), h00.clone());
                        up[k] += eps;
                        down[k] -= eps;
                        check(g.h0[k], run(&base, &x0, &up, c00).0, run(&base, &x0, &down, c00).0, format!("h0[{k}]"));
                    }
                    for k in 0..c00.len() {
                        let (mut up, mut down) = (c00.to_vec(), c00.to_vec());
                        up[k] += eps;
                        down[k] -= eps;
                        check(
                            g.c0[k],
                            run(&base, &x0, &h00, &up).0,
                            run(&base, &x0, &h00, &down).0,
                            format!("c0[{k}]"),
                        );
                    }
                    type Field = fn(&mut OwnedWeights) -> &mut [f64];
                    let fields: [(&str, Field, &[f64]); 4] = [
                        (
                            "weight_ih",
                            |o| o.w_ih.as_slice_mut().expect("w"),
                            g.weights.weight_ih.as_slice().expect("g"),
                        ),
                        (
                            "weight_hh",
                            |o| o.w_hh.as_slice_mut().expect("w"),
                            g.weights.weight_hh.as_slice().expect("g"),
                        ),
                        ("bias_ih", |o| o.b_ih.as_slice_mut().expect("w"), g.weights.bias_ih.as_slice().expect("g")),
                        ("bias_hh", |o| o.b_hh.as_slice_mut().expect("w"), g.weights.bias_hh.as_slice().expect("g")),
                    ];
                    for (name, field, analytic) in fields {
                        for (k, &a) in analytic.iter().enumerate() {
                            let mut up = OwnedWeights::new(gates, input, hidden, 3);
                            let mut down = OwnedWeights::new(gates, input, hidden, 3);
                            field(&mut up)[k] += eps;
                            field(&mut down)[k] -= eps;
                            let (l_up, l_down) = (run(&up, &x0, &h00, c00).0, run(&down, &x0, &h00, c00).0);
                            check(a, l_up, l_down, format!("{name}[{k}]"));
                        }
                    }
                } else {
                    let many = pool.install(|| grads(&base));
                    let flat = |s: &super::trace::SequenceGrads<f64>| {
                        let w = &s.weights;
                        let mut v: Vec<f64> = s.input.iter().chain(&s.h0).chain(&s.c0).copied().collect();
                        v.extend(
                            w.weight_ih
                                .iter()
                                .chain(w.weight_hh.iter())
                                .chain(w.bias_ih.iter())
                                .chain(w.bias_hh.iter()),
                        );
                        v
                    };
                    assert_eq!(flat(&g), flat(&many), "{what}: shards");
                    let (one, _) = run(&base, &x0, &h00, c00);
                    let (two, _) = pool.install(|| run(&base, &x0, &h00, c00));
                    assert_eq!(one.to_bits(), two.to_bits(), "{what}: forward in shards");
                }
            }
            // The expectation blends away the cell's states: its trace cannot be differentiated.
            let expected = super::noise::Noise::expected_zoneout(0.3);
            let t = super::sequence::forward_with_noise(
                &cell,
                &base.view(),
                x0.view(),
                &packing,
                false,
                &h00,
                c00,
                expected,
            )
            .expect("forward");
            let err =
                backward_sequence(&cell, &base.view(), x0.view(), t, &g_out, &[], &[], false).expect_err("refused");
            assert!(err.to_string().contains("zoneout"), "{err}");
        }
    }
}

/// With every unit of the recurrent dropout mask dropped, the products see a zero state: one
/// step is each cell's formula with `h_prev = 0` in every product, written out here, and the
/// GRU still carries `z·h_prev` of the unmasked state (Keras' `recurrent_dropout`).
#[test]
fn a_fully_dropped_hidden_state_leaves_the_products_and_keeps_the_grus_carry() {
    use super::noise::Noise;
    let (input, hidden) = (2usize, 3usize);
    let packing = Packing::uniform(2, 1).expect("packing");
    let x = Array2::from_shape_fn((2, input), |(r, j)| 0.3 * r as f64 - 0.4 * j as f64 + 0.1);
    let h0: Vec<f64> = (0..2 * hidden).map(|i| 0.2 * i as f64 - 0.5).collect();
    let c0: Vec<f64> = (0..2 * hidden).map(|i| 0.5 - 0.15 * i as f64).collect();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    for cell in noise_cells() {
        let (gates, has_c) = (Cell::<f64>::gates(&cell), Cell::<f64>::has_cell_state(&cell));
        let o = OwnedWeights::new(gates, input, hidden, 1);
        let c0: &[f64] = if has_c { &c0 } else { &[] };
        let noise = Noise { recurrent: vec![0.0; 2 * hidden], ..Noise::none() };
        let t = super::sequence::forward_with_noise(&cell, &o.view(), x.view(), &packing, false, &h0, c0, noise)
            .expect("forward");
        for b in 0..2 {
            // Gate block k, unit j, with the products of a zero state: x·W_ihᵀ + b_ih (+ b_hh).
            let pre = |k: usize, j: usize, with_b_hh: bool| {
                let i = k * hidden + j;
                let x_part = (0..input).map(|q| x[[b, q]] * o.w_ih[[i, q]]).sum::<f64>() + o.b_ih[i];
                x_part + if with_b_hh { o.b_hh[i] } else { 0.0 }
            };
            for j in 0..hidden {
                let want = match cell {
                    crate::rnn::cells::AnyCell::Rnn(r) => match r.nonlinearity {
                        crate::rnn::cells::Nonlinearity::Tanh => pre(0, j, true).tanh(),
                        crate::rnn::cells::Nonlinearity::Relu => pre(0, j, true).max(0.0),
                    },
                    crate::rnn::cells::AnyCell::Lstm(_) => {
                        let (i, f, g, og) =
                            (sig(pre(0, j, true)), sig(pre(1, j, true)), pre(2, j, true).tanh(), sig(pre(3, j, true)));
                        let c = f * c0[b * hidden + j] + i * g;
                        assert!((t.c[b * hidden + j] - c).abs() < 1e-12, "{cell:?}: c");
                        og * c.tanh()
                    }
                    crate::rnn::cells::AnyCell::Gru(g) => {
                        let (r, z) = (sig(pre(0, j, true)), sig(pre(1, j, true)));
                        let b_hn = o.b_hh[2 * hidden + j];
                        // After: r·(0·W_hnᵀ + b_hn); before: (r·0)·W_hnᵀ + b_hn.
                        let n = (pre(2, j, false) + if g.reset_after { r * b_hn } else { b_hn }).tanh();
                        (1.0 - z) * n + z * h0[b * hidden + j]
                    }
                };
                let got = t.h[b * hidden + j];
                assert!((got - want).abs() < 1e-12, "{cell:?}, sequence {b}, unit {j}: {got} vs {want}");
            }
        }
    }
}

/// A step of `cell` from a zero `h_prev` (batch 3, hidden 5, the projected gates and `c_prev`
/// nonzero; a NaN among the projected gates at `nan`), its recurrent products computed
/// (`h_prev_zero` false) or skipped (true), in `F`: the step's outputs, gates and kept values.
fn zero_step<F: crate::kernels::real::Real>(
    cell: &crate::rnn::cells::AnyCell,
    w_hh: &[F],
    skip: bool,
    nan: Option<usize>,
) -> Vec<F> {
    let (batch, hidden) = (3usize, 5usize);
    let gh = Cell::<F>::gates(cell) * hidden;
    let val = |i: usize, salt: usize| F::lit((((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.6);
    let b_hh: Vec<F> = (0..gh).map(|i| val(i, 7)).collect();
    let mut gates: Vec<F> = (0..batch * gh).map(|i| val(i, 1)).collect();
    if let Some(at) = nan {
        gates[at] = F::nan();
    }
    let c_prev: Vec<F> =
        if Cell::<F>::has_cell_state(cell) { (0..batch * hidden).map(|i| val(i, 3)).collect() } else { vec![] };
    let h_prev = vec![F::zero(); batch * hidden];
    let (mut h, mut c) = (vec![F::zero(); batch * hidden], vec![F::zero(); c_prev.len()]);
    let mut extra = vec![F::zero(); batch * Cell::<F>::extra(cell) * hidden];
    let mut scratch = vec![F::zero(); batch * gh];
    let step = ForwardStep {
        dims: Dims { batch, input: 2, hidden },
        w_hh,
        w_hh_t: &[],
        b_hh: &b_hh,
        gates: &mut gates,
        h_prev: &h_prev,
        h_prev_zero: skip,
        h_carry: &[],
        c_prev: &c_prev,
        h: &mut h,
        c: &mut c,
        extra: &mut extra,
        scratch: &mut scratch,
    };
    cell.forward_step(step).expect("step");
    h.into_iter().chain(c).chain(gates).chain(extra).collect()
}

/// Each value's bits, as (mantissa, exponent, sign): `-0` apart from `+0`; every NaN alike
/// (payloads aside).
fn bits<F: crate::kernels::real::Real>(v: &[F]) -> Vec<(u64, i16, i8)> {
    v.iter().map(|x| if x.is_nan() { (u64::MAX, 0, 0) } else { x.integer_decode() }).collect()
}

/// A pass from a zero state skips its first step's recurrent products, which add only zeros:
/// a step of every cell from a zero `h_prev` gives the same bits with the products skipped as
/// computed (f32 on the SIMD kernels, and f64), and the skip does happen (weights of NaN change
/// the outputs only when the products run); a NaN input to a gate reaches the outputs alike
/// either way. The driver skips only when `h0` is all zeros and
/// `W_hh` finite: with an infinite weight, a pass from zeros keeps `0 · ∞ = NaN` as PyTorch
/// does. (Shards and row blocks skip the same step: `shards_and_row_blocks_give_the_bits_of_one_thread`.)
#[test]
fn a_zero_start_skips_the_first_products_with_the_same_bits() {
    use super::pass::Prepared;
    let hidden = 5usize;
    let val = |i: usize| (((i * 7919 + 5 * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.2;
    for cell in noise_cells() {
        let gh = Cell::<f64>::gates(&cell) * hidden;
        let w64: Vec<f64> = (0..gh * hidden).map(val).collect();
        let w32: Vec<f32> = w64.iter().map(|&v| v as f32).collect();
        let (a, b32) = (zero_step(&cell, &w32, false, None), zero_step(&cell, &w32, true, None));
        assert_eq!(bits(&a), bits(&b32), "{cell:?}, f32");
        assert!(a.iter().all(|v| v.is_finite()));
        let (a, b) = (zero_step(&cell, &w64, false, None), zero_step(&cell, &w64, true, None));
        assert_eq!(bits(&a), bits(&b), "{cell:?}, f64");
        // NaN in the first gate block's weights changes the step only when its products run
        // (the GRU's later r·h_prev product always runs: below).
        let mut nan = w32.clone();
        nan[..hidden * hidden].fill(f32::NAN);
        assert_ne!(bits(&zero_step(&cell, &nan, false, None)), bits(&b32), "{cell:?}: computed");
        assert_eq!(bits(&zero_step(&cell, &nan, true, None)), bits(&b32), "{cell:?}: skipped");
        // A NaN projected into each gate block (a NaN input weight) reaches the outputs the same
        // way either way (the GRU's r·h_prev is then NaN, not zero: its product runs).
        for block in 0..Cell::<f32>::gates(&cell) {
            let at = Some(gh + block * hidden + 2);
            let (a, b) = (zero_step(&cell, &w32, false, at), zero_step(&cell, &w32, true, at));
            assert_eq!(bits(&a), bits(&b), "{cell:?}, NaN in gate block {block}");
        }
    }
    // The driver's condition.
    let input = 2usize;
    let packing = Packing::from_sorted_lengths(&[4, 3]).expect("packing");
    let owned = OwnedWeights::new(4, input, hidden, 0);
    let zeros = vec![0.0; 2 * hidden];
    let mut given = zeros.clone();
    given[7] = 0.25;
    let start = |w: &LayerWeights<f64>, h0: &[f64], t: Option<&Transposed<f64>>| {
        let w = Prepared::new(w, 4, &packing, t, h0).expect("prepared");
        // Only the pass's first step.
        assert!(!w.h_prev_zero(1));
        w.h_prev_zero(0)
    };
    let w = owned.view();
    let t = Transposed::of(&w).expect("transposed");
    assert!(start(&w, &zeros, None) && start(&w, &zeros, Some(&t)) && start(&w, &[-0.0; 10], None));
    assert!(!start(&w, &given, None) && !start(&w, &given, Some(&t)));
    let mut inf = OwnedWeights::new(4, input, hidden, 0);
    inf.w_hh[[3, 2]] = f64::INFINITY;
    let (wi, ti) = (inf.view(), Transposed::of(&inf.view()).expect("transposed"));
    assert!(!start(&wi, &zeros, None) && !start(&wi, &zeros, Some(&ti)));
    // And the pass then computes the NaN of 0 · ∞ at its first step, for every row.
    let x = Array2::from_shape_fn((packing.rows(), input), |(r, j)| val(r * input + j));
    let cell = crate::rnn::cells::AnyCell::Lstm(crate::rnn::cells::LstmCell::default());
    let o = infer_sequence(&cell, &wi, None, x.view(), &packing, false, &zeros, &zeros).expect("infer");
    assert!(o.h[..2 * hidden].iter().any(|v| v.is_nan()), "the first step's products ran");
}
