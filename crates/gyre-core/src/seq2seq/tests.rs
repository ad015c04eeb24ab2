#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::optim::{Optimizer, OptimizerConfig};

fn config(cell: &str, layers: usize, bidirectional: bool, score: ScoreConfig, input_feeding: bool) -> Seq2SeqConfig {
    Seq2SeqConfig {
        cell: cell.into(),
        source_vocab: 7,
        target_vocab: 6,
        embedding: 3,
        hidden: 4,
        layers,
        bidirectional,
        score,
        input_feeding,
        start: 1,
        end: 2,
    }
}

fn batch() -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    (vec![vec![3, 4, 5, 6], vec![0, 6], vec![5, 5, 3]], vec![vec![3, 4, 5], vec![], vec![5, 0, 3, 4]])
}

fn refs(v: &[Vec<usize>]) -> Vec<&[usize]> {
    v.iter().map(Vec::as_slice).collect()
}

/// Every parameter tensor's gradient, at a few entries each, against central differences of
/// the loss in f64.
fn gradcheck(c: Seq2SeqConfig, eps: f64, dropout: f64) {
    let model = Seq2Seq::<f64>::new(c.clone(), 11).unwrap();
    let (src, tgt) = batch();
    let (src, tgt) = (refs(&src), refs(&tgt));
    // With dropout, the masks are fixed by the seed: every evaluation draws the same ones.
    let opts = LossOptions { label_smoothing: eps, dropout, seed: 5 };
    let (_, grads) = model.loss_and_gradient(&src, &tgt, &opts).unwrap();
    let mut worst = 0.0f64;
    let mut rng = Rng::new(3);
    for (k, (name, _, values)) in model.params().enumerate() {
        for _ in 0..4 {
            let i = rng.below(values.len());
            let at = |delta: f64| {
                let mut m = model.clone();
                m.values[k][i] += delta;
                m.loss(&src, &tgt, &opts).unwrap()
            };
            let h = 1e-6;
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            // Relative, with a floor of 1e-4 under which the difference is absolute (the central
            // difference's rounding error is about 1e-10 here).
            let err = (numeric - grads[k][i]).abs() / numeric.abs().max(grads[k][i].abs()).max(1e-4);
            assert!(err < 1e-5, "{name}[{i}]: analytic {} vs numeric {numeric} ({c:?})", grads[k][i]);
            worst = worst.max(err);
        }
    }
    assert!(worst < 1e-5);
}

#[test]
fn gradients_match_finite_differences_for_every_parameter() {
    gradcheck(config("lstm", 2, true, ScoreConfig::General, true), 0.1, 0.0);
    gradcheck(config("gru", 1, false, ScoreConfig::Additive { units: 5 }, false), 0.0, 0.0);
    gradcheck(config("rnn", 1, true, ScoreConfig::Dot, true), 0.2, 0.0);
    gradcheck(config("gru", 2, true, ScoreConfig::Dot, false), 0.0, 0.0);
    // Dropout on the embeddings, between encoder layers and before the output layer.
    gradcheck(config("lstm", 2, true, ScoreConfig::General, true), 0.1, 0.3);
    gradcheck(config("gru", 1, false, ScoreConfig::Additive { units: 5 }, false), 0.0, 0.5);
}

#[test]
fn dropout_changes_the_loss_with_its_seed_and_is_off_at_zero() {
    let model = Seq2Seq::<f64>::new(config("lstm", 2, true, ScoreConfig::General, true), 4).unwrap();
    let (src, tgt) = batch();
    let (src, tgt) = (refs(&src), refs(&tgt));
    let l =
        |dropout: f64, seed: u64| model.loss(&src, &tgt, &LossOptions { label_smoothing: 0.0, dropout, seed }).unwrap();
    assert_eq!(l(0.0, 1), l(0.0, 2));
    assert_eq!(l(0.4, 1), l(0.4, 1));
    assert_ne!(l(0.4, 1), l(0.4, 2));
    assert_ne!(l(0.4, 1), l(0.0, 1));
    let err = model.loss(&src, &tgt, &LossOptions { dropout: 1.0, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("dropout"), "{err}");
}

#[test]
fn the_loss_is_the_negative_log_probability_beam_search_gives_the_same_output() {
    // Two independent paths: the teacher-forced loss over a target, and the log-probability
    // beam search accumulates step by step while it finds that target.
    let model = Seq2Seq::<f64>::new(config("lstm", 1, true, ScoreConfig::General, true), 5).unwrap();
    let sources: Vec<Vec<usize>> = vec![vec![3, 4, 5], vec![6, 6, 0, 1]];
    let found = model
        .transduce(&refs(&sources), &DecodeOptions { beam_width: 3, max_length: 6, length_penalty: 0.0, n_best: 3 })
        .unwrap();
    for (src, hyps) in sources.iter().zip(&found) {
        for hyp in hyps.iter().filter(|h| h.finished) {
            let body = &hyp.tokens[..hyp.tokens.len() - 1];
            let loss = model.loss(&[src], &[body], &LossOptions::default()).unwrap();
            let nll = loss * hyp.tokens.len() as f64;
            assert!((nll + hyp.log_prob).abs() < 1e-9, "{nll} vs {}", -hyp.log_prob);
        }
    }
}

/// An ensemble's hypotheses score by the mean of its models' log-probabilities: each finished
/// output's `log_prob` is the mean of the two models' teacher-forced log-probabilities of it
/// (their losses), for several beams of two models of different cells and scores; a model in an
/// ensemble with itself decodes as it does alone, bit for bit.
#[test]
fn an_ensemble_scores_outputs_by_the_mean_of_its_models_log_probabilities() {
    let a = Seq2Seq::<f64>::new(config("lstm", 1, true, ScoreConfig::General, true), 3).unwrap();
    let b = Seq2Seq::<f64>::new(config("gru", 2, false, ScoreConfig::Additive { units: 3 }, false), 9).unwrap();
    let sources: Vec<Vec<usize>> = vec![vec![3, 4, 5, 6], vec![0, 6], vec![5, 5, 3]];
    let opts = DecodeOptions { beam_width: 3, max_length: 6, length_penalty: 0.0, n_best: 3 };
    let found = a.transduce_ensemble(&[&b], &refs(&sources), &opts).unwrap();
    let mut checked = 0;
    for (src, hyps) in sources.iter().zip(&found) {
        for hyp in hyps.iter().filter(|h| h.finished) {
            let body = &hyp.tokens[..hyp.tokens.len() - 1];
            let nll =
                |m: &Seq2Seq<f64>| m.loss(&[src], &[body], &LossOptions::default()).unwrap() * hyp.tokens.len() as f64;
            let mean = -(nll(&a) + nll(&b)) / 2.0;
            assert!((mean - hyp.log_prob).abs() < 1e-9, "{mean} vs {}", hyp.log_prob);
            checked += 1;
        }
    }
    assert!(checked >= 3, "{checked} finished outputs");
    // Not either model's own decoding (the test can tell the mean from one model).
    let alone = a.transduce(&refs(&sources), &opts).unwrap();
    assert_ne!(alone, found);
    assert_eq!(a.transduce_ensemble(&[&a], &refs(&sources), &opts).unwrap(), alone);
}

/// Greedy decoding of an ensemble picks, at each step, the token of the highest mean of the two
/// models' log-probabilities, as two streams stepped with its tokens give them.
#[test]
fn an_ensembles_greedy_tokens_are_the_argmax_of_the_streams_mean() {
    let a = Seq2Seq::<f64>::new(config("lstm", 1, true, ScoreConfig::Dot, false), 4).unwrap();
    let b = Seq2Seq::<f64>::new(config("lstm", 2, true, ScoreConfig::General, true), 5).unwrap();
    let sources: Vec<Vec<usize>> = vec![vec![3, 4, 5], vec![6, 0], vec![1, 2, 3, 4, 5]];
    let greedy = a
        .transduce_ensemble(
            &[&b],
            &refs(&sources),
            &DecodeOptions { beam_width: 1, max_length: 5, length_penalty: 0.0, n_best: 1 },
        )
        .unwrap();
    let (mut sa, mut sb) = (a.stream(&refs(&sources)).unwrap(), b.stream(&refs(&sources)).unwrap());
    let mut tokens = vec![1usize; sources.len()];
    for k in 0..5 {
        let (la, _) = a.stream_step(&mut sa, &tokens).unwrap();
        let (lb, _) = b.stream_step(&mut sb, &tokens).unwrap();
        for (i, hyp) in greedy.iter().enumerate() {
            let Some(&want) = hyp[0].tokens.get(k) else { continue };
            let mean = |t: usize| (la[[i, t]] + lb[[i, t]]) / 2.0;
            let best = (0..6).max_by(|&x, &y| mean(x).total_cmp(&mean(y))).unwrap();
            assert_eq!(best, want, "row {i} step {k}");
            tokens[i] = best;
        }
    }
}

#[test]
fn an_ensemble_of_other_vocabularies_is_refused_naming_the_model() {
    let a = Seq2Seq::<f64>::new(config("lstm", 1, true, ScoreConfig::Dot, false), 4).unwrap();
    let b =
        Seq2Seq::<f64>::new(Seq2SeqConfig { target_vocab: 7, ..config("lstm", 1, true, ScoreConfig::Dot, false) }, 5)
            .unwrap();
    let opts = DecodeOptions { beam_width: 2, max_length: 4, length_penalty: 0.0, n_best: 1 };
    let err = a.transduce_ensemble(&[&a, &b], &refs(&[vec![3, 4]]), &opts).unwrap_err().to_string();
    assert!(err.contains("ensemble[1]") && err.contains("targetVocab 7"), "{err}");
}

#[test]
fn a_stream_stepped_with_the_greedy_tokens_gives_the_greedy_decode() {
    let model = Seq2Seq::<f64>::new(config("gru", 2, true, ScoreConfig::Additive { units: 3 }, true), 8).unwrap();
    let sources: Vec<Vec<usize>> = vec![vec![3, 4, 5], vec![6, 0]];
    let greedy = model
        .transduce(&refs(&sources), &DecodeOptions { beam_width: 1, max_length: 5, length_penalty: 0.0, n_best: 1 })
        .unwrap();
    let mut stream = model.stream(&refs(&sources)).unwrap();
    let mut tokens = vec![1usize, 1];
    let mut lp = [0.0f64; 2];
    for k in 0..5 {
        let (log_probs, attention) = model.stream_step(&mut stream, &tokens).unwrap();
        for (i, hyp) in greedy.iter().enumerate() {
            let Some(&want) = hyp[0].tokens.get(k) else { continue };
            let best = (0..6).max_by(|&a, &b| log_probs[[i, a]].total_cmp(&log_probs[[i, b]])).unwrap();
            assert_eq!(best, want, "row {i} step {k}");
            lp[i] += log_probs[[i, best]];
            for (j, &a) in attention.row(i).iter().enumerate() {
                assert!((a - hyp[0].attention[[k, j]]).abs() < 1e-12);
            }
            tokens[i] = best;
        }
    }
    for (i, hyp) in greedy.iter().enumerate() {
        assert!((lp[i] - hyp[0].log_prob).abs() < 1e-9, "{} vs {}", lp[i], hyp[0].log_prob);
    }
    assert_eq!(stream.steps, 5);
    assert!(model.stream_step(&mut stream, &[1]).unwrap_err().to_string().contains("tokens"));
    assert!(model.stream_step(&mut stream, &[1, 9]).unwrap_err().to_string().contains("tokens[1]"));
    assert_eq!(stream.steps, 5);
}

#[test]
fn a_stream_steps_with_the_weights_the_model_has_when_it_steps() {
    // A stream keeps the decoder's prepared weights and the memory's projected keys between
    // steps; once the model has trained, its next step makes both again from the new weights.
    let mut model = Seq2Seq::<f32>::new(toy_config(), 3).unwrap();
    let mut rng = Rng::new(4);
    let (src, tgt) = reversal(&mut rng, 64);
    let stream = model.stream(&refs(&src[..2])).unwrap();
    let mut opt =
        Optimizer::new(OptimizerConfig::adam(0.01), &model.params().map(|p| p.2.len()).collect::<Vec<_>>()).unwrap();
    train(&mut model, &mut opt, &src, &tgt, 0..1);
    let v = model.views().unwrap();
    let mut fresh = stream.clone();
    fresh.prep = model.stream_prep(&v, fresh.memory.view(), &fresh.lengths).unwrap();
    let mut stale = stream.clone();
    stale.prep.0 = model.generation.0;
    let mut kept = stream;
    let step = |s: &mut Seq2SeqStream<f32>| model.stream_step(s, &[1, 1]).unwrap().0;
    let (now, want, old) = (step(&mut kept), step(&mut fresh), step(&mut stale));
    assert_eq!(now, want);
    // (The weights before training give other values: the test can tell.)
    assert_ne!(now, old);
    assert_eq!(kept.prep.0, model.generation.0);
}

#[test]
fn label_smoothing_matches_its_definition() {
    // With ε, loss = (1 − ε)·NLL + ε·mean_k(−log p_k); checked against the ε = 0 loss and the
    // ε = 1 loss (the uniform part alone).
    let model = Seq2Seq::<f64>::new(config("gru", 1, false, ScoreConfig::General, false), 2).unwrap();
    let (src, tgt) = batch();
    let (src, tgt) = (refs(&src), refs(&tgt));
    let l = |e: f64| model.loss(&src, &tgt, &LossOptions { label_smoothing: e, ..Default::default() }).unwrap();
    let (nll, uniform) = (l(0.0), l(1.0));
    assert!((l(0.1) - (0.9 * nll + 0.1 * uniform)).abs() < 1e-12);
    assert!(uniform > nll * 0.0 && nll > 0.0);
}

/// Pairs of digit strings and their reversal, ids 3… for the digits.
fn reversal(rng: &mut Rng, n: usize) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let src: Vec<Vec<usize>> = (0..n).map(|_| (0..2 + rng.below(5)).map(|_| 3 + rng.below(6)).collect()).collect();
    let tgt = src.iter().map(|s| s.iter().rev().copied().collect()).collect();
    (src, tgt)
}

fn toy_config() -> Seq2SeqConfig {
    Seq2SeqConfig {
        cell: "lstm".into(),
        source_vocab: 9,
        target_vocab: 9,
        embedding: 16,
        hidden: 32,
        layers: 1,
        bidirectional: true,
        score: ScoreConfig::General,
        input_feeding: true,
        start: 1,
        end: 2,
    }
}

fn train(
    model: &mut Seq2Seq<f32>,
    opt: &mut Optimizer<f32>,
    src: &[Vec<usize>],
    tgt: &[Vec<usize>],
    epochs: std::ops::Range<usize>,
) -> f64 {
    let mut last = 0.0;
    for epoch in epochs {
        let opts = EpochOptions {
            batch_size: 32,
            lr: 0.01,
            clip_norm: Some(5.0),
            loss: LossOptions { label_smoothing: 0.05, dropout: 0.1, seed: 0 },
            seed: epoch as u64,
            epoch: epoch + 1,
        };
        last = model.train_epoch(opt, &refs(src), &refs(tgt), &opts).unwrap();
    }
    last
}

#[test]
fn learns_to_reverse_held_out_sequences_and_decodes_them_exactly() {
    let mut rng = Rng::new(1);
    let (src, tgt) = reversal(&mut rng, 640);
    let (test_src, test_tgt) = reversal(&mut rng, 100);
    let mut model = Seq2Seq::<f32>::new(toy_config(), 1).unwrap();
    let mut opt =
        Optimizer::new(OptimizerConfig::adam(0.01), &model.params().map(|p| p.2.len()).collect::<Vec<_>>()).unwrap();
    let exact = |m: &Seq2Seq<f32>, width: usize| {
        let out = m
            .transduce(
                &refs(&test_src),
                &DecodeOptions { beam_width: width, max_length: 10, length_penalty: 0.0, n_best: 1 },
            )
            .unwrap();
        out.iter()
            .zip(&test_tgt)
            .filter(|(h, t)| h[0].tokens[..h[0].tokens.len() - 1] == t[..] && h[0].finished)
            .count()
    };
    assert!(exact(&model, 1) < 10, "untrained");
    let loss = train(&mut model, &mut opt, &src, &tgt, 0..12);
    assert!(loss < 0.4, "training loss {loss} (label smoothing and dropout included)");
    let (greedy, beam) = (exact(&model, 1), exact(&model, 4));
    assert!(greedy >= 90 && beam >= 90, "held-out exact: greedy {greedy}, beam {beam} of 100");
}

#[test]
fn a_saved_model_and_optimizer_resume_training_bit_for_bit() {
    let mut rng = Rng::new(4);
    let (src, tgt) = reversal(&mut rng, 96);
    let mut model = Seq2Seq::<f32>::new(toy_config(), 9).unwrap();
    let sizes: Vec<usize> = model.params().map(|p| p.2.len()).collect();
    let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &sizes).unwrap();
    train(&mut model, &mut opt, &src, &tgt, 0..1);
    let bytes = save(&model, 1, Some(&opt), Some("{\"k\":1}")).unwrap();
    let loaded = load(&bytes).unwrap();
    assert_eq!(loaded.model, model);
    assert_eq!((loaded.epochs, loaded.user.as_deref()), (1, Some("{\"k\":1}")));
    let (mut resumed, mut resumed_opt) = (loaded.model, loaded.optimizer.unwrap());
    train(&mut model, &mut opt, &src, &tgt, 1..2);
    train(&mut resumed, &mut resumed_opt, &src, &tgt, 1..2);
    assert_eq!(resumed, model);
    // Without an optimizer, and a damaged file named.
    assert!(load(&save(&model, 2, None, None).unwrap()).unwrap().optimizer.is_none());
    let mut config = toy_config();
    config.hidden = 8;
    let other = Seq2Seq::<f32>::new(config, 0).unwrap();
    // The configuration in the header says hidden 9 while the tensors have hidden 8.
    let mut bytes = save(&other, 0, None, None).unwrap();
    let pattern = b"hidden\\\":8";
    let at = bytes.windows(pattern.len()).position(|w| w == pattern).unwrap();
    bytes[at + pattern.len() - 1] = b'9';
    let err = load(&bytes).unwrap_err().to_string();
    assert!(err.contains("has shape") && err.contains("encoder.rnn"), "{err}");
}

#[test]
fn training_gives_the_same_bits_on_one_and_two_threads() {
    let mut rng = Rng::new(6);
    let (src, tgt) = reversal(&mut rng, 128);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut model = Seq2Seq::<f32>::new(toy_config(), 3).unwrap();
            let sizes: Vec<usize> = model.params().map(|p| p.2.len()).collect();
            let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), &sizes).unwrap();
            train(&mut model, &mut opt, &src, &tgt, 0..2);
            model
        })
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn bad_input_is_an_error_that_names_it() {
    let model = Seq2Seq::<f32>::new(toy_config(), 0).unwrap();
    let opts = LossOptions::default();
    let msg = |r: Result<f64>| r.unwrap_err().to_string();
    assert!(msg(model.loss(&[&[3, 4], &[]], &[&[3], &[4]], &opts)).contains("sources[1]"));
    assert!(msg(model.loss(&[&[3, 40]], &[&[3]], &opts)).contains("sources[0][1]"));
    assert!(msg(model.loss(&[&[3]], &[&[3, 9]], &opts)).contains("targets[0][1]"));
    assert!(msg(model.loss(&[&[3]], &[], &opts)).contains("targets"));
    let decode = DecodeOptions { beam_width: 0, max_length: 5, length_penalty: 0.0, n_best: 1 };
    assert!(model.transduce(&[&[3]], &decode).unwrap_err().to_string().contains("beam"));
    let mut c = toy_config();
    c.end = 20;
    assert!(Seq2Seq::<f32>::new(c, 0).unwrap_err().to_string().contains("end"));
    let json = toy_config().to_json().replace("\"layers\":1", "\"layers\":1,\"depth\":2");
    assert!(Seq2SeqConfig::from_json(&json).unwrap_err().to_string().contains("depth"));
    assert_eq!(Seq2SeqConfig::from_json(&toy_config().to_json()).unwrap(), toy_config());
}
