//! The pieces of an encoder–decoder compose and learn: a bidirectional LSTM encoder over
//! sources of several lengths (the functional `forward_sequences` / `backward_sequences`, one
//! call per direction), the attention decoder starting from the two directions' final states side
//! by side and attending over their outputs side by side (masked by the sources' lengths), with
//! input feeding and the general score, an output layer and per-step cross-entropy over each
//! target's own length, trained with Adam written here on reversing token sequences; greedy
//! decoding (beam search of width 1) then reverses held-out sequences, and a wider beam does at
//! least as well.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::needless_range_loop)] // test code

use gyre_core::attention::{
    beam_search, decoder_backward, decoder_forward, BeamOptions, DecoderOutputGrads, DecoderSpec, DecoderWeights,
    TokenHead,
};
use gyre_core::random::Rng;
use gyre_core::{
    backward_sequences, forward_sequences, AttentionScore, CellKind, InitialState, LayerWeights, OutputGrads,
    SequenceOptions,
};
use ndarray::{s, Array1, Array2, Array3, ArrayD, Axis, IxDyn};

const START: usize = 1;
const END: usize = 2;
const V: usize = 10; // 0 unused, 1 start, 2 end, 3..9 symbols
const E: usize = 16;
/// Each encoder direction's width; the decoder's is both side by side.
const H: usize = 16;
const D: usize = 2 * H;
/// Source lengths 3 … T.
const T: usize = 6;

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
            ("enc.weight_ih_reverse", p(&[4 * H, E], k)),
            ("enc.weight_hh_reverse", p(&[4 * H, H], k)),
            ("enc.bias_ih_reverse", p(&[4 * H], k)),
            ("enc.bias_hh_reverse", p(&[4 * H], k)),
            ("tgt_embedding", p(&[V, E], 0.5)),
            ("dec.weight_ih", p(&[4 * D, E + D], k)),
            ("dec.weight_hh", p(&[4 * D, D], k)),
            ("dec.bias_ih", p(&[4 * D], k)),
            ("dec.bias_hh", p(&[4 * D], k)),
            ("combine.weight", p(&[D, 2 * D], k)),
            ("combine.bias", p(&[D], k)),
            ("attention.weight", p(&[D, D], k)),
            ("out.weight", p(&[V, D], k)),
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
    /// The encoder's weights of one direction (0 forwards, 1 reverse).
    fn enc(&self, d: usize) -> LayerWeights<'_, f32> {
        let names = [
            ["enc.weight_ih", "enc.weight_hh", "enc.bias_ih", "enc.bias_hh"],
            ["enc.weight_ih_reverse", "enc.weight_hh_reverse", "enc.bias_ih_reverse", "enc.bias_hh_reverse"],
        ][d];
        LayerWeights {
            weight_ih: self.two(names[0]),
            weight_hh: self.two(names[1]),
            bias_ih: self.one(names[2]),
            bias_hh: self.one(names[3]),
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

/// `[B, t, E]` the embedded ids, zeros past each sequence's end.
fn embed(table: ndarray::ArrayView2<f32>, ids: &[Vec<usize>], t: usize) -> Array3<f32> {
    Array3::from_shape_fn((ids.len(), t, table.ncols()), |(n, k, c)| ids[n].get(k).map_or(0.0, |&id| table[[id, c]]))
}

/// A batch of sources of 3 … T symbols.
fn batch(rng: &mut Rng, b: usize) -> Vec<Vec<usize>> {
    (0..b)
        .map(|_| {
            let len = 3 + (rng.uniform() * (T - 2) as f64) as usize % (T - 2);
            (0..len).map(|_| 3 + (rng.uniform() * 7.0) as usize % 7).collect()
        })
        .collect()
}

/// The bidirectional encoder's input, lengths, outputs `[B, T, 2H]` (the forward direction's
/// then the reverse one's) and the decoder's initial states `[B, 2H]` (the two final states side
/// by side).
struct Encoded {
    x: Array3<f32>,
    lengths: Vec<usize>,
    memory: Array3<f32>,
    h0: Array2<f32>,
    c0: Array2<f32>,
}

fn encode(p: &Params, src: &[Vec<usize>]) -> Encoded {
    let x = embed(p.two("src_embedding"), src, T);
    let lengths: Vec<usize> = src.iter().map(Vec::len).collect();
    let b = src.len();
    let (mut memory, mut h0, mut c0) = (Array3::zeros((b, T, D)), Array2::zeros((b, D)), Array2::zeros((b, D)));
    for d in 0..2 {
        let opts = SequenceOptions { lengths: Some(&lengths), reverse: d == 1 };
        let o = forward_sequences(CellKind::LSTM, &p.enc(d), x.view(), &InitialState::default(), &opts).unwrap();
        memory.slice_mut(s![.., .., d * H..(d + 1) * H]).assign(&o.output);
        h0.slice_mut(s![.., d * H..(d + 1) * H]).assign(&o.state.hidden);
        c0.slice_mut(s![.., d * H..(d + 1) * H]).assign(o.state.cell.as_ref().unwrap());
    }
    Encoded { x, lengths, memory, h0, c0 }
}

/// One training step on `src`; returns the mean cross-entropy per target token.
fn train_step(p: &mut Params, src: &[Vec<usize>]) -> f32 {
    let b = src.len();
    let targets: Vec<Vec<usize>> = src.iter().map(|s| s.iter().rev().copied().chain([END]).collect()).collect();
    let dec_in: Vec<Vec<usize>> =
        targets.iter().map(|t| std::iter::once(START).chain(t[..t.len() - 1].iter().copied()).collect()).collect();
    let tt = T + 1;
    let enc = encode(p, src);
    let y_in = embed(p.two("tgt_embedding"), &dec_in, tt);
    let init = InitialState { hidden: Some(enc.h0.view()), cell: Some(enc.c0.view()) };
    let dec = decoder_forward(&p.spec(), &p.dec(), None, y_in.view(), enc.memory.view(), &enc.lengths, &init).unwrap();
    // Logits, softmax cross-entropy over each target's own steps and its gradient (mean over the
    // target tokens; the steps past a target's end get none).
    let n = targets.iter().map(Vec::len).sum::<usize>() as f32;
    let flat = dec.output.view().into_shape_with_order((b * tt, D)).unwrap().to_owned();
    let mut logits = flat.dot(&p.two("out.weight").t());
    logits += &p.one("out.bias");
    let mut loss = 0.0;
    for (r, mut row) in logits.rows_mut().into_iter().enumerate() {
        let Some(&y) = targets[r / tt].get(r % tt) else {
            row.fill(0.0);
            continue;
        };
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.mapv_inplace(|l| (l - top).exp());
        let sum = row.sum();
        row.mapv_inplace(|e| e / sum);
        loss -= row[y].ln();
        row[y] -= 1.0;
        row.mapv_inplace(|g| g / n);
    }
    let d_out_w = logits.t().dot(&flat);
    let d_out_b = logits.sum_axis(Axis(0));
    let d_h = logits.dot(&p.two("out.weight")).into_shape_with_order((b, tt, D)).unwrap();
    let g = decoder_backward(
        &p.spec(),
        &p.dec(),
        y_in.view(),
        enc.memory.view(),
        &enc.lengths,
        &init,
        &DecoderOutputGrads { output: Some(d_h.view()), ..Default::default() },
    )
    .unwrap();
    // Each encoder direction gets its half of the memory's and the initial states' gradients.
    let c0_grad = g.c0.as_ref().unwrap();
    let mut d_x = Array3::<f32>::zeros(enc.x.raw_dim());
    let mut enc_grads = Vec::new();
    for d in 0..2 {
        let gm = g.memory.slice(s![.., .., d * H..(d + 1) * H]).to_owned();
        let (gh, gc) =
            (g.h0.slice(s![.., d * H..(d + 1) * H]).to_owned(), c0_grad.slice(s![.., d * H..(d + 1) * H]).to_owned());
        let opts = SequenceOptions { lengths: Some(&enc.lengths), reverse: d == 1 };
        let grads = OutputGrads { output: Some(gm.view()), hidden: Some(gh.view()), cell: Some(gc.view()) };
        let eg = backward_sequences(CellKind::LSTM, &p.enc(d), enc.x.view(), &InitialState::default(), &grads, &opts)
            .unwrap();
        d_x += &eg.input;
        enc_grads.push(eg.weights);
    }
    let enc_rev = enc_grads.pop().unwrap();
    let enc_fwd = enc_grads.pop().unwrap();
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
        ("src_embedding", scatter(src, &d_x)),
        ("enc.weight_ih", enc_fwd.weight_ih.into_dyn()),
        ("enc.weight_hh", enc_fwd.weight_hh.into_dyn()),
        ("enc.bias_ih", enc_fwd.bias_ih.into_dyn()),
        ("enc.bias_hh", enc_fwd.bias_hh.into_dyn()),
        ("enc.weight_ih_reverse", enc_rev.weight_ih.into_dyn()),
        ("enc.weight_hh_reverse", enc_rev.weight_hh.into_dyn()),
        ("enc.bias_ih_reverse", enc_rev.bias_ih.into_dyn()),
        ("enc.bias_hh_reverse", enc_rev.bias_hh.into_dyn()),
        ("tgt_embedding", scatter(&dec_in, &g.input)),
        ("dec.weight_ih", g.cell.weight_ih.into_dyn()),
        ("dec.weight_hh", g.cell.weight_hh.into_dyn()),
        ("dec.bias_ih", g.cell.bias_ih.into_dyn()),
        ("dec.bias_hh", g.cell.bias_hh.into_dyn()),
        ("combine.weight", g.combine_weight.into_dyn()),
        ("combine.bias", g.combine_bias.into_dyn()),
        ("attention.weight", Array1::from(g.attention[0].1.clone()).into_shape_with_order(IxDyn(&[D, D])).unwrap()),
        ("out.weight", d_out_w.into_dyn()),
        ("out.bias", d_out_b.into_dyn()),
    ];
    p.adam(&grads);
    loss / n
}

/// Exact-match rate of beam search of `width` on `src`.
fn accuracy(p: &Params, src: &[Vec<usize>], width: usize) -> f32 {
    let enc = encode(p, src);
    let init = InitialState { hidden: Some(enc.h0.view()), cell: Some(enc.c0.view()) };
    let head = TokenHead { embedding: p.two("tgt_embedding"), weight: p.two("out.weight"), bias: p.one("out.bias") };
    let opts =
        BeamOptions { beam_width: width, max_length: T + 3, start: START, end: END, length_penalty: 0.0, n_best: 1 };
    let found = beam_search(&p.spec(), &p.dec(), &head, enc.memory.view(), &enc.lengths, &init, &opts).unwrap();
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
