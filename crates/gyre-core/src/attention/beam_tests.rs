//! Beam search over the attention decoder, in f64: width 1 is greedy decoding (written here
//! with the teacher-forced pass over each prefix), every hypothesis's `log_prob` is the model's
//! log-probability of its tokens under teacher forcing (and its attention rows that pass's),
//! a beam wide enough to hold every prefix finds the best of all outputs, the length penalty is
//! Wu et al.'s, and bad options are errors.
#![allow(clippy::needless_range_loop)] // the tests index sequences and steps by number, as the formulas do

use super::beam::*;
use super::decoder::*;
use super::AttentionScore;
use crate::rnn::weights::LayerWeights;
use crate::{CellKind, GateActivation, InitialState};
use ndarray::{Array1, Array2, Array3};

fn val(i: usize, salt: usize) -> f64 {
    (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 2.0
}

const V: usize = 5;
const E: usize = 3;
const H: usize = 4;
const HK: usize = 3;
const TK: usize = 4;
const A: usize = 3;
const START: usize = 0;
const END: usize = 1;

struct Net {
    kind: CellKind,
    w_ih: Array2<f64>,
    w_hh: Array2<f64>,
    b_ih: Array1<f64>,
    b_hh: Array1<f64>,
    w_c: Array2<f64>,
    b_c: Array1<f64>,
    wq: Array2<f64>,
    wk: Array2<f64>,
    ba: Array1<f64>,
    va: Array1<f64>,
    embedding: Array2<f64>,
    out_w: Array2<f64>,
    out_b: Array1<f64>,
    memory: Array3<f64>,
    lengths: Vec<usize>,
    h0: Array2<f64>,
    c0: Array2<f64>,
}

impl Net {
    fn new(kind: CellKind, salt: usize) -> Self {
        let gh = kind.gates() * H;
        let m = |r: usize, c: usize, k: usize| Array2::from_shape_fn((r, c), |(i, j)| val(i * 31 + j, k + salt));
        let v = |n: usize, k: usize| Array1::from_shape_fn(n, |i| val(i, k + salt) * 0.5);
        Net {
            kind,
            w_ih: m(gh, E + H, 1),
            w_hh: m(gh, H, 2),
            b_ih: v(gh, 3),
            b_hh: v(gh, 4),
            w_c: m(H, HK + H, 5),
            b_c: v(H, 6),
            wq: m(A, H, 7),
            wk: m(A, HK, 8),
            ba: v(A, 9),
            va: v(A, 10),
            embedding: m(V, E, 11),
            out_w: m(V, H, 12) * 1.5,
            out_b: v(V, 13),
            memory: Array3::from_shape_fn((2, TK, HK), |(a, b, c)| val(a * 100 + b * 10 + c, 14 + salt)),
            lengths: vec![4, 2],
            h0: m(2, H, 15) * 0.5,
            c0: m(2, H, 16) * 0.5,
        }
    }
    fn spec(&self) -> DecoderSpec<'_, f64> {
        let score = AttentionScore::Additive {
            query_weight: self.wq.view(),
            key_weight: self.wk.view(),
            bias: self.ba.view(),
            v: self.va.view(),
        };
        DecoderSpec { cell: self.kind, score, input_feeding: true }
    }
    fn weights(&self) -> DecoderWeights<'_, f64> {
        DecoderWeights {
            cell: LayerWeights {
                weight_ih: self.w_ih.view(),
                weight_hh: self.w_hh.view(),
                bias_ih: self.b_ih.view(),
                bias_hh: self.b_hh.view(),
            },
            combine_weight: self.w_c.view(),
            combine_bias: self.b_c.view(),
        }
    }
    fn head(&self) -> TokenHead<'_, f64> {
        TokenHead { embedding: self.embedding.view(), weight: self.out_w.view(), bias: self.out_b.view() }
    }
    fn init(&self) -> InitialState<'_, f64> {
        InitialState { hidden: Some(self.h0.view()), cell: self.kind.has_cell_state().then(|| self.c0.view()) }
    }
    fn search(
        &self,
        beam_width: usize,
        max_length: usize,
        length_penalty: f64,
        n_best: usize,
    ) -> Vec<Vec<Hypothesis<f64>>> {
        let opts = BeamOptions { beam_width, max_length, start: START, end: END, length_penalty, n_best };
        beam_search(&self.spec(), &self.weights(), &self.head(), self.memory.view(), &self.lengths, &self.init(), &opts)
            .expect("beam search")
    }

    /// Teacher forcing over `[start] + tokens[..n−1]` for sequence `n`: each step's log-softmax
    /// and attention weights.
    fn teacher_forced(&self, n: usize, tokens: &[usize]) -> (Vec<Vec<f64>>, Array2<f64>) {
        let inputs: Vec<usize> =
            std::iter::once(START).chain(tokens.iter().copied()).take(tokens.len().max(1)).collect();
        let x = Array3::from_shape_fn((1, inputs.len(), E), |(_, t, c)| self.embedding[[inputs[t], c]]);
        let memory = self.memory.slice(ndarray::s![n..n + 1, .., ..]);
        let h0 = self.h0.slice(ndarray::s![n..n + 1, ..]);
        let c0 = self.c0.slice(ndarray::s![n..n + 1, ..]);
        let init = InitialState { hidden: Some(h0), cell: self.kind.has_cell_state().then_some(c0) };
        let out =
            decoder_forward(&self.spec(), &self.weights(), None, x.view(), memory, &self.lengths[n..n + 1], &init)
                .expect("forward");
        let mut log_probs = Vec::new();
        for t in 0..inputs.len() {
            let logits: Vec<f64> = (0..V)
                .map(|v| self.out_b[v] + (0..H).map(|j| self.out_w[[v, j]] * out.output[[0, t, j]]).sum::<f64>())
                .collect();
            let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = top + logits.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
            log_probs.push(logits.iter().map(|l| l - lse).collect());
        }
        (log_probs, out.weights.index_axis(ndarray::Axis(0), 0).to_owned())
    }

    fn log_prob(&self, n: usize, tokens: &[usize]) -> f64 {
        let (lp, _) = self.teacher_forced(n, tokens);
        tokens.iter().enumerate().map(|(t, &y)| lp[t][y]).sum()
    }
}

const KINDS: [CellKind; 3] = [
    CellKind::Lstm { recurrent: GateActivation::Sigmoid },
    CellKind::Gru { reset_after: true, recurrent: GateActivation::Sigmoid },
    CellKind::Rnn(crate::Nonlinearity::Tanh),
];

#[test]
fn width_one_is_greedy_decoding() {
    for (k, kind) in KINDS.into_iter().enumerate() {
        let net = Net::new(kind, k);
        let beams = net.search(1, 6, 0.0, 1);
        for n in 0..2 {
            // Greedy: the most probable next token after each prefix, by teacher forcing.
            let mut tokens = Vec::new();
            while tokens.len() < 6 {
                let (lp, _) = net.teacher_forced(n, &[tokens.clone(), vec![END]].concat());
                let row = &lp[tokens.len()];
                let best = (0..V).fold(0, |b, v| if row[v] > row[b] { v } else { b });
                tokens.push(best);
                if best == END {
                    break;
                }
            }
            let got = &beams[n][0];
            assert_eq!(got.tokens, tokens, "{kind:?}, sequence {n}");
            assert_eq!(got.finished, tokens.last() == Some(&END));
            assert!((got.log_prob - net.log_prob(n, &tokens)).abs() < 1e-9);
        }
    }
}

#[test]
fn every_hypothesis_scores_its_teacher_forced_log_probability() {
    for (k, kind) in KINDS.into_iter().enumerate() {
        let net = Net::new(kind, k + 10);
        for alpha in [0.0, 0.6] {
            let beams = net.search(3, 5, alpha, 3);
            for (n, hyps) in beams.iter().enumerate() {
                assert_eq!(hyps.len(), 3, "{kind:?}");
                for (r, hyp) in hyps.iter().enumerate() {
                    let want = net.log_prob(n, &hyp.tokens);
                    assert!((hyp.log_prob - want).abs() < 1e-9, "{kind:?} {n} {r}: {} vs {want}", hyp.log_prob);
                    let lp = ((5.0 + hyp.tokens.len() as f64) / 6.0).powf(alpha);
                    assert!((hyp.score - hyp.log_prob / lp).abs() < 1e-12);
                    let (_, attention) = net.teacher_forced(n, &hyp.tokens);
                    for t in 0..hyp.tokens.len() {
                        for j in 0..TK {
                            assert!((hyp.attention[[t, j]] - attention[[t, j]]).abs() < 1e-12);
                        }
                    }
                    if r > 0 {
                        assert!(hyps[r - 1].score >= hyp.score, "best first");
                    }
                    assert_eq!(hyp.finished, hyp.tokens.last() == Some(&END));
                    assert!(hyp.finished || hyp.tokens.len() == 5);
                }
            }
        }
    }
}

/// With room for every prefix, beam search is exhaustive: its best is the best of all outputs
/// (ended by the end token within the length, or cut at it).
#[test]
fn a_beam_holding_every_prefix_finds_the_best_output() {
    let max_length = 3;
    for (k, kind) in KINDS.into_iter().enumerate() {
        let net = Net::new(kind, k + 20);
        let beams = net.search(V * V * V, max_length, 0.0, 1);
        for n in 0..2 {
            let mut best = (f64::NEG_INFINITY, Vec::new());
            let mut stack: Vec<Vec<usize>> = (0..V).map(|v| vec![v]).collect();
            while let Some(seq) = stack.pop() {
                let ended = seq.last() == Some(&END);
                if ended || seq.len() == max_length {
                    let lp = net.log_prob(n, &seq);
                    if lp > best.0 {
                        best = (lp, seq);
                    }
                } else {
                    stack.extend((0..V).map(|v| [seq.clone(), vec![v]].concat()));
                }
            }
            assert_eq!(beams[n][0].tokens, best.1, "{kind:?}, sequence {n}");
            assert!((beams[n][0].log_prob - best.0).abs() < 1e-9);
        }
    }
}

#[test]
fn bad_options_are_errors_naming_them() {
    let net = Net::new(CellKind::LSTM, 0);
    let run = |o: BeamOptions| {
        beam_search(&net.spec(), &net.weights(), &net.head(), net.memory.view(), &net.lengths, &net.init(), &o)
            .expect_err("refused")
            .to_string()
    };
    let ok = BeamOptions { beam_width: 2, max_length: 4, start: START, end: END, length_penalty: 0.0, n_best: 1 };
    assert!(run(BeamOptions { beam_width: 0, ..ok }).contains("beamWidth"));
    assert!(run(BeamOptions { beam_width: MAX_BEAM_WIDTH + 1, ..ok }).contains("at most 1024"));
    assert!(run(BeamOptions { max_length: 0, ..ok }).contains("maxLength"));
    assert!(run(BeamOptions { end: V, ..ok }).contains("end"));
    let short = Array1::zeros(V - 1);
    let head = TokenHead { bias: short.view(), ..net.head() };
    let e = beam_search(&net.spec(), &net.weights(), &head, net.memory.view(), &net.lengths, &net.init(), &ok)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("output weight and bias"), "{e}");
}
