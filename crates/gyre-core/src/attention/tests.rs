//! Attention in f64: every gradient (queries, memory, parameters) against central finite
//! differences for the three scores, with variable lengths (a sequence of length 0 among them);
//! padded memory steps have weight 0 and no influence; the same bits on a pool of threads.

use super::*;
use ndarray::{Array1, Array3};

fn val(i: usize, salt: usize) -> f64 {
    (((i * 7919 + salt * 104_729) % 1000) as f64 / 1000.0 - 0.5) * 1.8
}

struct Case {
    query: Array3<f64>,
    memory: Array3<f64>,
    lengths: Vec<usize>,
    weight: Array2<f64>,
    query_weight: Array2<f64>,
    key_weight: Array2<f64>,
    bias: Array1<f64>,
    v: Array1<f64>,
}

impl Case {
    fn new(hq: usize, hk: usize, lengths: &[usize]) -> Self {
        let (b, tq, tk, a) = (lengths.len(), 3, 5, 4);
        Case {
            query: Array3::from_shape_fn((b, tq, hq), |(i, j, c)| val(i * 100 + j * 10 + c, 1)),
            memory: Array3::from_shape_fn((b, tk, hk), |(i, j, c)| val(i * 100 + j * 10 + c, 2)),
            lengths: lengths.to_vec(),
            weight: Array2::from_shape_fn((hq, hk), |(i, j)| val(i * 10 + j, 3)),
            query_weight: Array2::from_shape_fn((a, hq), |(i, j)| val(i * 10 + j, 4)),
            key_weight: Array2::from_shape_fn((a, hk), |(i, j)| val(i * 10 + j, 5)),
            bias: Array1::from_shape_fn(a, |i| val(i, 6)),
            v: Array1::from_shape_fn(a, |i| val(i, 7)),
        }
    }

    fn score(&self, kind: usize) -> AttentionScore<'_, f64> {
        match kind {
            0 => AttentionScore::Dot,
            1 => AttentionScore::General { weight: self.weight.view() },
            _ => AttentionScore::Additive {
                query_weight: self.query_weight.view(),
                key_weight: self.key_weight.view(),
                bias: self.bias.view(),
                v: self.v.view(),
            },
        }
    }

    /// The parameters of score `kind` as mutable flat slices, in `param_names` order.
    fn params_mut(&mut self, kind: usize) -> Vec<&mut [f64]> {
        match kind {
            0 => vec![],
            1 => vec![self.weight.as_slice_mut().expect("w")],
            _ => vec![
                self.query_weight.as_slice_mut().expect("wq"),
                self.key_weight.as_slice_mut().expect("wk"),
                self.bias.as_slice_mut().expect("b"),
                self.v.as_slice_mut().expect("v"),
            ],
        }
    }
}

fn loss(case: &Case, kind: usize, gc: &Array3<f64>, gw: &Array3<f64>) -> f64 {
    let out =
        attention_forward(&case.score(kind), case.query.view(), case.memory.view(), &case.lengths).expect("forward");
    out.context.iter().zip(gc).map(|(a, b)| a * b).sum::<f64>()
        + out.weights.iter().zip(gw).map(|(a, b)| a * b).sum::<f64>()
}

#[test]
fn gradients_match_finite_differences_for_every_score() {
    let lengths = [5, 2, 0, 4];
    for kind in 0..3 {
        let (hq, hk) = if kind == 0 { (3, 3) } else { (3, 2) };
        let mut case = Case::new(hq, hk, &lengths);
        let b = lengths.len();
        let gc = Array3::from_shape_fn((b, 3, hk), |(i, j, c)| val(i * 31 + j * 7 + c, 8));
        let gw = Array3::from_shape_fn((b, 3, 5), |(i, j, c)| val(i * 29 + j * 5 + c, 9));
        let g = attention_backward(
            &case.score(kind),
            case.query.view(),
            case.memory.view(),
            &case.lengths,
            Some(gc.view()),
            Some(gw.view()),
        )
        .expect("backward");
        let eps = 1e-6;
        let check = |analytic: f64, up: f64, down: f64, what: String| {
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (analytic - numeric).abs() <= 1e-8 + 1e-6 * numeric.abs(),
                "score {kind}, {what}: {analytic} vs {numeric}"
            );
        };
        for k in 0..case.query.len() {
            let orig = case.query.as_slice().expect("q")[k];
            case.query.as_slice_mut().expect("q")[k] = orig + eps;
            let up = loss(&case, kind, &gc, &gw);
            case.query.as_slice_mut().expect("q")[k] = orig - eps;
            let down = loss(&case, kind, &gc, &gw);
            case.query.as_slice_mut().expect("q")[k] = orig;
            check(g.query.as_slice().expect("dq")[k], up, down, format!("query[{k}]"));
        }
        for k in 0..case.memory.len() {
            let orig = case.memory.as_slice().expect("m")[k];
            case.memory.as_slice_mut().expect("m")[k] = orig + eps;
            let up = loss(&case, kind, &gc, &gw);
            case.memory.as_slice_mut().expect("m")[k] = orig - eps;
            let down = loss(&case, kind, &gc, &gw);
            case.memory.as_slice_mut().expect("m")[k] = orig;
            check(g.memory.as_slice().expect("dm")[k], up, down, format!("memory[{k}]"));
        }
        let names = case.score(kind).param_names();
        assert_eq!(g.params.iter().map(|p| p.0).collect::<Vec<_>>(), names);
        for (p, (name, analytic)) in g.params.iter().enumerate() {
            assert_eq!(analytic.len(), case.params_mut(kind)[p].len(), "{name}");
            for (k, &a) in analytic.iter().enumerate() {
                let orig = case.params_mut(kind)[p][k];
                case.params_mut(kind)[p][k] = orig + eps;
                let up = loss(&case, kind, &gc, &gw);
                case.params_mut(kind)[p][k] = orig - eps;
                let down = loss(&case, kind, &gc, &gw);
                case.params_mut(kind)[p][k] = orig;
                check(a, up, down, format!("{name}[{k}]"));
            }
        }
    }
}

/// Padded memory steps get weight exactly 0 and change nothing; the weights of a row sum to 1;
/// a sequence of length 0 attends to nothing; extreme scores stay finite.
#[test]
fn padded_steps_have_weight_zero_and_no_influence() {
    for kind in 0..3 {
        let (hq, hk) = if kind == 0 { (3, 3) } else { (3, 2) };
        let mut case = Case::new(hq, hk, &[5, 2, 0, 4]);
        let before = attention_forward(&case.score(kind), case.query.view(), case.memory.view(), &case.lengths)
            .expect("forward");
        for (n, &l) in case.lengths.iter().enumerate() {
            for i in 0..3 {
                let row = before.weights.slice(s![n, i, ..]);
                assert!(row.iter().skip(l).all(|&w| w == 0.0), "score {kind}: padded weights");
                let sum: f64 = row.iter().sum();
                assert!(if l == 0 { sum == 0.0 } else { (sum - 1.0).abs() < 1e-12 }, "score {kind}: row sum {sum}");
            }
            if l == 0 {
                assert!(before.context.slice(s![n, .., ..]).iter().all(|&c| c == 0.0));
            }
        }
        // Huge values (and NaN) in the padding change nothing.
        case.memory.slice_mut(s![1, 2.., ..]).fill(1e300);
        case.memory.slice_mut(s![2, .., ..]).fill(f64::NAN);
        let after = attention_forward(&case.score(kind), case.query.view(), case.memory.view(), &case.lengths)
            .expect("forward");
        assert_eq!(before, after, "score {kind}");
        // Scores far apart: a softmax without the largest subtracted would overflow.
        case.query.mapv_inplace(|v| v * 1e4);
        let big = attention_forward(&case.score(kind), case.query.view(), case.memory.view(), &case.lengths)
            .expect("forward");
        assert!(big.weights.iter().chain(big.context.iter()).all(|v| v.is_finite()), "score {kind}");
    }
}

#[test]
fn a_pool_of_threads_gives_the_bits_of_one() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("pool");
    let lengths: Vec<usize> = (0..9).map(|i| 5 - i % 5).collect();
    for kind in 0..3 {
        let (hq, hk) = if kind == 0 { (4, 4) } else { (4, 3) };
        let case = Case::new(hq, hk, &lengths);
        let gc = Array3::from_shape_fn((9, 3, hk), |(i, j, c)| val(i * 31 + j * 7 + c, 8));
        let run = || {
            let f =
                attention_forward(&case.score(kind), case.query.view(), case.memory.view(), &lengths).expect("forward");
            let g = attention_backward(
                &case.score(kind),
                case.query.view(),
                case.memory.view(),
                &lengths,
                Some(gc.view()),
                None,
            )
            .expect("backward");
            (f, g)
        };
        assert_eq!(run(), pool.install(run), "score {kind}");
    }
}

#[test]
fn bad_shapes_and_lengths_are_errors_naming_them() {
    let case = Case::new(3, 2, &[5, 2]);
    let err = |r: Result<Attention<f64>>| r.expect_err("refused").to_string();
    let e = err(attention_forward(&AttentionScore::Dot, case.query.view(), case.memory.view(), &case.lengths));
    assert!(e.contains("memory") && e.contains("width 2"), "{e}");
    let e = err(attention_forward(&case.score(1), case.query.view(), case.memory.view(), &[5]));
    assert!(e.contains("lengths") && e.contains("2 values"), "{e}");
    let e = err(attention_forward(&case.score(1), case.query.view(), case.memory.view(), &[6, 1]));
    assert!(e.contains("lengths[0]") && e.contains("at most the memory's 5 steps"), "{e}");
    let w = Array2::zeros((2, 2));
    let e = err(attention_forward(
        &AttentionScore::General { weight: w.view() },
        case.query.view(),
        case.memory.view(),
        &case.lengths,
    ));
    assert!(e.contains("weight") && e.contains("[3, 2]") && e.contains("[2, 2]"), "{e}");
    let short = Array1::zeros(3);
    let additive = AttentionScore::Additive {
        query_weight: case.query_weight.view(),
        key_weight: case.key_weight.view(),
        bias: case.bias.view(),
        v: short.view(),
    };
    let e = err(attention_forward(&additive, case.query.view(), case.memory.view(), &case.lengths));
    assert!(e.contains("v") && e.contains("[4]") && e.contains("[3]"), "{e}");
    let g = Array3::zeros((2, 3, 3));
    let e =
        attention_backward(&case.score(1), case.query.view(), case.memory.view(), &case.lengths, Some(g.view()), None)
            .expect_err("refused")
            .to_string();
    assert!(e.contains("grad_context"), "{e}");
}
