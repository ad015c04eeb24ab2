//! Decoding the attention decoder one token at a time: beam search (Wu et al. 2016's length
//! normalization as an option), and greedy decoding as its width-1 case. All live hypotheses of
//! all sequences run each step as one batch of rows.
//!
//! A token `y_t` enters the decoder as its embedding row; the decoder's `h̃_t` gives the logits
//! `W_o h̃_t + b_o` over the vocabulary, whose log-softmax scores the next token. A hypothesis's
//! `log_prob` is the sum of its tokens' log-probabilities (the end token's included): exactly the
//! log-probability the model gives the output under teacher forcing.

use super::decoder::{DecoderSpec, DecoderWeights, StepRows, Stepper};
use crate::error::{CoreError, Result};
use crate::kernels::linalg::{gemm, gemm_acc_prepacked, DOT_FORM_MAX_ROWS};
use crate::kernels::real::Real;
use crate::InitialState;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayView3};

/// The token side of a decoder: the embedding its inputs are read from and the output layer
/// that scores the next token.
#[derive(Clone, Copy, Debug)]
pub struct TokenHead<'a, F> {
    /// `[V, I]` the decoder's input embedding (row `v` for token `v`).
    pub embedding: ArrayView2<'a, F>,
    /// `[V, H]` the output layer's weight.
    pub weight: ArrayView2<'a, F>,
    /// `[V]` its bias.
    pub bias: ArrayView1<'a, F>,
}

/// How [`beam_search`] decodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeamOptions {
    /// Hypotheses kept per sequence at each step (1: greedy decoding).
    pub beam_width: usize,
    /// Tokens generated at most (the end token counts).
    pub max_length: usize,
    /// The token the decoder starts from.
    pub start: usize,
    /// The token that ends a hypothesis.
    pub end: usize,
    /// `α` of Wu et al. (2016)'s length normalization: finished hypotheses are ranked by
    /// `log_prob / ((5 + |Y|) / 6)^α`; 0 ranks them by `log_prob`.
    pub length_penalty: f64,
    /// Hypotheses returned per sequence (at most `beam_width`).
    pub n_best: usize,
}

/// One decoded output.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis<F> {
    /// The tokens generated, the end token last when `finished`.
    pub tokens: Vec<usize>,
    /// Σ log p of the tokens.
    pub log_prob: f64,
    /// The ranking score: `log_prob` over the length penalty.
    pub score: f64,
    /// Whether it ended with the end token (else `max_length` cut it).
    pub finished: bool,
    /// `[tokens, Tk]` the attention weights of each generated token's step.
    pub attention: Array2<F>,
}

/// A live hypothesis: its tokens so far, score, and the attention rows of its steps.
#[derive(Clone)]
struct Live<F> {
    tokens: Vec<usize>,
    log_prob: f64,
    attention: Vec<Vec<F>>,
}

/// The widest beam [`beam_search`] takes: its buffers and candidates grow with the width.
pub const MAX_BEAM_WIDTH: usize = 1024;

fn penalty(length: usize, alpha: f64) -> f64 {
    if alpha == 0.0 {
        1.0
    } else {
        ((5.0 + length as f64) / 6.0).powf(alpha)
    }
}

/// One model of an ensemble ([`beam_search_ensemble`]): its decoder, the token side, the memory
/// it attends over (`[B, Tk, Hk]`, sequence `b` over its first `lengths[b]` steps) and its
/// initial state (`[B, H]`; zeros when absent). Views of values borrowed from anywhere fit one
/// lifetime through their `reborrow` methods.
#[derive(Clone, Copy)]
pub struct Member<'a, F> {
    /// The decoder's cell, score and input feeding.
    pub spec: DecoderSpec<'a, F>,
    /// The decoder's weights.
    pub weights: DecoderWeights<'a, F>,
    /// The embedding its tokens enter by and the output layer scoring the next one.
    pub head: TokenHead<'a, F>,
    /// `[B, Tk, Hk]` the encoder's outputs.
    pub memory: ArrayView3<'a, F>,
    /// `[B]` each sequence's valid steps of `memory`.
    pub lengths: &'a [usize],
    /// `[B, H]` states to start from.
    pub init: InitialState<'a, F>,
}

impl<F> TokenHead<'_, F> {
    /// The same views, borrowed for a shorter time.
    pub fn reborrow(&self) -> TokenHead<'_, F> {
        TokenHead { embedding: self.embedding.view(), weight: self.weight.view(), bias: self.bias.view() }
    }
}

/// Beam search of the decoder over `memory: [B, Tk, Hk]` (sequence `b` attending over its first
/// `lengths[b]` steps) from `init` (`[B, H]` states; zeros when absent): per sequence the
/// `n_best` hypotheses, best first (ties: the earlier-found first).
///
/// # Errors
/// When a shape disagrees, a token id is outside the vocabulary, or an option is 0.
pub fn beam_search<F: Real>(
    spec: &DecoderSpec<'_, F>,
    w: &DecoderWeights<'_, F>,
    head: &TokenHead<'_, F>,
    memory: ArrayView3<F>,
    lengths: &[usize],
    init: &InitialState<'_, F>,
    opts: &BeamOptions,
) -> Result<Vec<Vec<Hypothesis<F>>>> {
    let member = Member {
        spec: spec.reborrow(),
        weights: w.reborrow(),
        head: head.reborrow(),
        memory: memory.view(),
        lengths,
        init: init.reborrow(),
    };
    beam_search_ensemble(&[member], opts)
}

/// One member's decoding state: its prepared step and row buffers `[rows, ·]` (the current
/// rows first, the next step's written beside them).
struct Lane<'p, F: Real> {
    stepper: Stepper<'p, F>,
    /// Every token's input projection `[V, G·H]` (`b_ih` included).
    token_gates: Array2<F>,
    has_c: bool,
    hs: Array2<F>,
    cs: Array2<F>,
    hts: Array2<F>,
    h_new: Array2<F>,
    c_new: Array2<F>,
    ht_new: Array2<F>,
    gates: Array2<F>,
    extra: Array2<F>,
    context: Array2<F>,
    weights: Array2<F>,
    logits: Array2<F>,
    /// The head's `Wᵀ: [H, V]` packed for the products of more than a few rows (empty for f64).
    head_packed: crate::kernels::packed::Packed<F>,
}

/// Checks one member (whose prepared weights are `prep`) against the options (and the first
/// member's vocabulary and batch).
fn check_member<F: Real>(
    m: &Member<'_, F>,
    prep: &super::decoder::DecoderPrep<F>,
    opts: &BeamOptions,
    first: Option<&Member<'_, F>>,
) -> Result<()> {
    let (v, e) = m.head.embedding.dim();
    let h = m.weights.cell.weight_hh.ncols();
    for (what, id) in [("start", opts.start), ("end", opts.end)] {
        if id >= v {
            return Err(CoreError::invalid(what, format!("a token id below the vocabulary size {v}"), id));
        }
    }
    if m.head.weight.dim() != (v, h) || m.head.bias.len() != v {
        return Err(CoreError::shape(
            "output weight and bias",
            format!("[{v}, {h}] and [{v}] (the embedding's vocabulary, the decoder's width)"),
            format!("{:?} and [{}]", m.head.weight.dim(), m.head.bias.len()),
        ));
    }
    if let Some(f) = first {
        if f.head.embedding.nrows() != v || f.memory.dim().0 != m.memory.dim().0 || f.lengths != m.lengths {
            return Err(CoreError::shape(
                "ensemble",
                format!(
                    "members over the same {} sequences (lengths {:?}) and vocabulary of {}",
                    f.memory.dim().0,
                    f.lengths,
                    f.head.embedding.nrows()
                ),
                format!("{} sequences (lengths {:?}) and {v} tokens", m.memory.dim().0, m.lengths),
            ));
        }
    }
    // The checks of a teacher-forced pass, on one step of the start token.
    let b = m.memory.dim().0;
    let probe = ndarray::Array3::from_shape_fn((b, 1, e), |(_, _, c)| m.head.embedding[[opts.start, c]]);
    super::decoder::decoder_forward(&m.spec, &m.weights, Some(prep), probe.view(), m.memory, m.lengths, &m.init)?;
    Ok(())
}

/// [`beam_search`] of an ensemble: every member steps its own decoder over its own memory of the
/// same sequences, and each token's log-probability is the mean of the members'
/// (log-linear averaging, as NMT toolkits ensemble); a hypothesis's `log_prob` is the sum of
/// those means and its attention rows the members' mean. One member gives [`beam_search`].
///
/// # Errors
/// As [`beam_search`], for every member; when the members do not decode the same sequences
/// (batch, lengths) over the same vocabulary; or when there is none.
pub fn beam_search_ensemble<F: Real>(members: &[Member<'_, F>], opts: &BeamOptions) -> Result<Vec<Vec<Hypothesis<F>>>> {
    let Some(first) = members.first() else {
        return Err(CoreError::invalid("ensemble", "at least one model", "none"));
    };
    for (what, n) in [("beamWidth", opts.beam_width), ("maxLength", opts.max_length), ("nBest", opts.n_best)] {
        if n == 0 {
            return Err(CoreError::invalid(what, "a positive integer", 0));
        }
    }
    if opts.beam_width > MAX_BEAM_WIDTH {
        return Err(CoreError::invalid("beamWidth", format!("at most {MAX_BEAM_WIDTH}"), opts.beam_width));
    }
    // Each member's prepared weights, made once for its checks and its steps.
    let preps: Vec<super::decoder::DecoderPrep<F>> =
        members.iter().map(|m| super::decoder::DecoderPrep::new(&m.spec, &m.weights, false)).collect::<Result<_>>()?;
    for (k, (m, prep)) in members.iter().zip(&preps).enumerate() {
        check_member(m, prep, opts, (k > 0).then_some(first))?;
    }
    let (b, tk, _) = first.memory.dim();
    let v = first.head.embedding.nrows();
    let width = opts.beam_width;
    // Live hypotheses per sequence: at most the width, and at most V^t after t steps.
    let prefixes = (1..opts.max_length).fold(1usize, |n, _| n.saturating_mul(v)).max(1);
    let rows_max = b * width.min(prefixes);
    let mut lanes: Vec<Lane<'_, F>> = Vec::with_capacity(members.len());
    for (m, prep) in members.iter().zip(&preps) {
        let h = m.weights.cell.weight_hh.ncols();
        let has_c = m.spec.cell.has_cell_state();
        let gh = m.spec.cell.gates() * h;
        let i = m.head.embedding.ncols();
        // Every token's input projection, once: [V, I] × [I, G·H] + b_ih.
        let mut token_gates = Array2::from_shape_fn((v, gh), |(_, c)| m.weights.cell.bias_ih[c]);
        gemm(
            F::one(),
            m.head.embedding,
            m.weights.cell.weight_ih.slice(s![.., ..i]).t(),
            F::one(),
            token_gates.view_mut(),
        );
        let extra_width = {
            use crate::rnn::cell::Cell;
            Cell::<F>::extra(&crate::rnn::cells::AnyCell::new(m.spec.cell)) * h
        };
        let zeros = |cols: usize| Array2::<F>::zeros((rows_max, cols));
        let mut lane = Lane {
            stepper: Stepper::new(&m.spec, &m.weights, prep, None, &m.memory, m.lengths, rows_max)?,
            token_gates,
            has_c,
            hs: zeros(h),
            cs: zeros(if has_c { h } else { 0 }),
            hts: zeros(h),
            h_new: zeros(h),
            c_new: zeros(if has_c { h } else { 0 }),
            ht_new: zeros(h),
            gates: zeros(gh),
            extra: zeros(extra_width),
            context: zeros(m.memory.dim().2),
            weights: zeros(tk),
            logits: zeros(v),
            head_packed: match (F::FAST_GEMM, m.head.weight.as_slice()) {
                (true, Some(w)) => crate::kernels::packed::pack_transposed(w, h),
                _ => Default::default(),
            },
        };
        // Each sequence starts as one hypothesis on row n.
        for n in 0..b {
            if let Some(h0) = m.init.hidden {
                lane.hs.row_mut(n).assign(&h0.row(n));
            }
            if let (Some(c0), true) = (m.init.cell, has_c) {
                lane.cs.row_mut(n).assign(&c0.row(n));
            }
        }
        lanes.push(lane);
    }
    let count = F::lit(members.len() as f64);
    let mut live: Vec<Vec<Live<F>>> =
        (0..b).map(|_| vec![Live { tokens: Vec::new(), log_prob: 0.0, attention: Vec::new() }]).collect();
    let mut finished: Vec<Vec<Hypothesis<F>>> = (0..b).map(|_| Vec::new()).collect();
    let mut seq: Vec<usize> = (0..b).collect();
    let mut log_probs: Vec<Vec<f64>> = Vec::new();
    let mut weights = Array2::<F>::zeros((rows_max, tk));
    let mut vals: Vec<f64> = Vec::with_capacity(v);
    for step in 0..opts.max_length {
        let r = seq.len();
        if r == 0 {
            break;
        }
        log_probs.clear();
        log_probs.resize(r, vec![0.0; v]);
        weights.fill(F::zero());
        for (lane, m) in lanes.iter_mut().zip(members) {
            // The rows' last tokens (the start token first).
            let mut k = 0;
            for hyps in &live {
                for hyp in hyps {
                    let token = hyp.tokens.last().copied().unwrap_or(opts.start);
                    lane.gates.row_mut(k).assign(&lane.token_gates.row(token));
                    k += 1;
                }
            }
            let rows = StepRows {
                gates: lane.gates.slice_mut(s![..r, ..]),
                h_tilde_prev: lane.hts.slice(s![..r, ..]),
                h_prev: lane.hs.slice(s![..r, ..]),
                c_prev: lane.cs.slice(s![..r, ..]),
                extra: lane.extra.slice_mut(s![..r, ..]),
                h: lane.h_new.slice_mut(s![..r, ..]),
                c: lane.c_new.slice_mut(s![..r, ..]),
                context: lane.context.slice_mut(s![..r, ..]),
                weights: lane.weights.slice_mut(s![..r, ..]),
                h_tilde: lane.ht_new.slice_mut(s![..r, ..]),
            };
            lane.stepper.step(&m.spec, &m.weights, &m.memory, m.lengths, &seq, rows)?;
            // Log-softmax of the logits, in f64, summed over the members.
            let mut lg = lane.logits.slice_mut(s![..r, ..]);
            for mut row in lg.rows_mut() {
                row.assign(&m.head.bias);
            }
            // A few rows: dot products with the head's rows; more: its packed transpose (each
            // step copied the transposed view before).
            let ht = lane.ht_new.slice(s![..r, ..]);
            if r <= DOT_FORM_MAX_ROWS || !gemm_acc_prepacked(ht, &lane.head_packed, lg.view_mut()) {
                gemm(F::one(), ht, m.head.weight.t(), F::one(), lg.view_mut());
            }
            for (row, sum) in lg.rows().into_iter().zip(log_probs.iter_mut()) {
                vals.clear();
                vals.extend(row.iter().map(|x| x.to_f64().unwrap_or(f64::NAN)));
                let top = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = top + vals.iter().map(|x| (x - top).exp()).sum::<f64>().ln();
                sum.iter_mut().zip(&vals).for_each(|(s, x)| *s += x - lse);
            }
            weights.slice_mut(s![..r, ..]).zip_mut_with(&lane.weights.slice(s![..r, ..]), |a, &w| *a = *a + w);
        }
        if members.len() > 1 {
            let n = members.len() as f64;
            log_probs.iter_mut().flatten().for_each(|x| *x /= n);
            weights.mapv_inplace(|x| x / count);
        }
        // Per sequence: the best `width` extensions of its live hypotheses.
        let last = step + 1 == opts.max_length;
        let mut next_live: Vec<Vec<Live<F>>> = Vec::with_capacity(b);
        let mut sources: Vec<usize> = Vec::new();
        let mut next_seq: Vec<usize> = Vec::new();
        let mut row0 = 0;
        for (n, hyps) in live.iter().enumerate() {
            let mut cands: Vec<(f64, usize, usize)> = Vec::new();
            for (j, hyp) in hyps.iter().enumerate() {
                // Only a hypothesis's `width` best tokens can be among the sequence's `width` best.
                let row = &log_probs[row0 + j];
                let mut tokens: Vec<usize> = (0..v).collect();
                if width < v {
                    tokens.select_nth_unstable_by(width - 1, |&a, &b| {
                        row[b].partial_cmp(&row[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b))
                    });
                    tokens.truncate(width);
                }
                cands.extend(tokens.into_iter().map(|token| (hyp.log_prob + row[token], j, token)));
            }
            // Best first; ties by hypothesis, then token (stable order).
            cands.sort_by(|a, b| {
                b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
            });
            let mut kept = Vec::new();
            for &(lp, j, token) in &cands {
                if kept.len() >= width || finished[n].len() >= width {
                    break;
                }
                let hyp = &hyps[j];
                let mut tokens = hyp.tokens.clone();
                tokens.push(token);
                let mut attention = hyp.attention.clone();
                attention.push(weights.row(row0 + j).to_vec());
                if token == opts.end || last {
                    let done = token == opts.end;
                    let rows = attention.len();
                    let flat: Vec<F> = attention.into_iter().flatten().collect();
                    let attention = Array2::from_shape_vec((rows, tk), flat)
                        .map_err(|e| CoreError::shape("attention", format!("[{rows}, {tk}]"), e.to_string()))?;
                    let score = lp / penalty(tokens.len(), opts.length_penalty);
                    finished[n].push(Hypothesis { tokens, log_prob: lp, score, finished: done, attention });
                } else {
                    sources.push(row0 + j);
                    next_seq.push(n);
                    kept.push(Live { tokens, log_prob: lp, attention });
                }
            }
            row0 += hyps.len();
            next_live.push(kept);
        }
        // The surviving rows' states, in their new order, in every member.
        for lane in &mut lanes {
            for (k, &src) in sources.iter().enumerate() {
                lane.hs.row_mut(k).assign(&lane.h_new.row(src));
                lane.hts.row_mut(k).assign(&lane.ht_new.row(src));
                if lane.has_c {
                    lane.cs.row_mut(k).assign(&lane.c_new.row(src));
                }
            }
        }
        live = next_live;
        seq = next_seq;
    }
    let mut out = Vec::with_capacity(b);
    for mut done in finished {
        // Stable: equal scores keep the order they were found in.
        done.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal));
        done.truncate(opts.n_best);
        out.push(done);
    }
    Ok(out)
}
