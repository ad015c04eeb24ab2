//! Grapheme-to-phoneme conversion with CMUdict on the encoder–decoder of `gyre_core::seq2seq`: letters in, ARPAbet phonemes out (stress digits dropped, as the
//! published results do), one pronunciation per word (the first listed: the variants `word(2)`, … are skipped), words split
//! 90/10 at random (seeded). A bidirectional LSTM encoder over the letters, an LSTM decoder from
//! both final states side by side with the general attention score and input feeding, trained
//! with Adam on per-step cross-entropy over each target's own length; greedy and beam decoding
//! of the held-out words, scored by word error rate (any phoneme wrong) and phoneme error rate
//! (edit distance over the reference length).
//!
//! Run: `npm install --no-save cmu-pronouncing-dictionary@3.0.0` (its `index.js` holds the
//! dictionary), then
//! `cargo run --release -p gyre-core --example g2p -- node_modules/cmu-pronouncing-dictionary/index.js [words] [epochs] [hidden] [smoothing] [dropout]`
//! (`words`: how many dictionary words to use, 0 for all; default 20000, 8 epochs, hidden 128, label smoothing 0,
//! dropout 0).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // an example run by hand: a failure is the report

use gyre_core::optim::{Optimizer, OptimizerConfig};
use gyre_core::random::Rng;
use gyre_core::seq2seq::{DecodeOptions, EpochOptions, LossOptions, ScoreConfig, Seq2Seq, Seq2SeqConfig};
use std::time::Instant;

const START: usize = 1;
const END: usize = 2;

fn edit_distance(a: &[usize], b: &[usize]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Word and phoneme error rates of beam search of `width` on `pairs`.
fn evaluate(model: &Seq2Seq<f32>, pairs: &[(Vec<usize>, Vec<usize>)], width: usize) -> (f64, f64) {
    let (mut wrong, mut edits, mut total) = (0usize, 0usize, 0usize);
    let src: Vec<&[usize]> = pairs.iter().map(|(s, _)| s.as_slice()).collect();
    let opts = DecodeOptions { beam_width: width, max_length: 30, length_penalty: 0.0, n_best: 1 };
    let found = model.transduce(&src, &opts).unwrap();
    for ((_, reference), hyps) in pairs.iter().zip(&found) {
        let out: Vec<usize> = hyps[0].tokens.iter().copied().filter(|&t| t != END).collect();
        wrong += usize::from(&out != reference);
        edits += edit_distance(&out, reference);
        total += reference.len();
    }
    (wrong as f64 / pairs.len() as f64, edits as f64 / total as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("the dictionary's index.js (see the file's header)");
    let limit: usize = args.get(2).map_or(20_000, |a| a.parse().expect("words"));
    let epochs: usize = args.get(3).map_or(8, |a| a.parse().expect("epochs"));
    let h: usize = args.get(4).map_or(128, |a| a.parse().expect("hidden"));
    let smoothing: f64 = args.get(5).map_or(0.0, |a| a.parse().expect("label smoothing"));
    let dropout: f64 = args.get(6).map_or(0.0, |a| a.parse().expect("dropout"));
    let text = std::fs::read_to_string(path).expect("read the dictionary");
    // Lines `  "word": "PH1 ON0 EH",`: words of letters and apostrophes, stress digits dropped.
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.trim().trim_end_matches(',').split("\": \"").collect();
        if parts.len() != 2 {
            continue;
        }
        let word = parts[0].trim_start_matches('"');
        // Some entries carry a comment after `#` (`"... # foreign french"`): not phonemes.
        let phones = parts[1].trim_end_matches('"').split('#').next().unwrap_or("").trim();
        if word.is_empty() || !word.chars().all(|c| c.is_ascii_lowercase() || c == '\'') {
            continue;
        }
        entries.push((
            word.to_string(),
            phones.split(' ').map(|p| p.trim_end_matches(|c: char| c.is_ascii_digit()).to_string()).collect(),
        ));
    }
    let mut rng = Rng::new(7);
    for i in (1..entries.len()).rev() {
        let j = (rng.uniform() * (i + 1) as f64) as usize % (i + 1);
        entries.swap(i, j);
    }
    if limit > 0 {
        entries.truncate(limit);
    }
    let mut letters: Vec<char> = entries.iter().flat_map(|(w, _)| w.chars()).collect();
    letters.sort_unstable();
    letters.dedup();
    let mut phones: Vec<String> = entries.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
    phones.sort_unstable();
    phones.dedup();
    // Ids: 0 unused, 1 start, 2 end, then the symbols.
    let pairs: Vec<(Vec<usize>, Vec<usize>)> = entries
        .iter()
        .map(|(w, p)| {
            (
                w.chars().map(|c| 3 + letters.binary_search(&c).unwrap()).collect(),
                p.iter().map(|x| 3 + phones.binary_search(x).unwrap()).collect(),
            )
        })
        .collect();
    let cut = pairs.len() * 9 / 10;
    let (train, test) = pairs.split_at(cut);
    let (nl, np) = (letters.len() + 3, phones.len() + 3);
    println!(
        "{} words ({} train, {} held out), {} letters, {} phonemes (stress dropped); hidden {h} per encoder direction, {} threads",
        pairs.len(),
        train.len(),
        test.len(),
        letters.len(),
        phones.len(),
        rayon::current_num_threads()
    );
    let config = Seq2SeqConfig {
        cell: "lstm".into(),
        source_vocab: nl,
        target_vocab: np,
        embedding: 64,
        hidden: h,
        layers: 1,
        bidirectional: true,
        score: ScoreConfig::General,
        input_feeding: true,
        start: START,
        end: END,
    };
    let mut model = Seq2Seq::<f32>::new(config, 7).unwrap();
    let sizes: Vec<usize> = model.params().map(|(_, _, v)| v.len()).collect();
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(0.002), &sizes).unwrap();
    let src: Vec<&[usize]> = train.iter().map(|(s, _)| s.as_slice()).collect();
    let tgt: Vec<&[usize]> = train.iter().map(|(_, t)| t.as_slice()).collect();
    let start = Instant::now();
    for epoch in 0..epochs {
        let opts = EpochOptions {
            batch_size: 64,
            lr: 0.002 * 0.7f64.powi(epoch.saturating_sub(3) as i32),
            clip_norm: Some(5.0),
            loss: LossOptions { label_smoothing: smoothing, dropout, seed: 0 },
            seed: epoch as u64,
            epoch: epoch + 1,
        };
        let mean = model.train_epoch(&mut optimizer, &src, &tgt, &opts).unwrap();
        let probe = &test[..test.len().min(1000)];
        let (wer, per) = evaluate(&model, probe, 1);
        println!(
            "epoch {}: loss {mean:.4}, greedy on {} held-out words: WER {:.1}%, PER {:.1}% ({:.0} s)",
            epoch + 1,
            probe.len(),
            wer * 100.0,
            per * 100.0,
            start.elapsed().as_secs_f64()
        );
    }
    let trained = start.elapsed().as_secs_f64();
    for width in [1, 5] {
        let t0 = Instant::now();
        let (wer, per) = evaluate(&model, test, width);
        println!(
            "all {} held-out words, beam {width}: WER {:.2}%, PER {:.2}% (decoding {:.1} s; training took {trained:.0} s)",
            test.len(),
            wer * 100.0,
            per * 100.0,
            t0.elapsed().as_secs_f64()
        );
    }
}
