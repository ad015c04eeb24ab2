//! The pieces of an encoder–decoder compose and learn: an LSTM encoder (the functional
//! `forward` / `backward`), the attention decoder starting from the encoder's final states with
//! input feeding and the general score, an output layer and per-step cross-entropy, trained with
//! Adam written here on reversing token sequences; greedy decoding (beam search of width 1) then
//! reverses held-out sequences, and a wider beam does at least as well.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)] // test code

use gyre_core::attention::{
    beam_search, decoder_backward, decoder_forward, BeamOptions, DecoderOutputGrads, DecoderSpec, DecoderWeights,
    TokenHead,
};
use gyre_core::random::Rng;
use gyre_core::{backward, forward, AttentionScore, CellKind, InitialState, LayerWeights, OutputGrads};
use ndarray::{s, Array1, Array2, Array3, ArrayD, Axis, IxDyn};

const START: usize = 1;
const END: usize = 2;
const V: usize = 10; // 0 unused, 1 start, 2 end, 3..9 symbols
const E: usize = 16;
const H: usize = 32;
const T: usize = 5;

/// Every parameter, by name, with its Adam moments.
struct Params {
    values: Vec<(&'static str, ArrayD<f32>)>,
    m: Vec<ArrayD<f32>>,
    v: Vec<ArrayD<f32>>,
    step: i32,
}

impl Params {
    fn new(rng: &mut Rng) -> Self {
        let mut p = |shape: &[usize], scale: f32| {
            let n: usize = shape.iter().product();
            ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.range(-1.0, 1.0) as f32 * scale).collect()).unwrap()
        };
        let k = 1.0 / (H as f32).sqrt();
        let values = vec![
            ("src_embedding", p(&[V, E], 0.5)),
            ("enc.weight_ih", p(&[4 * H, E], k)),
            ("enc.weight_hh", p(&[4 * H, H], k)),
            ("enc.bias_ih", p(&[4 * H], k)),
            ("enc.bias_hh", p(&[4 * H], k)),
            ("tgt_embedding", p(&[V, E], 0.5)),
            ("dec.weight_ih", p(&[4 * H, E + H], k)),
            ("dec.weight_hh", p(&[4 * H, H], k)),
            ("dec.bias_ih", p(&[4 * H], k)),
            ("dec.bias_hh", p(&[4 * H], k)),
            ("combine.weight", p(&[H, 2 * H], k)),
            ("combine.bias", p(&[H], k)),
            ("attention.weight", p(&[H, H], k)),
            ("out.weight", p(&[V, H], k)),
            ("out.bias", p(&[V], 0.0)),
        ];
        let zeros: Vec<ArrayD<f32>> = values.iter().map(|(_, a)| ArrayD::zeros(a.raw_dim())).collect();
        Params { m: zeros.clone(), v: zeros, values, step: 0 }
    }
    fn get(&self, name: &str) -> &ArrayD<f32> {
        &self.values.iter().find(|(n, _)| *n == name).unwrap().1
    }
    fn two(&self, name: &str) -> ndarray::ArrayView2<'_, f32> {
        self.get(name).view().into_dimensionality().unwrap()
    }
    fn one(&self, name: &str) -> ndarray::ArrayView1<'_, f32> {
        self.get(name).view().into_dimensionality().unwrap()
    }
    fn enc(&self) -> LayerWeights<'_, f32> {
        LayerWeights {
            weight_ih: self.two("enc.weight_ih"),
            weight_hh: self.two("enc.weight_hh"),
            bias_ih: self.one("enc.bias_ih"),
            bias_hh: self.one("enc.bias_hh"),
        }
    }
    fn dec(&self) -> DecoderWeights<'_, f32> {
        DecoderWeights {
            cell: LayerWeights {
                weight_ih: self.two("dec.weight_ih"),
                weight_hh: self.two("dec.weight_hh"),
                bias_ih: self.one("dec.bias_ih"),
                bias_hh: self.one("dec.bias_hh"),
            },
            combine_weight: self.two("combine.weight"),
            combine_bias: self.one("combine.bias"),
        }
    }
    fn spec(&self) -> DecoderSpec<'_, f32> {
        DecoderSpec {
            cell: CellKind::LSTM,
            score: AttentionScore::General { weight: self.two("attention.weight") },
            input_feeding: true,
        }
    }
    /// One Adam step (lr 0.01) with the gradients by name.
    fn adam(&mut self, grads: &[(&'static str, ArrayD<f32>)]) {
        self.step += 1;
        let (b1, b2, lr, eps) = (0.9f32, 0.999f32, 0.01f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        for (k, (name, value)) in self.values.iter_mut().enumerate() {
            let g = &grads.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no gradient for {name}")).1;
            assert_eq!(g.shape(), value.shape(), "{name}");
            for ((x, &gi), (m, v)) in value.iter_mut().zip(g.iter()).zip(self.m[k].iter_mut().zip(self.v[k].iter_mut()))
            {
                *m = b1 * *m + (1.0 - b1) * gi;
                *v = b2 * *v + (1.0 - b2) * gi * gi;
                *x -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            }
        }
    }
}

fn embed(table: ndarray::ArrayView2<f32>, ids: &[Vec<usize>]) -> Array3<f32> {
    let (b, t) = (ids.len(), ids[0].len());
    Array3::from_shape_fn((b, t, table.ncols()), |(n, k, c)| table[[ids[n][k], c]])
}

/// A batch of sources (T symbols) and their reversals.
fn batch(rng: &mut Rng, b: usize) -> Vec<Vec<usize>> {
    (0..b).map(|_| (0..T).map(|_| 3 + (rng.uniform() * 7.0) as usize % 7).collect()).collect()
}

/// One training step on `src`; returns the mean cross-entropy per target token.
fn train_step(p: &mut Params, src: &[Vec<usize>]) -> f32 {
    let b = src.len();
    let targets: Vec<Vec<usize>> = src.iter().map(|s| s.iter().rev().copied().chain([END]).collect()).collect();
    let dec_in: Vec<Vec<usize>> =
        targets.iter().map(|t| std::iter::once(START).chain(t[..t.len() - 1].iter().copied()).collect()).collect();
    let tt = T + 1;
    let x = embed(p.two("src_embedding"), src);
    let enc = forward(CellKind::LSTM, &p.enc(), x.view(), &InitialState::default()).unwrap();
    let y_in = embed(p.two("tgt_embedding"), &dec_in);
    let lengths = vec![T; b];
    let init = InitialState { hidden: Some(enc.state.hidden.view()), cell: enc.state.cell.as_ref().map(|c| c.view()) };
    let dec = decoder_forward(&p.spec(), &p.dec(), y_in.view(), enc.output.view(), &lengths, &init).unwrap();
    // Logits, softmax cross-entropy, and its gradient (mean over all target tokens).
    let n = (b * tt) as f32;
    let flat = dec.output.view().into_shape_with_order((b * tt, H)).unwrap().to_owned();
    let mut logits = flat.dot(&p.two("out.weight").t());
    logits += &p.one("out.bias");
    let mut loss = 0.0;
    for (r, mut row) in logits.rows_mut().into_iter().enumerate() {
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.mapv_inplace(|l| (l - top).exp());
        let sum = row.sum();
        row.mapv_inplace(|e| e / sum);
        let y = targets[r / tt][r % tt];
        loss -= row[y].ln();
        row[y] -= 1.0;
        row.mapv_inplace(|g| g / n);
    }
    let d_out_w = logits.t().dot(&flat);
    let d_out_b = logits.sum_axis(Axis(0));
    let d_h = logits.dot(&p.two("out.weight")).into_shape_with_order((b, tt, H)).unwrap();
    let g = decoder_backward(
        &p.spec(),
        &p.dec(),
        y_in.view(),
        enc.output.view(),
        &lengths,
        &init,
        &DecoderOutputGrads { output: Some(d_h.view()), ..Default::default() },
    )
    .unwrap();
    let eg = backward(
        CellKind::LSTM,
        &p.enc(),
        x.view(),
        &InitialState::default(),
        &OutputGrads {
            output: Some(g.memory.view()),
            hidden: Some(g.h0.view()),
            cell: g.c0.as_ref().map(|c| c.view()),
        },
    )
    .unwrap();
    let scatter = |ids: &[Vec<usize>], d: &Array3<f32>| {
        let mut t = Array2::<f32>::zeros((V, E));
        for (nn, seq) in ids.iter().enumerate() {
            for (k, &id) in seq.iter().enumerate() {
                let mut row = t.row_mut(id);
                row += &d.slice(s![nn, k, ..]);
            }
        }
        t.into_dyn()
    };
    let grads = vec![
        ("src_embedding", scatter(src, &eg.input)),
        ("enc.weight_ih", eg.weights.weight_ih.into_dyn()),
        ("enc.weight_hh", eg.weights.weight_hh.into_dyn()),
        ("enc.bias_ih", eg.weights.bias_ih.into_dyn()),
        ("enc.bias_hh", eg.weights.bias_hh.into_dyn()),
        ("tgt_embedding", scatter(&dec_in, &g.input)),
        ("dec.weight_ih", g.cell.weight_ih.into_dyn()),
        ("dec.weight_hh", g.cell.weight_hh.into_dyn()),
        ("dec.bias_ih", g.cell.bias_ih.into_dyn()),
        ("dec.bias_hh", g.cell.bias_hh.into_dyn()),
        ("combine.weight", g.combine_weight.into_dyn()),
        ("combine.bias", g.combine_bias.into_dyn()),
        ("attention.weight", Array1::from(g.attention[0].1.clone()).into_shape_with_order(IxDyn(&[H, H])).unwrap()),
        ("out.weight", d_out_w.into_dyn()),
        ("out.bias", d_out_b.into_dyn()),
    ];
    p.adam(&grads);
    loss / n
}

/// Exact-match rate of beam search of `width` on `src`.
fn accuracy(p: &Params, src: &[Vec<usize>], width: usize) -> f32 {
    let x = embed(p.two("src_embedding"), src);
    let enc = forward(CellKind::LSTM, &p.enc(), x.view(), &InitialState::default()).unwrap();
    let init = InitialState { hidden: Some(enc.state.hidden.view()), cell: enc.state.cell.as_ref().map(|c| c.view()) };
    let head = TokenHead { embedding: p.two("tgt_embedding"), weight: p.two("out.weight"), bias: p.one("out.bias") };
    let opts =
        BeamOptions { beam_width: width, max_length: T + 3, start: START, end: END, length_penalty: 0.0, n_best: 1 };
    let found = beam_search(&p.spec(), &p.dec(), &head, enc.output.view(), &vec![T; src.len()], &init, &opts).unwrap();
    let right = src
        .iter()
        .zip(&found)
        .filter(|(s, hyps)| hyps[0].tokens == s.iter().rev().copied().chain([END]).collect::<Vec<_>>())
        .count();
    right as f32 / src.len() as f32
}

#[test]
fn an_attention_encoder_decoder_learns_to_reverse_sequences() {
    let mut rng = Rng::new(3);
    let mut p = Params::new(&mut rng);
    let held_out = batch(&mut Rng::new(99), 200);
    let before = accuracy(&p, &held_out, 1);
    let mut losses = Vec::new();
    for _ in 0..300 {
        let src = batch(&mut rng, 32);
        losses.push(train_step(&mut p, &src));
    }
    let (greedy, beam) = (accuracy(&p, &held_out, 1), accuracy(&p, &held_out, 4));
    println!(
        "reversal: loss {:.3} → {:.3}; held-out exact match {before:.2} → greedy {greedy:.2}, beam 4 {beam:.2}",
        losses[0],
        losses[losses.len() - 1]
    );
    assert!(losses[losses.len() - 1] < 0.1 * losses[0], "the loss falls");
    assert!(greedy >= 0.9, "greedy decoding reverses held-out sequences: {greedy}");
    assert!(beam >= greedy - 0.02, "a wider beam does as well: {beam} vs {greedy}");
}
