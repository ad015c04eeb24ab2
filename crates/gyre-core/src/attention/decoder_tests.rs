//! The attention decoder in f64: every gradient (input, memory, both initial states, the cell's
//! weights, the score's parameters, the combination) against central finite differences, for
//! every cell, the three scores, with and without input feeding, over memories of several
//! lengths; its first step written out by hand; the same bits on a pool of threads.

use super::decoder::*;
use super::AttentionScore;
use crate::rnn::weights::LayerWeights;
use crate::CellKind;
use crate::InitialState;
use crate::{GateActivation, Nonlinearity};
use ndarray::{Array2, Array3};
use ndarray::{ArrayView1, ArrayView2};

fn val(i: usize, salt: usize) -> f64 {
    (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.4
}

/// All the tensors of one decoder call, owned, with the parameters as one list for perturbing.
struct Case {
    kind: CellKind,
    score: usize,
    input_feeding: bool,
    x: Array3<f64>,
    memory: Array3<f64>,
    lengths: Vec<usize>,
    h0: Array2<f64>,
    c0: Array2<f64>,
    /// weight_ih, weight_hh, bias_ih, bias_hh, combine_weight, combine_bias, then the score's.
    params: Vec<ndarray::ArrayD<f64>>,
}

const B: usize = 3;
const TQ: usize = 4;
const I: usize = 2;
const H: usize = 3;
const TK: usize = 5;
const A: usize = 4;

impl Case {
    fn new(kind: CellKind, score: usize, input_feeding: bool) -> Self {
        let hk = if score == 0 { H } else { 2 };
        let gh = kind.gates() * H;
        let cell_in = if input_feeding { I + H } else { I };
        let d = |shape: &[usize], salt: usize| {
            let n: usize = shape.iter().product();
            ndarray::ArrayD::from_shape_vec(shape.to_vec(), (0..n).map(|k| val(k, salt)).collect()).expect("shape")
        };
        let mut params =
            vec![d(&[gh, cell_in], 1), d(&[gh, H], 2), d(&[gh], 3), d(&[gh], 4), d(&[H, hk + H], 5), d(&[H], 6)];
        match score {
            0 => {}
            1 => params.push(d(&[H, hk], 7)),
            _ => params.extend([d(&[A, H], 8), d(&[A, hk], 9), d(&[A], 10), d(&[A], 11)]),
        }
        Case {
            kind,
            score,
            input_feeding,
            x: Array3::from_shape_fn((B, TQ, I), |(a, b, c)| val(a * 100 + b * 10 + c, 12)),
            memory: Array3::from_shape_fn((B, TK, hk), |(a, b, c)| val(a * 100 + b * 10 + c, 13)),
            lengths: vec![5, 2, 0],
            h0: Array2::from_shape_fn((B, H), |(a, b)| val(a * 10 + b, 14)),
            c0: Array2::from_shape_fn((B, H), |(a, b)| val(a * 10 + b, 15)),
            params,
        }
    }

    fn two(&self, k: usize) -> ArrayView2<'_, f64> {
        self.params[k].view().into_dimensionality().expect("2-d")
    }

    fn one(&self, k: usize) -> ArrayView1<'_, f64> {
        self.params[k].view().into_dimensionality().expect("1-d")
    }

    fn spec(&self) -> DecoderSpec<'_, f64> {
        let score = match self.score {
            0 => AttentionScore::Dot,
            1 => AttentionScore::General { weight: self.two(6) },
            _ => AttentionScore::Additive {
                query_weight: self.two(6),
                key_weight: self.two(7),
                bias: self.one(8),
                v: self.one(9),
            },
        };
        DecoderSpec { cell: self.kind, score, input_feeding: self.input_feeding }
    }

    fn weights(&self) -> DecoderWeights<'_, f64> {
        DecoderWeights {
            cell: LayerWeights {
                weight_ih: self.two(0),
                weight_hh: self.two(1),
                bias_ih: self.one(2),
                bias_hh: self.one(3),
            },
            combine_weight: self.two(4),
            combine_bias: self.one(5),
        }
    }

    fn init(&self) -> InitialState<'_, f64> {
        InitialState { hidden: Some(self.h0.view()), cell: self.kind.has_cell_state().then(|| self.c0.view()) }
    }

    fn forward(&self) -> DecoderOutput<f64> {
        decoder_forward(
            &self.spec(),
            &self.weights(),
            None,
            self.x.view(),
            self.memory.view(),
            &self.lengths,
            &self.init(),
        )
        .expect("forward")
    }
}

struct Upstream {
    output: Array3<f64>,
    weights: Array3<f64>,
    hidden: Array2<f64>,
    cell: Array2<f64>,
}

fn loss(case: &Case, up: &Upstream) -> f64 {
    let o = case.forward();
    let dot = |a: &mut dyn Iterator<Item = &f64>, b: &mut dyn Iterator<Item = &f64>| {
        a.zip(b).map(|(x, y)| x * y).sum::<f64>()
    };
    let mut l = dot(&mut o.output.iter(), &mut up.output.iter())
        + dot(&mut o.weights.iter(), &mut up.weights.iter())
        + dot(&mut o.hidden.iter(), &mut up.hidden.iter());
    if let Some(c) = &o.cell {
        l += dot(&mut c.iter(), &mut up.cell.iter());
    }
    l
}

const KINDS: [CellKind; 5] = [
    CellKind::Lstm { recurrent: GateActivation::Sigmoid },
    CellKind::Gru { reset_after: true, recurrent: GateActivation::Sigmoid },
    CellKind::Gru { reset_after: false, recurrent: GateActivation::Sigmoid },
    CellKind::Rnn(Nonlinearity::Tanh),
    CellKind::Rnn(Nonlinearity::Relu),
];

#[test]
fn decoder_gradients_match_finite_differences() {
    let mut worst: f64 = 0.0;
    for kind in KINDS {
        for score in 0..3 {
            for input_feeding in [false, true] {
                let mut case = Case::new(kind, score, input_feeding);
                let up = Upstream {
                    output: Array3::from_shape_fn((B, TQ, H), |(a, b, c)| val(a * 37 + b * 11 + c, 16)),
                    weights: Array3::from_shape_fn((B, TQ, TK), |(a, b, c)| val(a * 41 + b * 13 + c, 17)),
                    hidden: Array2::from_shape_fn((B, H), |(a, b)| val(a * 7 + b, 18)),
                    cell: Array2::from_shape_fn((B, H), |(a, b)| val(a * 5 + b, 19)),
                };
                let has_c = kind.has_cell_state();
                let g = decoder_backward(
                    &case.spec(),
                    &case.weights(),
                    case.x.view(),
                    case.memory.view(),
                    &case.lengths,
                    &case.init(),
                    &DecoderOutputGrads {
                        output: Some(up.output.view()),
                        weights: Some(up.weights.view()),
                        hidden: Some(up.hidden.view()),
                        cell: has_c.then(|| up.cell.view()),
                    },
                )
                .expect("backward");
                let what = format!("{kind:?}, score {score}, input feeding {input_feeding}");
                let eps = 1e-6;
                let mut check = |analytic: f64, case: &mut Case, get: &dyn Fn(&mut Case) -> &mut f64, name: String| {
                    let orig = *get(case);
                    *get(case) = orig + eps;
                    let lu = loss(case, &up);
                    *get(case) = orig - eps;
                    let ld = loss(case, &up);
                    *get(case) = orig;
                    let numeric = (lu - ld) / (2.0 * eps);
                    let err = (analytic - numeric).abs();
                    assert!(
                        err <= 1e-7 + 1e-5 * numeric.abs(),
                        "{what}: {name}: analytic {analytic}, numeric {numeric}"
                    );
                    worst = worst.max(err);
                };
                for k in 0..case.x.len() {
                    let a = g.input.as_slice().expect("dx")[k];
                    check(a, &mut case, &|c| &mut c.x.as_slice_mut().expect("x")[k], format!("x[{k}]"));
                }
                for k in 0..case.memory.len() {
                    let a = g.memory.as_slice().expect("dm")[k];
                    check(a, &mut case, &|c| &mut c.memory.as_slice_mut().expect("m")[k], format!("memory[{k}]"));
                }
                for k in 0..B * H {
                    check(
                        g.h0.as_slice().expect("dh0")[k],
                        &mut case,
                        &|c| &mut c.h0.as_slice_mut().expect("h0")[k],
                        format!("h0[{k}]"),
                    );
                    if has_c {
                        let a = g.c0.as_ref().expect("dc0").as_slice().expect("dc0")[k];
                        check(a, &mut case, &|c| &mut c.c0.as_slice_mut().expect("c0")[k], format!("c0[{k}]"));
                    }
                }
                let mut analytic: Vec<(String, Vec<f64>)> = vec![
                    ("weight_ih".into(), g.cell.weight_ih.iter().copied().collect()),
                    ("weight_hh".into(), g.cell.weight_hh.iter().copied().collect()),
                    ("bias_ih".into(), g.cell.bias_ih.to_vec()),
                    ("bias_hh".into(), g.cell.bias_hh.to_vec()),
                    ("combine_weight".into(), g.combine_weight.iter().copied().collect()),
                    ("combine_bias".into(), g.combine_bias.to_vec()),
                ];
                analytic.extend(g.attention.iter().map(|(n, v)| (n.to_string(), v.clone())));
                assert_eq!(analytic.len(), case.params.len(), "{what}");
                for (p, (name, values)) in analytic.iter().enumerate() {
                    assert_eq!(values.len(), case.params[p].len(), "{what}: {name}");
                    for (k, &a) in values.iter().enumerate() {
                        check(
                            a,
                            &mut case,
                            &|c| &mut c.params[p].as_slice_mut().expect("p")[k],
                            format!("{name}[{k}]"),
                        );
                    }
                }
            }
        }
    }
    println!("decoder gradcheck: largest error {worst:.3e}");
}

/// The first step of an RNN decoder with the dot score, written out: h = tanh(W_ih x + b_ih +
/// W_hh h0 + b_hh), α = softmax(h·k_j), ctx = Σ α k, h̃ = tanh(W_c [ctx; h] + b_c).
#[test]
fn the_first_step_is_the_formula() {
    let case = Case::new(CellKind::Rnn(Nonlinearity::Tanh), 0, true);
    let o = case.forward();
    let (w_ih, w_hh, b_ih, b_hh, w_c, b_c) =
        (case.two(0), case.two(1), case.one(2), case.one(3), case.two(4), case.one(5));
    for n in 0..2 {
        // Input feeding reads h̃_{−1} = 0: only the input's columns count at the first step.
        let h: Vec<f64> = (0..H)
            .map(|r| {
                let v = b_ih[r] + b_hh[r] + (0..I).map(|c| w_ih[[r, c]] * case.x[[n, 0, c]]).sum::<f64>();
                (v + (0..H).map(|c| w_hh[[r, c]] * case.h0[[n, c]]).sum::<f64>()).tanh()
            })
            .collect();
        let l = case.lengths[n];
        let s: Vec<f64> = (0..l).map(|j| (0..H).map(|c| h[c] * case.memory[[n, j, c]]).sum()).collect();
        let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
        let alpha: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
        let ctx: Vec<f64> = (0..H).map(|c| (0..l).map(|j| alpha[j] * case.memory[[n, j, c]]).sum()).collect();
        for r in 0..H {
            let v = b_c[r]
                + (0..H).map(|c| w_c[[r, c]] * ctx[c]).sum::<f64>()
                + (0..H).map(|c| w_c[[r, H + c]] * h[c]).sum::<f64>();
            assert!((o.output[[n, 0, r]] - v.tanh()).abs() < 1e-12, "sequence {n}, unit {r}");
        }
        for j in 0..TK {
            let want = alpha.get(j).copied().unwrap_or(0.0);
            assert!((o.weights[[n, 0, j]] - want).abs() < 1e-12);
        }
    }
    // The sequence with an empty memory has context 0: h̃ = tanh(W_c [0; h] + b_c).
    assert!(o.weights.slice(ndarray::s![2, .., ..]).iter().all(|&w| w == 0.0));
}

#[test]
fn a_pool_of_threads_gives_the_bits_of_one() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
    for score in 0..3 {
        let case = Case::new(CellKind::LSTM, score, true);
        let up = Array3::from_shape_fn((B, TQ, H), |(a, b, c)| val(a * 37 + b * 11 + c, 16));
        let run = || {
            let f = case.forward();
            let g = decoder_backward(
                &case.spec(),
                &case.weights(),
                case.x.view(),
                case.memory.view(),
                &case.lengths,
                &case.init(),
                &DecoderOutputGrads { output: Some(up.view()), ..Default::default() },
            )
            .expect("backward");
            (f, g)
        };
        assert_eq!(run(), pool.install(run), "score {score}");
    }
}

/// Stepping the decoder a step at a time (the serving path) gives the teacher-forced pass's
/// outputs, attention weights and final states, for every cell, score and input feeding, with
/// the memory's keys projected at each step or kept from before the first; a state of another
/// shape, or keys of another memory, are refused and the state left as it was.
#[test]
fn stepping_one_step_at_a_time_is_the_whole_pass() {
    for kind in KINDS {
        for score in 0..3 {
            for (input_feeding, kept) in [(false, false), (true, false), (false, true), (true, true)] {
                let case = Case::new(kind, score, input_feeding);
                let whole = case.forward();
                let spec = case.spec();
                let w = case.weights();
                let prep = DecoderPrep::new(&spec, &w, false).expect("prep");
                let keys = MemoryKeys::new(&spec, &prep, case.memory.view(), &case.lengths).expect("keys");
                let (prep, keys) = if kept { (Some(&prep), Some(&keys)) } else { (None, None) };
                let mut state = DecoderState::start(&spec, B, H, &case.init()).expect("state");
                for t in 0..TQ {
                    let x = case.x.slice(ndarray::s![.., t, ..]);
                    let (out, weights) =
                        decoder_step(&spec, &w, prep, keys, x, case.memory.view(), &case.lengths, &mut state)
                            .expect("step");
                    for (a, b) in out.iter().zip(whole.output.slice(ndarray::s![.., t, ..])) {
                        assert!((a - b).abs() < 1e-12, "{kind:?} {score} {input_feeding}: output at {t}");
                    }
                    for (a, b) in weights.iter().zip(whole.weights.slice(ndarray::s![.., t, ..])) {
                        assert!((a - b).abs() < 1e-12, "{kind:?} {score} {input_feeding}: attention at {t}");
                    }
                }
                for (a, b) in state.hidden.iter().zip(whole.hidden.iter()) {
                    assert!((a - b).abs() < 1e-12);
                }
                if let Some(c) = &whole.cell {
                    assert!(state.cell.iter().zip(c.iter()).all(|(a, b)| (a - b).abs() < 1e-12));
                }
            }
        }
    }
    let case = Case::new(CellKind::LSTM, 1, true);
    let spec = case.spec();
    let mut state = DecoderState::start(&spec, B, H, &case.init()).expect("state");
    state.h_tilde = Array2::zeros((B, H + 1));
    let before = state.clone();
    let x = case.x.slice(ndarray::s![.., 0, ..]);
    let err = decoder_step(&spec, &case.weights(), None, None, x, case.memory.view(), &case.lengths, &mut state)
        .expect_err("refused");
    assert!(err.to_string().contains("state"), "{err}");
    assert_eq!(state, before);
    let mut state = DecoderState::start(&spec, B, H, &case.init()).expect("state");
    let before = state.clone();
    let prep = DecoderPrep::new(&spec, &case.weights(), false).expect("prep");
    let shorter: Vec<usize> = case.lengths.iter().map(|&l| l.saturating_sub(1)).collect();
    let other = MemoryKeys::new(&spec, &prep, case.memory.view(), &shorter).expect("keys");
    let err = decoder_step(
        &spec,
        &case.weights(),
        Some(&prep),
        Some(&other),
        x,
        case.memory.view(),
        &case.lengths,
        &mut state,
    )
    .expect_err("refused");
    assert!(err.to_string().contains("memory keys"), "{err}");
    assert_eq!(state, before);
}

/// The one-pass forward and backward gives the bits of the two calls, its closure seeing the
/// forward's outputs, for every cell, score and input feeding.
#[test]
fn forward_backward_in_one_pass_is_the_two_calls() {
    for kind in KINDS {
        for score in 0..3 {
            for input_feeding in [false, true] {
                let case = Case::new(kind, score, input_feeding);
                let up = Array3::from_shape_fn((B, TQ, H), |(a, b, c)| val(a * 29 + b * 7 + c, 21));
                let whole = case.forward();
                let apart = decoder_backward(
                    &case.spec(),
                    &case.weights(),
                    case.x.view(),
                    case.memory.view(),
                    &case.lengths,
                    &case.init(),
                    &DecoderOutputGrads { output: Some(up.view()), ..Default::default() },
                )
                .expect("backward");
                let prep = DecoderPrep::new(&case.spec(), &case.weights(), true).expect("prepared");
                let (together, seen) = decoder_forward_backward(
                    &case.spec(),
                    &case.weights(),
                    Some(&prep),
                    case.x.view(),
                    case.memory.view(),
                    &case.lengths,
                    &case.init(),
                    |out| Ok((up.clone(), out.clone())),
                )
                .expect("one pass");
                assert_eq!(seen, whole, "{kind:?} {score} {input_feeding}");
                assert_eq!(together, apart, "{kind:?} {score} {input_feeding}");
                // Forms made for forward passes only are refused by a backward pass.
                let forward_only = DecoderPrep::new(&case.spec(), &case.weights(), false).expect("prepared");
                let refused = decoder_forward_backward(
                    &case.spec(),
                    &case.weights(),
                    Some(&forward_only),
                    case.x.view(),
                    case.memory.view(),
                    &case.lengths,
                    &case.init(),
                    |_| Ok((up.clone(), ())),
                );
                assert!(refused.is_err(), "{kind:?} {score} {input_feeding}");
            }
        }
    }
}
