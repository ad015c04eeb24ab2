//! The native encoder–decoder object ([`gyre_core::seq2seq::Seq2Seq`]): built from its JSON
//! configuration or a file's bytes; an epoch of training, the loss and beam-search
//! transduction run off the JavaScript thread.

use crate::error::{contain, BindingError, Result};
use crate::model::report;
use crate::shared::{Call, Native, Shared};
use gyre_core::attention::Hypothesis;
use gyre_core::optim::{Optimizer, OptimizerConfig};
use gyre_core::seq2seq::{self, DecodeOptions, EpochOptions, LossOptions, Seq2Seq, Seq2SeqConfig};
use napi::bindgen_prelude::{AsyncTask, Buffer, ClassInstance, Float32Array, Float64Array, Uint32Array, Uint8Array};
use napi::Env;
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The native state of a [`NativeSeq2Seq`]: the model, its optimizer once trained, epochs,
/// `user` metadata.
pub struct State {
    model: Seq2Seq<f32>,
    optimizer: Option<Optimizer<f32>>,
    epochs: usize,
    user: Option<String>,
}

impl Native for State {
    const BUSY: &'static str = "the encoder–decoder is running another call (training, loss or transduce)";

    fn bytes(&self) -> i64 {
        let buffers = self.optimizer.as_ref().map_or(0, |o| o.config().buffer_names().len());
        (self.model.param_count() * (1 + buffers) * std::mem::size_of::<f32>()) as i64
    }
}

/// An encoder–decoder with attention in native memory (see `gyre_core::seq2seq`).
#[napi(custom_finalize)]
pub struct NativeSeq2Seq {
    shared: Shared<State>,
    config: Seq2SeqConfig,
}

impl napi::bindgen_prelude::ObjectFinalize for NativeSeq2Seq {
    fn finalize(self, env: Env) -> napi::Result<()> {
        report(&env, &self.shared.reported, 0);
        Ok(())
    }
}

/// `[N]` sequences from their concatenated ids and their lengths.
fn sequences(what: &str, ids: &[u32], lengths: &[u32]) -> Result<Vec<Vec<usize>>> {
    let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
    if total != ids.len() as u64 {
        return Err(gyre_core::CoreError::InvalidArgument {
            what: format!("{what}.lengths"),
            expected: format!("lengths summing to the {} ids", ids.len()),
            got: total.to_string(),
        }
        .into());
    }
    let mut out = Vec::with_capacity(lengths.len());
    let mut at = 0usize;
    for &l in lengths {
        let l = l as usize;
        out.push(ids[at..at + l].iter().map(|&t| t as usize).collect());
        at += l;
    }
    Ok(out)
}

fn refs(v: &[Vec<usize>]) -> Vec<&[usize]> {
    v.iter().map(Vec::as_slice).collect()
}

impl NativeSeq2Seq {
    fn wrap(env: &Env, s: State) -> Self {
        NativeSeq2Seq { config: s.model.config().clone(), shared: Shared::new(env, s) }
    }
}

/// Options of `NativeSeq2Seq.trainEpoch`.
#[napi(object)]
pub struct Seq2SeqEpochOptions {
    /// Pairs per optimizer step.
    pub batch_size: u32,
    /// This epoch's learning rate.
    pub learning_rate: f64,
    /// Clip the gradient's global L2 norm to this; absent: no clipping.
    pub clip_norm: Option<f64>,
    /// Label smoothing ε (0: none).
    pub label_smoothing: f64,
    /// Dropout probability on the embeddings, between encoder layers and before the output
    /// layer (0: none).
    pub dropout: f64,
    /// Seeds the order of the pairs.
    pub seed: u32,
    /// The optimizer's JSON form (`{"type":"adam","learningRate":…}`), used when the model has
    /// none yet.
    pub optimizer: String,
}

/// Options of `NativeSeq2Seq.transduce`.
#[napi(object)]
pub struct Seq2SeqDecodeOptions {
    /// Beams kept per source (1: greedy).
    pub beam_width: u32,
    /// The most tokens an output has, its end token included.
    pub max_length: u32,
    /// Wu et al.'s α (0: raw log-probability).
    pub length_penalty: f64,
    /// Outputs per source, best first.
    pub n_best: u32,
}

/// One decoded output.
#[napi(object)]
pub struct Seq2SeqHypothesis {
    /// Target ids, the end token last when `finished`.
    pub tokens: Vec<u32>,
    /// The model's log-probability of `tokens`.
    pub log_prob: f64,
    /// The ranking score (the log-probability over Wu et al.'s length penalty).
    pub score: f64,
    /// Whether the output ended with the end token (else it reached `maxLength`).
    pub finished: bool,
    /// `[tokens.length, sourceLength]`: each output step's attention over the source tokens.
    pub attention: Float32Array,
    /// The source's length (the attention's columns).
    pub source_length: u32,
}

/// A decoded output before it becomes JavaScript's.
pub struct Found {
    tokens: Vec<u32>,
    log_prob: f64,
    score: f64,
    finished: bool,
    attention: Vec<f32>,
    source_length: u32,
}

fn found(hyps: Vec<Hypothesis<f32>>, n: usize) -> Vec<Found> {
    hyps.into_iter()
        .map(|h| Found {
            tokens: h.tokens.iter().map(|&t| t as u32).collect(),
            log_prob: h.log_prob,
            score: h.score,
            finished: h.finished,
            attention: h
                .attention
                .rows()
                .into_iter()
                .flat_map(|r| r.iter().take(n).copied().collect::<Vec<_>>())
                .collect(),
            source_length: n as u32,
        })
        .collect()
}

fn hypotheses_to_js(out: Vec<Vec<Found>>) -> Vec<Vec<Seq2SeqHypothesis>> {
    out.into_iter()
        .map(|hyps| {
            hyps.into_iter()
                .map(|f| Seq2SeqHypothesis {
                    tokens: f.tokens,
                    log_prob: f.log_prob,
                    score: f.score,
                    finished: f.finished,
                    attention: Float32Array::new(f.attention),
                    source_length: f.source_length,
                })
                .collect()
        })
        .collect()
}

/// The task of `transduce`: per source, its hypotheses.
pub type TransduceTask = Call<State, Vec<Vec<Found>>, Vec<Vec<Seq2SeqHypothesis>>>;

fn same<T>(v: T) -> T {
    v
}

#[napi]
impl NativeSeq2Seq {
    /// A new model from its configuration's JSON (camelCase: `cell`, `sourceVocab`,
    /// `targetVocab`, `embedding`, `hidden`, `layers`, `bidirectional`, `score`,
    /// `inputFeeding`, `start`, `end`), weights from `seed`.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, config: String, seed: u32) -> Result<Self> {
        contain(|| {
            let config = Seq2SeqConfig::from_json(&config)?;
            let model = Seq2Seq::new(config, u64::from(seed))?;
            Ok(Self::wrap(&env, State { model, optimizer: None, epochs: 0, user: None }))
        })
    }

    /// Loads a file's bytes (see `toSafetensors`), checked strictly.
    #[napi(factory, catch_unwind)]
    pub fn from_safetensors(env: Env, bytes: Uint8Array) -> Result<Self> {
        contain(|| {
            let saved = seq2seq::load(&bytes)?;
            Ok(Self::wrap(
                &env,
                State { model: saved.model, optimizer: saved.optimizer, epochs: saved.epochs, user: saved.user },
            ))
        })
    }

    /// The file's bytes: weights, configuration, epochs, `user` metadata and, when asked and
    /// present, the optimizer's state.
    #[napi(catch_unwind)]
    pub fn to_safetensors(&self, include_optimizer: bool, user: Option<String>) -> Result<Buffer> {
        contain(|| {
            let s = self.shared.held()?;
            let optimizer = if include_optimizer { s.optimizer.as_ref() } else { None };
            Ok(seq2seq::save(&s.model, s.epochs, optimizer, user.as_deref().or(s.user.as_deref()))?.into())
        })
    }

    /// The configuration's JSON.
    #[napi(getter, catch_unwind)]
    pub fn config_json(&self) -> Result<String> {
        contain(|| Ok(self.config.to_json()))
    }

    /// The `user` metadata the file was loaded with, if any.
    #[napi(getter, catch_unwind)]
    pub fn user(&self) -> Result<Option<String>> {
        contain(|| Ok(self.shared.held()?.user.clone()))
    }

    /// Epochs trained.
    #[napi(getter, catch_unwind)]
    pub fn epochs(&self) -> Result<u32> {
        contain(|| Ok(self.shared.held()?.epochs as u32))
    }

    /// The number of scalar parameters.
    #[napi(getter, catch_unwind)]
    pub fn param_count(&self) -> Result<f64> {
        contain(|| Ok(self.shared.held()?.model.param_count() as f64))
    }

    /// Every parameter's name and shape, in the model's order.
    #[napi(catch_unwind)]
    pub fn param_shapes(&self) -> Result<Vec<Seq2SeqParam>> {
        contain(|| {
            Ok(self
                .shared
                .held()?
                .model
                .params()
                .map(|(n, s, _)| Seq2SeqParam { name: n.to_string(), shape: s.iter().map(|&d| d as u32).collect() })
                .collect())
        })
    }

    /// Every parameter's name, shape and values (a copy), in the model's order.
    #[napi(catch_unwind)]
    pub fn params(&self) -> Result<Vec<Seq2SeqParamValues>> {
        contain(|| {
            Ok(self
                .shared
                .held()?
                .model
                .params()
                .map(|(n, s, v)| Seq2SeqParamValues {
                    name: n.to_string(),
                    shape: s.iter().map(|&d| d as u32).collect(),
                    values: Float32Array::new(v.to_vec()),
                })
                .collect())
        })
    }

    /// A decoder stream over sources given as concatenated ids and lengths (the encoder runs
    /// now, on this thread).
    #[napi(catch_unwind)]
    pub fn stream(&self, source_ids: Uint32Array, source_lengths: Uint32Array) -> Result<NativeSeq2SeqStream> {
        contain(|| {
            let sources = sequences("sources", &source_ids, &source_lengths)?;
            let stream = self.shared.held()?.model.stream(&refs(&sources))?;
            Ok(NativeSeq2SeqStream {
                inner: self.shared.inner.clone(),
                busy: self.shared.busy.clone(),
                disposed: self.shared.disposed.clone(),
                stream,
            })
        })
    }

    /// Whether the model holds an optimizer state (after training, or loaded with one).
    #[napi(getter, catch_unwind)]
    pub fn has_optimizer(&self) -> Result<bool> {
        contain(|| Ok(self.shared.held()?.optimizer.is_some()))
    }

    /// Frees the weights now; later calls fail with `GYRE_DISPOSED`.
    #[napi(catch_unwind)]
    pub fn dispose(&self, env: Env) -> Result<()> {
        contain(|| {
            self.shared.held()?.optimizer = None;
            self.shared.dispose(&env)
        })
    }

    /// One epoch of training over pairs given as concatenated ids and lengths (targets
    /// without start and end tokens); resolves to the epoch's mean loss per target token.
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn train_epoch(
        &self,
        source_ids: Uint32Array,
        source_lengths: Uint32Array,
        target_ids: Uint32Array,
        target_lengths: Uint32Array,
        options: Seq2SeqEpochOptions,
    ) -> Result<AsyncTask<Call<State, f64, f64>>> {
        contain(|| {
            let sources = sequences("sources", &source_ids, &source_lengths)?;
            let targets = sequences("targets", &target_ids, &target_lengths)?;
            let opts = EpochOptions {
                batch_size: options.batch_size as usize,
                lr: options.learning_rate,
                clip_norm: options.clip_norm,
                loss: LossOptions { label_smoothing: options.label_smoothing, dropout: options.dropout, seed: 0 },
                seed: u64::from(options.seed),
                epoch: 0,
            };
            let optimizer = options.optimizer;
            let task = self.shared.task(
                move |s: &mut State| {
                    if s.optimizer.is_none() {
                        let config: OptimizerConfig = gyre_core::train::optimizer_from_json(&optimizer)?;
                        let sizes: Vec<usize> = s.model.params().map(|(_, _, v)| v.len()).collect();
                        s.optimizer = Some(Optimizer::new(config, &sizes)?);
                    }
                    let Some(o) = s.optimizer.as_mut() else { return Ok(f64::NAN) };
                    let loss = s.model.train_epoch(
                        o,
                        &refs(&sources),
                        &refs(&targets),
                        &EpochOptions { epoch: s.epochs + 1, ..opts },
                    )?;
                    s.epochs += 1;
                    Ok(loss)
                },
                same,
            )?;
            Ok(AsyncTask::new(task))
        })
    }

    /// The mean teacher-forced cross-entropy per target token of pairs (as `trainEpoch`).
    #[napi(catch_unwind, ts_return_type = "Promise<number>")]
    pub fn loss(
        &self,
        source_ids: Uint32Array,
        source_lengths: Uint32Array,
        target_ids: Uint32Array,
        target_lengths: Uint32Array,
        label_smoothing: f64,
    ) -> Result<AsyncTask<Call<State, f64, f64>>> {
        contain(|| {
            let sources = sequences("sources", &source_ids, &source_lengths)?;
            let targets = sequences("targets", &target_ids, &target_lengths)?;
            let opts = LossOptions { label_smoothing, ..Default::default() };
            let task =
                self.shared.task(move |s: &mut State| s.model.loss(&refs(&sources), &refs(&targets), &opts), same)?;
            Ok(AsyncTask::new(task))
        })
    }

    /// Beam-search decoding of sources (concatenated ids and lengths): per source, up to
    /// `nBest` hypotheses, best first. With `ensemble`, the other models decode with this one
    /// (each token's log-probability the mean of the models'); they are busy until it settles.
    #[napi(catch_unwind, ts_return_type = "Promise<Array<Array<Seq2SeqHypothesis>>>")]
    pub fn transduce(
        &self,
        source_ids: Uint32Array,
        source_lengths: Uint32Array,
        options: Seq2SeqDecodeOptions,
        ensemble: Option<Vec<ClassInstance<'_, NativeSeq2Seq>>>,
    ) -> Result<AsyncTask<TransduceTask>> {
        contain(|| {
            let sources = sequences("sources", &source_ids, &source_lengths)?;
            let opts = DecodeOptions {
                beam_width: options.beam_width as usize,
                max_length: options.max_length as usize,
                length_penalty: options.length_penalty,
                n_best: options.n_best as usize,
            };
            // The other models, each once with its busy flag (this one, and repeats, decode with
            // the state already held): `picks[i]` is `ensemble[i]`'s index among them.
            let mut others: Vec<Arc<Mutex<State>>> = Vec::new();
            let mut flags: Vec<Arc<AtomicBool>> = Vec::new();
            let mut picks: Vec<Option<usize>> = Vec::new();
            for other in ensemble.iter().flatten() {
                if Arc::ptr_eq(&other.shared.inner, &self.shared.inner) {
                    picks.push(None);
                    continue;
                }
                drop(other.shared.held()?);
                match others.iter().position(|o| Arc::ptr_eq(o, &other.shared.inner)) {
                    Some(k) => picks.push(Some(k)),
                    None => {
                        picks.push(Some(others.len()));
                        others.push(other.shared.inner.clone());
                        flags.push(other.shared.busy.clone());
                    }
                }
            }
            let busy = Busy::set(flags);
            let task = self.shared.task(
                move |s: &mut State| {
                    let _busy = busy;
                    let guards: Vec<std::sync::MutexGuard<'_, State>> =
                        others.iter().map(|o| o.lock()).collect::<std::result::Result<_, _>>().map_err(|_| {
                            gyre_core::CoreError::InvalidArgument {
                                what: "ensemble".into(),
                                expected: "models whose lock is sound".into(),
                                got: "a poisoned lock".into(),
                            }
                        })?;
                    let members: Vec<&Seq2Seq<f32>> =
                        picks.iter().map(|p| p.map_or(&s.model, |k| &guards[k].model)).collect();
                    let hyps = s.model.transduce_ensemble(&members, &refs(&sources), &opts)?;
                    Ok(hyps.into_iter().zip(&sources).map(|(h, src)| found(h, src.len())).collect())
                },
                hypotheses_to_js,
            )?;
            Ok(AsyncTask::new(task))
        })
    }
}

/// The busy flags of an ensemble's other models, set while its task is queued or running and
/// cleared when the task's work is dropped (run or not).
struct Busy(Vec<Arc<AtomicBool>>);

impl Busy {
    fn set(flags: Vec<Arc<AtomicBool>>) -> Self {
        flags.iter().for_each(|f| f.store(true, Ordering::SeqCst));
        Busy(flags)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.iter().for_each(|f| f.store(false, Ordering::SeqCst));
    }
}

/// A decoder stream of a [`NativeSeq2Seq`]: the encoder's work on a batch of sources and the
/// decoder's state, advanced a token per row at a time.
#[napi]
pub struct NativeSeq2SeqStream {
    inner: Arc<Mutex<State>>,
    busy: Arc<AtomicBool>,
    disposed: Arc<AtomicBool>,
    stream: seq2seq::Seq2SeqStream<f32>,
}

/// What `NativeSeq2SeqStream.step` returns.
#[napi(object)]
pub struct Seq2SeqStepResult {
    /// `[batch, targetVocab]`: each row's log-probabilities of its next token.
    pub log_probs: Float64Array,
    /// `[batch, time]`: each row's attention over its source (zeros past its length).
    pub attention: Float32Array,
}

#[napi]
impl NativeSeq2SeqStream {
    /// One decoder step: `tokens[i]` (a target id; the start id first) enters row `i`.
    #[napi(catch_unwind)]
    pub fn step(&mut self, tokens: Uint32Array) -> Result<Seq2SeqStepResult> {
        contain(|| {
            if self.disposed.load(Ordering::SeqCst) {
                return Err(BindingError::disposed());
            }
            let busy = || BindingError::busy_with(<State as Native>::BUSY);
            if self.busy.load(Ordering::SeqCst) {
                return Err(busy());
            }
            let s = self.inner.try_lock().map_err(|_| busy())?;
            let tokens: Vec<usize> = tokens.iter().map(|&t| t as usize).collect();
            let (log_probs, attention) = s.model.stream_step(&mut self.stream, &tokens)?;
            Ok(Seq2SeqStepResult {
                log_probs: Float64Array::new(log_probs.iter().copied().collect()),
                attention: Float32Array::new(attention.iter().copied().collect()),
            })
        })
    }

    /// Tokens stepped so far.
    #[napi(getter, catch_unwind)]
    pub fn steps(&self) -> Result<u32> {
        contain(|| Ok(self.stream.steps as u32))
    }

    /// Each source's length.
    #[napi(getter, catch_unwind)]
    pub fn source_lengths(&self) -> Result<Vec<u32>> {
        contain(|| Ok(self.stream.lengths().iter().map(|&l| l as u32).collect()))
    }
}

/// A parameter's name, shape and values.
#[napi(object)]
pub struct Seq2SeqParamValues {
    /// Its name (`encoder.rnn.weight_ih_l0`, …).
    pub name: String,
    /// Its shape.
    pub shape: Vec<u32>,
    /// Its values, row-major.
    pub values: Float32Array,
}

/// A parameter's name and shape.
#[napi(object)]
pub struct Seq2SeqParam {
    /// Its name (`encoder.rnn.weight_ih_l0`, …).
    pub name: String,
    /// Its shape.
    pub shape: Vec<u32>,
}
