//! Training over datasets: learning, determinism across runs and thread counts, the
//! non-finite guard, cancellation, early stopping, truncated BPTT and validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::model::{Activation, InputKind, Inputs, LayerSpec, Merge, Model, ModelSpec, RecurrentLayerSpec};
use gyre_core::optim::{LrSchedule, OptimizerConfig, Schedule};
use gyre_core::random::Rng;
use gyre_core::train::{
    evaluate, fit, optimizer_for, predict, train_batch, Dataset, EarlyStopping, FitConfig, LossKind, Metrics, Observer,
    Progress, Targets,
};
use gyre_core::{CellKind, CoreError};
use ndarray::Array3;

struct Recorder {
    events: Vec<Progress>,
    stop_after: Option<usize>,
    batches: usize,
}

impl Recorder {
    fn new() -> Self {
        Recorder { events: Vec::new(), stop_after: None, batches: 0 }
    }
}

impl Observer for Recorder {
    fn progress(&mut self, event: Progress) {
        if matches!(event, Progress::Batch { .. }) {
            self.batches += 1;
        }
        self.events.push(event);
    }
    fn should_stop(&mut self) -> bool {
        self.stop_after.is_some_and(|n| self.batches >= n)
    }
}

/// Sequences of ±1-ish numbers, variable lengths; class 1 if their sum is positive.
fn sign_task(samples: usize, steps: usize, seed: u64) -> (Array3<f32>, Vec<usize>, Vec<u32>) {
    let mut r = Rng::new(seed);
    let x = Array3::from_shape_simple_fn((samples, steps, 1), || r.range(-1.0, 1.0) as f32);
    let lengths: Vec<usize> = (0..samples).map(|_| 2 + r.below(steps - 1)).collect();
    let y = (0..samples).map(|s| u32::from((0..lengths[s]).map(|t| x[[s, t, 0]]).sum::<f32>() > 0.0)).collect();
    (x, lengths, y)
}

fn classifier(seed: u64, dropout: f64) -> Model<f32> {
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 1 },
        layers: vec![
            LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::LSTM,
                hidden_size: 12,
                num_layers: 2,
                bidirectional: true,
                merge: Merge::Concat,
                return_sequences: false,
                dropout,
                go_backwards: false,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            }),
            LayerSpec::Dense { units: 2, activation: Activation::Softmax },
        ],
    };
    Model::new(config, seed).unwrap()
}

fn config(epochs: usize) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 16,
        shuffle: true,
        seed: 5,
        loss: LossKind::CrossEntropy,
        schedule: Schedule::new(LrSchedule::Constant, 0).unwrap(),
        clip_norm: Some(5.0),
        clip_value: None,
        tbptt_steps: None,
        early_stopping: None,
        metrics: Metrics::default(),
        class_weight: None,
    }
}

fn weights(m: &Model<f32>) -> Vec<Vec<u32>> {
    m.tensors.iter().map(|t| t.data.iter().map(|v| v.to_bits()).collect()).collect()
}

#[test]
fn a_stacked_bidirectional_lstm_learns_to_classify_variable_length_sequences() {
    let (x, lengths, y) = sign_task(256, 10, 1);
    let (vx, vl, vy) = sign_task(64, 10, 2);
    let train = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let val = Dataset {
        inputs: Inputs::Features(vx.view()),
        lengths: Some(&vl),
        targets: Targets::Classes(&vy),
        weights: None,
    };
    let mut model = classifier(3, 0.1);
    let before = evaluate(&model, &val, LossKind::CrossEntropy, 32, Metrics::default()).unwrap();
    let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.01)).unwrap();
    let mut rec = Recorder::new();
    let history = fit(&mut model, &mut opt, &train, Some(&val), &config(25), &mut rec).unwrap();
    assert_eq!(history.epochs.len(), 25);
    assert_eq!(rec.batches, 25 * 16);
    let after = evaluate(&model, &val, LossKind::CrossEntropy, 32, Metrics::default()).unwrap();
    println!("validation loss {:.4} -> {:.4}, accuracy {:?}", before.loss, after.loss, after.accuracy);
    assert!(after.loss < 0.5 * before.loss, "{before:?} -> {after:?}");
    assert!(after.accuracy.unwrap() > 0.9, "{after:?}");
    let Progress::Epoch { validation: Some(v), .. } = &history.epochs[24] else { panic!("no validation") };
    assert!((v.loss - after.loss).abs() < 1e-6);
    let probs = predict(&model, Inputs::Features(vx.view()), Some(&vl), 7).unwrap().output;
    assert_eq!(probs.len(), 64 * 2);
    assert!(probs.chunks(2).all(|p| (p[0] + p[1] - 1.0).abs() < 1e-5));
}

#[test]
fn the_same_seed_gives_bit_identical_weights_on_one_and_two_threads() {
    let (x, lengths, y) = sign_task(96, 8, 4);
    let train = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            // Dropout between the stacked layers, on the layer's input and its hidden state; zoneout.
            let mut spec = classifier(7, 0.2).config().clone();
            if let LayerSpec::Recurrent(r) = &mut spec.layers[0] {
                (r.input_dropout, r.recurrent_dropout, r.zoneout) = (0.3, 0.25, 0.1);
            }
            let mut model = Model::new(spec, 7).unwrap();
            let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.01)).unwrap();
            fit(&mut model, &mut opt, &train, None, &config(3), &mut Recorder::new()).unwrap();
            weights(&model)
        })
    };
    let one = run(1);
    assert_eq!(one, run(1), "run to run");
    assert_eq!(one, run(2), "1 vs 2 threads");
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_batch_and_keeps_the_last_good_weights() {
    let config_mse =
        |epochs| FitConfig { loss: LossKind::MeanSquaredError, shuffle: false, batch_size: 4, ..config(epochs) };
    let model_cfg = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 1 },
        layers: vec![
            LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::gru(true),
                hidden_size: 4,
                num_layers: 1,
                bidirectional: false,
                merge: Merge::Concat,
                return_sequences: false,
                dropout: 0.0,
                go_backwards: false,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            }),
            LayerSpec::Dense { units: 1, activation: Activation::Linear },
        ],
    };
    let (x, lengths, _) = sign_task(12, 5, 9);
    let mut y: Vec<f32> = (0..12).map(|i| i as f32 / 12.0).collect();
    y[9] = f32::NAN; // the third batch of four
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Values(&y),
        weights: None,
    };
    let mut model = Model::<f32>::new(model_cfg.clone(), 1).unwrap();
    let mut opt = optimizer_for(&model, OptimizerConfig::sgd(0.1)).unwrap();
    let err = fit(&mut model, &mut opt, &data, None, &config_mse(1), &mut Recorder::new()).unwrap_err();
    assert_eq!(err.code().as_str(), "GYRE_NON_FINITE");
    assert!(matches!(err, CoreError::NonFinite { epoch: 1, batch: 3, .. }), "{err}");
    assert!(err.to_string().contains("epoch 1, batch 3"), "{err}");

    // The same two good batches alone give the same weights.
    let first8 = x.slice(ndarray::s![..8, .., ..]).to_owned();
    let good = Dataset {
        inputs: Inputs::Features(first8.view()),
        lengths: Some(&lengths[..8]),
        targets: Targets::Values(&y[..8]),
        weights: None,
    };
    let mut reference = Model::<f32>::new(model_cfg, 1).unwrap();
    let mut opt2 = optimizer_for(&reference, OptimizerConfig::sgd(0.1)).unwrap();
    fit(&mut reference, &mut opt2, &good, None, &config_mse(1), &mut Recorder::new()).unwrap();
    assert_eq!(weights(&model), weights(&reference));
}

#[test]
fn stopping_between_batches_leaves_the_weights_of_the_last_completed_batch() {
    let (x, lengths, y) = sign_task(64, 6, 11);
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let cfg = FitConfig { shuffle: false, ..config(5) };
    let mut model = classifier(2, 0.0);
    let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.01)).unwrap();
    let mut rec = Recorder::new();
    rec.stop_after = Some(3);
    let history = fit(&mut model, &mut opt, &data, None, &cfg, &mut rec).unwrap();
    assert!(history.aborted);
    assert_eq!(rec.batches, 3);
    let first48 = x.slice(ndarray::s![..48, .., ..]).to_owned();
    let part = Dataset {
        inputs: Inputs::Features(first48.view()),
        lengths: Some(&lengths[..48]),
        targets: Targets::Classes(&y[..48]),
        weights: None,
    };
    let mut reference = classifier(2, 0.0);
    let mut opt2 = optimizer_for(&reference, OptimizerConfig::adam(0.01)).unwrap();
    fit(&mut reference, &mut opt2, &part, None, &FitConfig { epochs: 1, ..cfg }, &mut Recorder::new()).unwrap();
    assert_eq!(weights(&model), weights(&reference));
}

#[test]
fn early_stopping_waits_for_patience_and_restores_the_best_weights() {
    let (x, lengths, y) = sign_task(32, 6, 12);
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    // A min_delta no epoch can beat: the first epoch is the best, then patience runs out.
    let es = EarlyStopping { patience: 2, min_delta: 1e9, restore_best: true };
    let cfg = FitConfig { early_stopping: Some(es), shuffle: false, ..config(10) };
    let mut model = classifier(4, 0.0);
    let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.05)).unwrap();
    let history = fit(&mut model, &mut opt, &data, Some(&data), &cfg, &mut Recorder::new()).unwrap();
    assert!(history.stopped_early);
    assert_eq!(history.epochs.len(), 3);
    let mut reference = classifier(4, 0.0);
    let mut opt2 = optimizer_for(&reference, OptimizerConfig::adam(0.05)).unwrap();
    fit(
        &mut reference,
        &mut opt2,
        &data,
        None,
        &FitConfig { early_stopping: None, epochs: 1, ..cfg },
        &mut Recorder::new(),
    )
    .unwrap();
    assert_eq!(weights(&model), weights(&reference), "weights of epoch 1");
}

fn running_sum_model(seed: u64) -> Model<f32> {
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 1 },
        layers: vec![
            LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::gru(true),
                hidden_size: 16,
                num_layers: 1,
                bidirectional: false,
                merge: Merge::Concat,
                return_sequences: true,
                dropout: 0.0,
                go_backwards: false,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            }),
            LayerSpec::Dense { units: 1, activation: Activation::Linear },
        ],
    };
    Model::new(config, seed).unwrap()
}

#[test]
fn truncated_bptt_carries_state_across_chunks_and_equals_full_bptt_with_one_chunk() {
    let (samples, steps) = (64, 12);
    let (x, lengths, _) = sign_task(samples, steps, 13);
    // Target: running sum of the input (needs the state carried across chunks).
    let mut y = vec![0f32; samples * steps];
    for s in 0..samples {
        let mut acc = 0.0;
        for t in 0..steps {
            acc += x[[s, t, 0]];
            y[s * steps + t] = acc * 0.3;
        }
    }
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Values(&y),
        weights: None,
    };
    let base = FitConfig { loss: LossKind::MeanSquaredError, ..config(3) };
    let train = |tbptt: Option<usize>, epochs: usize| {
        let mut model = running_sum_model(8);
        let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.01)).unwrap();
        let cfg = FitConfig { tbptt_steps: tbptt, epochs, ..base.clone() };
        fit(&mut model, &mut opt, &data, None, &cfg, &mut Recorder::new()).unwrap();
        model
    };
    assert_eq!(weights(&train(None, 3)), weights(&train(Some(steps), 3)), "one chunk is plain BPTT");
    let before =
        evaluate(&running_sum_model(8), &data, LossKind::MeanSquaredError, 64, Metrics::default()).unwrap().loss;
    let after = evaluate(&train(Some(4), 30), &data, LossKind::MeanSquaredError, 64, Metrics::default()).unwrap().loss;
    println!("tbptt(4) running sum: mse {before:.4} -> {after:.4}");
    assert!(after < 0.2 * before, "{before} -> {after}");
}

#[test]
fn bad_datasets_and_options_are_errors_naming_them() {
    let (x, lengths, y) = sign_task(8, 5, 14);
    let model = classifier(1, 0.0);
    let run = |data: &Dataset<f32>, cfg: &FitConfig| {
        let mut m = model.clone();
        let mut opt = optimizer_for(&m, OptimizerConfig::adam(0.01)).unwrap();
        fit(&mut m, &mut opt, data, None, cfg, &mut Recorder::new()).unwrap_err().to_string()
    };
    let ok = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let short = Dataset { targets: Targets::Classes(&y[..7]), ..ok };
    assert!(run(&short, &config(1)).contains("train y"), "{}", run(&short, &config(1)));
    let mut bad_y = y.clone();
    bad_y[3] = 2;
    let out_of_range = Dataset { targets: Targets::Classes(&bad_y), ..ok };
    let msg = run(&out_of_range, &config(1));
    assert!(msg.contains("y[3]") && msg.contains("below 2") && msg.contains("got 2"), "{msg}");
    let zero_len = [0usize, 3, 3, 3, 3, 3, 3, 3];
    let msg = run(&Dataset { lengths: Some(&zero_len), ..ok }, &config(1));
    assert!(msg.contains("lengths[0]"), "{msg}");
    let msg = run(&ok, &FitConfig { batch_size: 0, ..config(1) });
    assert!(msg.contains("batchSize"), "{msg}");
    let msg = run(&ok, &FitConfig { clip_norm: Some(f64::NAN), ..config(1) });
    assert!(msg.contains("clipNorm"), "{msg}");
    let msg = run(&ok, &FitConfig { tbptt_steps: Some(3), ..config(1) });
    assert!(msg.contains("tbpttSteps"), "{msg}");
    let vals = vec![0f32; 16];
    let msg = run(&Dataset { targets: Targets::Values(&vals), ..ok }, &config(1));
    assert!(msg.contains("class ids"), "{msg}");
    assert!(OptimizerConfig::adam(f64::INFINITY).validate().is_err());
}

/// Keeps the model and optimizer `epoch_end` shows it, and the events in the order they came.
struct Snapshots {
    taken: Vec<(Model<f32>, gyre_core::optim::Optimizer<f32>)>,
    order: Vec<&'static str>,
}

impl Observer for Snapshots {
    fn progress(&mut self, event: Progress) {
        if matches!(event, Progress::Epoch { .. }) {
            self.order.push("epoch event");
        }
    }
    fn epoch_end(&mut self, model: &Model<f32>, optimizer: &gyre_core::optim::Optimizer<f32>) {
        self.order.push("epoch_end");
        self.taken.push((model.clone(), optimizer.clone()));
    }
}

#[test]
fn epoch_end_shows_each_epochs_model_and_optimizer_and_training_resumes_from_them_exactly() {
    let (x, lengths, y) = sign_task(64, 6, 15);
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let cfg = FitConfig { schedule: Schedule::new(LrSchedule::Exponential { gamma: 0.5 }, 1).unwrap(), ..config(3) };
    let mut whole = classifier(5, 0.2);
    let mut opt = optimizer_for(&whole, OptimizerConfig::adamw(0.01)).unwrap();
    let mut snaps = Snapshots { taken: Vec::new(), order: Vec::new() };
    fit(&mut whole, &mut opt, &data, None, &cfg, &mut snaps).unwrap();
    assert_eq!(snaps.order, ["epoch_end", "epoch event"].repeat(3));
    assert_eq!(snaps.taken.iter().map(|(m, _)| m.trained_epochs).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(weights(&snaps.taken[2].0), weights(&whole));

    // Epoch 1's snapshot, as after a save and load, trains on to the uninterrupted result.
    let (mut resumed, opt1) = snaps.taken.swap_remove(0);
    let mut opt2 = optimizer_for(&resumed, OptimizerConfig::adamw(0.01)).unwrap();
    opt2.load_state(opt1.state()).unwrap();
    fit(&mut resumed, &mut opt2, &data, None, &FitConfig { epochs: 2, ..cfg }, &mut Recorder::new()).unwrap();
    assert_eq!(weights(&resumed), weights(&whole));
}

#[test]
fn training_resumed_in_a_second_call_matches_uninterrupted_training() {
    let (x, lengths, y) = sign_task(64, 6, 15);
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let cfg = FitConfig { schedule: Schedule::new(LrSchedule::Exponential { gamma: 0.5 }, 1).unwrap(), ..config(3) };
    let mut whole = classifier(5, 0.2);
    let mut opt = optimizer_for(&whole, OptimizerConfig::adamw(0.01)).unwrap();
    fit(&mut whole, &mut opt, &data, None, &cfg, &mut Recorder::new()).unwrap();

    let mut resumed = classifier(5, 0.2);
    let mut opt1 = optimizer_for(&resumed, OptimizerConfig::adamw(0.01)).unwrap();
    fit(&mut resumed, &mut opt1, &data, None, &FitConfig { epochs: 1, ..cfg.clone() }, &mut Recorder::new()).unwrap();
    // As after a save and load: a fresh optimizer given the saved state.
    let mut opt2 = optimizer_for(&resumed, OptimizerConfig::adamw(0.01)).unwrap();
    opt2.load_state(opt1.state()).unwrap();
    let mut rec = Recorder::new();
    fit(&mut resumed, &mut opt2, &data, None, &FitConfig { epochs: 2, ..cfg }, &mut rec).unwrap();
    assert_eq!(resumed.trained_epochs, 3);
    assert!(matches!(rec.events.last(), Some(Progress::Epoch { epoch: 3, .. })));
    assert_eq!(weights(&resumed), weights(&whole));
}

#[test]
fn train_batch_on_a_whole_dataset_equals_one_unshuffled_full_batch_epoch_of_fit() {
    let (samples, steps) = (24, 10);
    let (x, lengths, _) = sign_task(samples, steps, 21);
    let y: Vec<f32> = (0..samples * steps).map(|i| x[[i / steps, i % steps, 0]] * 0.5).collect();
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Values(&y),
        weights: None,
    };
    for tbptt in [None, Some(3)] {
        let cfg = FitConfig {
            loss: LossKind::MeanSquaredError,
            batch_size: samples,
            shuffle: false,
            tbptt_steps: tbptt,
            ..config(1)
        };
        let mut fitted = running_sum_model(4);
        let mut opt = optimizer_for(&fitted, OptimizerConfig::adam(0.01)).unwrap();
        let history = fit(&mut fitted, &mut opt, &data, None, &cfg, &mut Recorder::new()).unwrap();
        let mut stepped = running_sum_model(4);
        let mut opt2 = optimizer_for(&stepped, OptimizerConfig::adam(0.01)).unwrap();
        let out = train_batch(&mut stepped, &mut opt2, &data, &cfg, 1, 1).unwrap();
        assert_eq!(weights(&fitted), weights(&stepped), "tbptt {tbptt:?}");
        let Progress::Epoch { loss, .. } = history.epochs[0] else { panic!("an epoch event") };
        assert!((out.loss - loss).abs() < 1e-12, "{} vs {loss}", out.loss);
        assert_eq!(out.count, lengths.iter().sum::<usize>());
        assert_eq!(opt2.step_count(), opt.step_count());
    }
    // Errors name the argument and leave the weights alone.
    let mut model = running_sum_model(4);
    let before = weights(&model);
    let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.01)).unwrap();
    let cfg = FitConfig { loss: LossKind::MeanSquaredError, ..config(1) };
    let err = train_batch(&mut model, &mut opt, &data, &cfg, 0, 1).unwrap_err();
    assert!(err.to_string().contains("epoch"), "{err}");
    let short = Dataset { targets: Targets::Values(&y[..10]), ..data };
    let err = train_batch(&mut model, &mut opt, &short, &cfg, 1, 1).unwrap_err();
    assert!(matches!(err, CoreError::ShapeMismatch { .. }), "{err}");
    assert_eq!(weights(&model), before);
}

/// A frozen layer (`trainable: false`) keeps its exact values through training and has no
/// optimizer state, in memory or in the file; the model saves, loads and trains on exactly.
#[test]
fn a_frozen_layer_keeps_its_values_and_has_no_optimizer_state() {
    let (x, lengths, y) = sign_task(64, 8, 9);
    let train = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: None,
    };
    let build = |frozen: Vec<usize>| {
        let config = ModelSpec {
            mask_value: None,
            frozen,
            input: InputKind::Features { size: 1 },
            layers: vec![
                LayerSpec::Dense { units: 4, activation: Activation::Tanh },
                LayerSpec::Recurrent(RecurrentLayerSpec {
                    cell: CellKind::gru(true),
                    hidden_size: 6,
                    num_layers: 1,
                    bidirectional: false,
                    merge: Merge::Concat,
                    return_sequences: false,
                    dropout: 0.0,
                    go_backwards: false,
                    input_dropout: 0.0,
                    recurrent_dropout: 0.0,
                    zoneout: 0.0,
                }),
                LayerSpec::Dense { units: 2, activation: Activation::Softmax },
            ],
        };
        Model::<f32>::new(config, 11).unwrap()
    };
    let mut model = build(vec![0, 2]);
    let before = weights(&model);
    let mut opt = optimizer_for(&model, OptimizerConfig::adam(0.05)).unwrap();
    assert_eq!(opt.sizes(), &[0, 0, 18 * 4, 18 * 6, 18, 18, 0, 0]);
    fit(&mut model, &mut opt, &train, None, &config(3), &mut Recorder::new()).unwrap();
    let after = weights(&model);
    for (i, t) in model.tensors.iter().enumerate() {
        assert_eq!(t.trainable, !matches!(i, 0 | 1 | 6 | 7), "{}", t.name);
        assert_eq!(before[i] == after[i], !t.trainable, "{} changed: {}", t.name, before[i] != after[i]);
    }
    // Saved with its optimizer: no buffers for the frozen tensors; loads and trains on.
    let bytes = gyre_core::io::model_file::save(&model, Some(&opt), None).unwrap();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).to_string();
    assert!(text.contains("optimizer/1.weight_ih_l0/exp_avg") && !text.contains("optimizer/0.weight"), "{text}");
    assert!(text.contains(r#"\"trainable\":false"#), "{text}");
    let saved = gyre_core::io::model_file::load(&bytes).unwrap();
    let (mut again, mut opt2) = (saved.model, saved.optimizer.unwrap());
    assert_eq!(weights(&again), after);
    assert_eq!(again.config().frozen, vec![0, 2]);
    fit(&mut again, &mut opt2, &train, None, &config(1), &mut Recorder::new()).unwrap();
    fit(&mut model, &mut opt, &train, None, &config(1), &mut Recorder::new()).unwrap();
    assert_eq!(weights(&again), weights(&model), "resumes exactly");
    assert_eq!(weights(&again)[0], before[0]);
    // With nothing frozen, the same training moves every tensor.
    let mut free = build(vec![]);
    let mut opt3 = optimizer_for(&free, OptimizerConfig::adam(0.05)).unwrap();
    fit(&mut free, &mut opt3, &train, None, &config(1), &mut Recorder::new()).unwrap();
    assert!(weights(&free).iter().zip(&before).all(|(a, b)| a != b));
}

#[test]
fn evaluate_metrics_equal_those_counted_by_hand_from_predict_in_any_batching() {
    let (x, lengths, _) = sign_task(40, 6, 21);
    let mut r = Rng::new(4);
    let classes: Vec<u32> = (0..40).map(|_| r.below(5) as u32).collect();
    let mut spec = running_sum_model(1).config().clone();
    if let LayerSpec::Recurrent(l) = &mut spec.layers[0] {
        l.return_sequences = false;
    }
    spec.layers[1] = LayerSpec::Dense { units: 5, activation: Activation::Softmax };
    let model = Model::new(spec, 9).unwrap();
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&classes),
        weights: None,
    };
    let probs = predict(&model, Inputs::Features(x.view()), Some(&lengths), 64).unwrap().output;
    let (mut top2, mut correct, mut confusion) = (0, 0, vec![0u64; 25]);
    for (s, &t) in classes.iter().enumerate() {
        let row = &probs[s * 5..(s + 1) * 5];
        let t = t as usize;
        let larger = row.iter().filter(|&&p| p > row[t]).count();
        top2 += usize::from(larger < 2);
        let best = (0..5).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        correct += usize::from(best == t);
        confusion[t * 5 + best] += 1;
    }
    let metrics = Metrics { top_k: Some(2), confusion: true };
    for batch in [3, 16, 64] {
        let e = evaluate(&model, &data, LossKind::CrossEntropy, batch, metrics).unwrap();
        assert_eq!(e.accuracy, Some(correct as f64 / 40.0));
        assert_eq!(e.top_k_accuracy, Some(top2 as f64 / 40.0));
        assert_eq!(e.confusion.as_deref(), Some(confusion.as_slice()));
        assert_eq!((e.mae, e.rmse), (None, None));
    }
    assert!(top2 > correct, "top-2 must count more rows than top-1 here");
    let all = evaluate(&model, &data, LossKind::CrossEntropy, 8, Metrics { top_k: Some(5), confusion: false }).unwrap();
    assert_eq!((all.top_k_accuracy, all.confusion), (Some(1.0), None));

    // The squared error: MAE and RMSE over every real step's output, padded steps left out.
    let model = running_sum_model(2);
    let y: Vec<f32> = (0..40 * 6).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Values(&y),
        weights: None,
    };
    let out = predict(&model, Inputs::Features(x.view()), Some(&lengths), 64).unwrap().output;
    let (mut abs, mut sq, mut n) = (0f64, 0f64, 0usize);
    for s in 0..40 {
        for t in 0..lengths[s] {
            let d = f64::from(out[s * 6 + t]) - f64::from(y[s * 6 + t]);
            abs += d.abs();
            sq += d * d;
            n += 1;
        }
    }
    for batch in [5, 64] {
        let e = evaluate(&model, &data, LossKind::MeanSquaredError, batch, Metrics::default()).unwrap();
        assert!((e.mae.unwrap() - abs / n as f64).abs() < 1e-12, "{e:?} {} {}", abs / n as f64, (sq / n as f64).sqrt());
        assert!((e.rmse.unwrap() - (sq / n as f64).sqrt()).abs() < 1e-12, "{e:?}");
        assert!((e.loss - sq / n as f64).abs() < 1e-6, "{e:?}");
        assert_eq!((e.accuracy, e.top_k_accuracy, e.confusion), (None, None, None));
    }
    let err = evaluate(&model, &data, LossKind::MeanSquaredError, 5, Metrics { top_k: Some(0), confusion: false });
    assert!(err.unwrap_err().to_string().contains("metrics.topK"));
}

/// The mean loss of each sample alone, at the model's weights.
fn per_sample_losses(model: &Model<f32>, x: &Array3<f32>, lengths: &[usize], y: &[u32]) -> Vec<f64> {
    (0..y.len())
        .map(|s| {
            let xs = x.slice(ndarray::s![s..s + 1, .., ..]).to_owned();
            let d = Dataset {
                inputs: Inputs::Features(xs.view()),
                lengths: Some(&lengths[s..s + 1]),
                targets: Targets::Classes(&y[s..s + 1]),
                weights: None,
            };
            evaluate(model, &d, LossKind::CrossEntropy, 1, Metrics::default()).unwrap().loss
        })
        .collect()
}

#[test]
fn sample_and_class_weights_give_the_weighted_mean_loss_counted_by_hand() {
    let (x, lengths, y) = sign_task(24, 6, 31);
    let model = classifier(8, 0.0);
    let l = per_sample_losses(&model, &x, &lengths, &y);
    let sw: Vec<f32> = (0..24).map(|s| [1.0, 0.5, 2.0, 0.0][s % 4]).collect();
    let cw = [0.25, 3.0];
    let hand = |w: &dyn Fn(usize) -> f64| {
        let (num, den) = (0..24).fold((0.0, 0.0), |(n, d), s| (n + w(s) * l[s], d + w(s)));
        num / den
    };
    // evaluate: the sample weights (class weights are for training only).
    let data = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: Some(&sw),
    };
    for batch in [5, 64] {
        let e = evaluate(&model, &data, LossKind::CrossEntropy, batch, Metrics::default()).unwrap();
        assert!((e.loss - hand(&|s| f64::from(sw[s]))).abs() < 1e-6, "{} vs {}", e.loss, hand(&|s| f64::from(sw[s])));
        assert!((e.weight - sw.iter().map(|&w| f64::from(w)).sum::<f64>()).abs() < 1e-9);
    }
    // Training: the epoch's loss (one batch of all samples, taken before its update) is
    // Σ cw[y]·sw·l / Σ cw[y]·sw.
    let cfg = FitConfig { batch_size: 64, shuffle: false, class_weight: Some(cw.to_vec()), ..config(1) };
    let mut m = model.clone();
    let mut opt = optimizer_for(&m, OptimizerConfig::sgd(0.1)).unwrap();
    let h = fit(&mut m, &mut opt, &data, None, &cfg, &mut Recorder::new()).unwrap();
    let Progress::Epoch { loss, .. } = h.epochs[0] else { panic!("no epoch") };
    let want = hand(&|s| cw[y[s] as usize] * f64::from(sw[s]));
    assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");

    // Equal class weights change nothing but rounding (the mean is normalized).
    let run = |class_weight: Option<Vec<f64>>| {
        let mut m = model.clone();
        let mut opt = optimizer_for(&m, OptimizerConfig::sgd(0.5)).unwrap();
        let plain = Dataset { weights: None, ..data };
        fit(&mut m, &mut opt, &plain, None, &FitConfig { class_weight, ..cfg.clone() }, &mut Recorder::new()).unwrap();
        m.tensors.iter().flat_map(|t| t.data.clone()).collect::<Vec<f32>>()
    };
    let (a, b) = (run(None), run(Some(vec![3.0, 3.0])));
    assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-6));
}

#[test]
fn a_sample_of_weight_two_trains_as_the_sample_twice_and_weight_zero_as_absent() {
    let (x, lengths, y) = sign_task(12, 5, 33);
    let mut sw = vec![1f32; 12];
    sw[0] = 2.0;
    sw[5] = 0.0;
    // The same data with sample 0 repeated and sample 5 left out.
    let keep: Vec<usize> = std::iter::once(0).chain((0..12).filter(|&s| s != 5)).collect();
    let x2 = x.select(ndarray::Axis(0), &keep);
    let (l2, y2): (Vec<usize>, Vec<u32>) = keep.iter().map(|&s| (lengths[s], y[s])).unzip();
    let weighted = Dataset {
        inputs: Inputs::Features(x.view()),
        lengths: Some(&lengths),
        targets: Targets::Classes(&y),
        weights: Some(&sw),
    };
    let repeated = Dataset {
        inputs: Inputs::Features(x2.view()),
        lengths: Some(&l2),
        targets: Targets::Classes(&y2),
        weights: None,
    };
    let cfg = FitConfig { batch_size: 64, shuffle: false, epochs: 3, ..config(3) };
    let train = |d: &Dataset<f32>| {
        let mut m = classifier(4, 0.0);
        let mut opt = optimizer_for(&m, OptimizerConfig::adam(0.01)).unwrap();
        let h = fit(&mut m, &mut opt, d, None, &cfg, &mut Recorder::new()).unwrap();
        (m.tensors.iter().flat_map(|t| t.data.clone()).collect::<Vec<f32>>(), h)
    };
    let ((a, ha), (b, hb)) = (train(&weighted), train(&repeated));
    let worst = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-5, "weights differ by {worst}");
    for (ea, eb) in ha.epochs.iter().zip(&hb.epochs) {
        let (Progress::Epoch { loss: la, .. }, Progress::Epoch { loss: lb, .. }) = (ea, eb) else { panic!() };
        assert!((la - lb).abs() < 1e-5, "{la} vs {lb}");
    }
    // With truncated BPTT too (the weights follow each chunk's sequences): weights of 1 are no weights, bit for bit.
    let (xs, ls, _) = sign_task(16, 8, 35);
    let mut target = vec![0f32; 16 * 8];
    for (s, v) in target.iter_mut().enumerate() {
        *v = xs[[s / 8, s % 8, 0]] * 0.5;
    }
    let ones = vec![1f32; 16];
    let run = |sample_weights: Option<&[f32]>| {
        let d = Dataset {
            inputs: Inputs::Features(xs.view()),
            lengths: Some(&ls),
            targets: Targets::Values(&target),
            weights: sample_weights,
        };
        let mut m = running_sum_model(3);
        let mut opt = optimizer_for(&m, OptimizerConfig::adam(0.01)).unwrap();
        let c = FitConfig { loss: LossKind::MeanSquaredError, tbptt_steps: Some(3), ..config(2) };
        fit(&mut m, &mut opt, &d, None, &c, &mut Recorder::new()).unwrap();
        weights(&m)
    };
    assert_eq!(run(Some(&ones)), run(None));
}
