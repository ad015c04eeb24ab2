//! The sequential model in f64: finite-difference gradient checks through embeddings, stacked
//! and bidirectional recurrent layers (both merges, with dropout), dense layers and their
//! activations, on variable-length batches; and a padded batch against each sequence alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::model::{Activation, InputKind, Inputs, LayerSpec, Merge, Model, ModelSpec, RecurrentLayerSpec};
use gyre_core::random::Rng;
use gyre_core::{CellKind, Nonlinearity};
use ndarray::{Array2, Array3};

const CELLS: [CellKind; 5] = [
    CellKind::Rnn(Nonlinearity::Tanh),
    CellKind::Rnn(Nonlinearity::Relu),
    CellKind::LSTM,
    CellKind::gru(true),
    CellKind::gru(false),
];

fn recurrent(cell: CellKind, merge: Merge, return_sequences: bool, dropout: f64) -> LayerSpec {
    LayerSpec::Recurrent(RecurrentLayerSpec {
        cell,
        hidden_size: 3,
        num_layers: 2,
        bidirectional: true,
        merge,
        return_sequences,
        dropout,
        go_backwards: false,
        input_dropout: 0.0,
        recurrent_dropout: 0.0,
        zoneout: 0.0,
    })
}

/// `L = Σ output ⊙ weights` over the unpacked output, with the same dropout masks every time.
fn loss(model: &Model<f64>, x: Inputs<f64>, lengths: &[usize], g: &[f64], seed: u64) -> f64 {
    let batch = model.pack(x, Some(lengths)).unwrap();
    let trace = model.forward(batch, true, &mut Rng::new(seed), None).unwrap();
    let out = model.unpack(&trace.batch, trace.output.view(), trace.sequence);
    out.iter().zip(g).map(|(a, b)| a * b).sum()
}

/// Largest |analytic − numeric| over every parameter element; asserts atol 1e-6 + rtol 1e-4.
fn gradcheck(model: &mut Model<f64>, x: Inputs<f64>, lengths: &[usize], seed: u64) -> f64 {
    let batch = model.pack(x, Some(lengths)).unwrap();
    let trace = model.forward(batch, true, &mut Rng::new(seed), None).unwrap();
    let width = trace.output.ncols();
    let n_out = model.unpack(&trace.batch, trace.output.view(), trace.sequence).len();
    let mut r = Rng::new(seed + 1);
    let g: Vec<f64> = (0..n_out).map(|_| r.range(-1.0, 1.0)).collect();
    // The gradient with respect to the packed output rows: pack `g` like the output.
    let packed = model.pack_rows(&trace.batch, &g, width, trace.sequence);
    let d = Array2::from_shape_vec((trace.output.nrows(), width), packed).unwrap();
    let grads = model.backward(trace, d, false).unwrap();
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    for (ti, grad) in grads.iter().enumerate() {
        for (k, &analytic) in grad.iter().enumerate() {
            let orig = model.tensors[ti].data[k];
            model.tensors[ti].data[k] = orig + eps;
            let up = loss(model, x, lengths, &g, seed);
            model.tensors[ti].data[k] = orig - eps;
            let down = loss(model, x, lengths, &g, seed);
            model.tensors[ti].data[k] = orig;
            let numeric = (up - down) / (2.0 * eps);
            let err = (analytic - numeric).abs();
            let name = &model.tensors[ti].name;
            assert!(err <= 1e-6 + 1e-4 * numeric.abs(), "{name}[{k}]: analytic {analytic}, numeric {numeric}");
            worst = worst.max(err);
        }
    }
    worst
}

fn features(b: usize, t: usize, i: usize, seed: u64) -> Array3<f64> {
    let mut r = Rng::new(seed);
    Array3::from_shape_simple_fn((b, t, i), || r.range(-1.0, 1.0))
}

#[test]
fn stacked_bidirectional_layers_with_variable_lengths_match_finite_differences() {
    let lengths = [3, 5, 1, 5];
    let x = features(4, 5, 2, 3);
    for (k, cell) in CELLS.into_iter().enumerate() {
        let mut worst: f64 = 0.0;
        for (merge, seq, act) in [
            (Merge::Concat, true, Activation::Tanh),
            (Merge::Sum, false, Activation::Softmax),
            (Merge::Sum, true, Activation::Sigmoid),
        ] {
            let config = ModelSpec {
                mask_value: None,
                frozen: vec![],
                input: InputKind::Features { size: 2 },
                layers: vec![recurrent(cell, merge, seq, 0.3), LayerSpec::Dense { units: 3, activation: act }],
            };
            let mut model = Model::<f64>::new(config, 10 + k as u64).unwrap();
            worst = worst.max(gradcheck(&mut model, Inputs::Features(x.view()), &lengths, 5));
        }
        println!("model gradcheck {cell:?}: largest error {worst:.3e}");
    }
}

/// A `go_backwards` layer (its outputs reversed in time within each sequence's length) under
/// another recurrent layer, on a variable-length batch: every gradient by finite differences.
#[test]
fn go_backwards_layers_match_finite_differences() {
    let lengths = [3, 5, 1, 4];
    let x = features(4, 5, 2, 13);
    for (k, cell) in CELLS.into_iter().enumerate() {
        for seq in [true, false] {
            let backwards = LayerSpec::Recurrent(RecurrentLayerSpec {
                cell,
                hidden_size: 3,
                num_layers: 1,
                bidirectional: false,
                merge: Merge::Concat,
                return_sequences: true,
                dropout: 0.0,
                go_backwards: true,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            });
            let top = LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::gru(true),
                hidden_size: 2,
                num_layers: 1,
                bidirectional: false,
                merge: Merge::Concat,
                return_sequences: seq,
                dropout: 0.0,
                go_backwards: !seq,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            });
            let config = ModelSpec {
                mask_value: None,
                frozen: vec![],
                input: InputKind::Features { size: 2 },
                layers: vec![backwards, top, LayerSpec::Dense { units: 2, activation: Activation::Tanh }],
            };
            let mut model = Model::<f64>::new(config, 30 + k as u64).unwrap();
            gradcheck(&mut model, Inputs::Features(x.view()), &lengths, 7);
        }
    }
}

/// A `go_backwards` layer computes, for each sequence alone, the forward layer over the
/// sequence reversed, its outputs in the reversed order.
#[test]
fn go_backwards_is_the_layer_over_the_reversed_sequence() {
    let layer = |go_backwards: bool| {
        LayerSpec::Recurrent(RecurrentLayerSpec {
            cell: CellKind::LSTM,
            hidden_size: 3,
            num_layers: 1,
            bidirectional: false,
            merge: Merge::Concat,
            return_sequences: true,
            dropout: 0.0,
            input_dropout: 0.0,
            recurrent_dropout: 0.0,
            zoneout: 0.0,
            go_backwards,
        })
    };
    let spec = |go_backwards| ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 2 },
        layers: vec![layer(go_backwards)],
    };
    let (back, fwd) = (Model::<f64>::new(spec(true), 3).unwrap(), Model::<f64>::new(spec(false), 3).unwrap());
    let lengths = [4usize, 2, 5];
    let x = features(3, 5, 2, 17);
    let out = |m: &Model<f64>, x: &Array3<f64>, lengths: &[usize]| {
        let batch = m.pack(Inputs::Features(x.view()), Some(lengths)).unwrap();
        let trace = m.forward(batch, false, &mut Rng::new(1), None).unwrap();
        m.unpack(&trace.batch, trace.output.view(), trace.sequence)
    };
    let got = out(&back, &x, &lengths);
    for (b, &len) in lengths.iter().enumerate() {
        let mut rev = Array3::zeros((1, len, 2));
        for t in 0..len {
            for f in 0..2 {
                rev[[0, t, f]] = x[[b, len - 1 - t, f]];
            }
        }
        let want = out(&fwd, &rev, &[len]);
        for t in 0..5 {
            for u in 0..3 {
                let g = got[(b * 5 + t) * 3 + u];
                if t < len {
                    assert!((g - want[t * 3 + u]).abs() < 1e-12, "sequence {b} step {t}");
                } else {
                    assert_eq!(g, 0.0, "padding");
                }
            }
        }
    }
    let bad = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 2 },
        layers: vec![LayerSpec::Recurrent(RecurrentLayerSpec {
            bidirectional: true,
            ..match layer(true) {
                LayerSpec::Recurrent(r) => r,
                _ => unreachable!(),
            }
        })],
    };
    assert!(Model::<f64>::new(bad, 0).unwrap_err().to_string().contains("layers[0].goBackwards"));
    assert!(back.stream_state(1).unwrap_err().to_string().contains("layers[0].goBackwards"));
}

#[test]
fn embedding_recurrent_and_dense_stack_matches_finite_differences() {
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Tokens { vocab_size: 7 },
        layers: vec![
            LayerSpec::Embedding { dim: 3 },
            recurrent(CellKind::LSTM, Merge::Concat, true, 0.0),
            LayerSpec::Dense { units: 4, activation: Activation::Relu },
            LayerSpec::Dense { units: 2, activation: Activation::Linear },
        ],
    };
    let mut model = Model::<f64>::new(config, 4).unwrap();
    let ids = Array2::from_shape_fn((3, 4), |(b, t)| ((b * 5 + t * 3) % 7) as u32);
    gradcheck(&mut model, Inputs::Tokens(ids.view()), &[4, 2, 3], 9);
}

/// Input dropout (one mask per sequence and input feature, the same at every step) on every
/// cell, on a first layer after an embedding and on a second recurrent layer: every gradient by
/// finite differences with the masks fixed (the same seed), the embedding's and the lower
/// layer's included (they reach them through the masks).
#[test]
fn input_dropout_matches_finite_differences_with_the_masks_fixed() {
    let ids = Array2::from_shape_fn((4, 5), |(b, t)| ((b * 5 + t * 3) % 7) as u32);
    for (k, cell) in CELLS.into_iter().enumerate() {
        let with_input_dropout = |p: f64, seq: bool| {
            let LayerSpec::Recurrent(mut r) = recurrent(cell, Merge::Concat, seq, 0.2) else { unreachable!() };
            r.input_dropout = p;
            LayerSpec::Recurrent(r)
        };
        let config = ModelSpec {
            mask_value: None,
            frozen: vec![],
            input: InputKind::Tokens { vocab_size: 7 },
            layers: vec![
                LayerSpec::Embedding { dim: 4 },
                with_input_dropout(0.4, true),
                with_input_dropout(0.3, false),
                LayerSpec::Dense { units: 2, activation: Activation::Linear },
            ],
        };
        let mut model = Model::<f64>::new(config, 30 + k as u64).unwrap();
        let worst = gradcheck(&mut model, Inputs::Tokens(ids.view()), &[5, 2, 4, 3], 17);
        println!("input dropout gradcheck {cell:?}: largest error {worst:.3e}");
    }
}

/// The same mask at every step of a sequence, zeros where it drops, `1 / (1 − p)` elsewhere; off
/// outside training.
#[test]
fn input_dropout_drops_whole_features_of_a_sequence_and_only_in_training() {
    let LayerSpec::Recurrent(mut r) = recurrent(CellKind::LSTM, Merge::Concat, true, 0.0) else { unreachable!() };
    r.input_dropout = 0.5;
    r.num_layers = 1;
    r.bidirectional = false;
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 6 },
        layers: vec![LayerSpec::Recurrent(r)],
    };
    let model = Model::<f64>::new(config, 2).unwrap();
    let x = Array3::from_elem((3, 4, 6), 1.0);
    let batch = model.pack(Inputs::Features(x.view()), Some(&[4, 2, 3])).unwrap();
    let trace = model.forward(batch, true, &mut Rng::new(8), None).unwrap();
    let seen = trace.layer_input(0).unwrap();
    // Rows are packed time-major in sorted order: step t's rows are the sequences still running.
    let packing_rows = [(0, 3), (3, 3), (6, 2), (8, 1)];
    for &(offset, rows) in &packing_rows {
        for i in 0..rows {
            assert_eq!(seen.row(offset + i), seen.row(i), "sequence {i} reads the same mask at every step");
        }
    }
    assert!(seen.iter().all(|&v| v == 0.0 || v == 2.0));
    assert!(seen.iter().any(|&v| v == 0.0) && seen.iter().any(|&v| v == 2.0));
    let off = model
        .forward(model.pack(Inputs::Features(x.view()), Some(&[4, 2, 3])).unwrap(), false, &mut Rng::new(8), None)
        .unwrap();
    assert!(off.layer_input(0).unwrap().iter().all(|&v| v == 1.0));
}

/// Recurrent dropout and zoneout on every cell, in a stacked bidirectional layer fed by input
/// dropout and feeding a second recurrent layer: every gradient by finite differences with the
/// masks fixed (the same seed draws them), through the lower layer and the embedding.
#[test]
fn recurrent_dropout_and_zoneout_match_finite_differences_with_the_masks_fixed() {
    let ids = Array2::from_shape_fn((4, 5), |(b, t)| ((b * 5 + t * 3) % 7) as u32);
    for (k, cell) in CELLS.into_iter().enumerate() {
        let noisy = |seq: bool, recurrent_dropout: f64, zoneout: f64| {
            let LayerSpec::Recurrent(mut r) = recurrent(cell, Merge::Concat, seq, 0.2) else { unreachable!() };
            (r.input_dropout, r.recurrent_dropout, r.zoneout) = (0.2, recurrent_dropout, zoneout);
            LayerSpec::Recurrent(r)
        };
        let config = ModelSpec {
            mask_value: None,
            frozen: vec![],
            input: InputKind::Tokens { vocab_size: 7 },
            layers: vec![
                LayerSpec::Embedding { dim: 3 },
                noisy(true, 0.4, 0.3),
                noisy(false, 0.3, 0.25),
                LayerSpec::Dense { units: 2, activation: Activation::Linear },
            ],
        };
        let mut model = Model::<f64>::new(config, 40 + k as u64).unwrap();
        let worst = gradcheck(&mut model, Inputs::Tokens(ids.view()), &[5, 2, 4, 3], 23);
        println!("recurrent dropout and zoneout gradcheck {cell:?}: largest error {worst:.3e}");
    }
}

/// Recurrent dropout is off outside training and zoneout runs its expectation there: the
/// evaluation forward pass and inference give the same bits, unlike training's draws; a layer
/// without either computes what it did before (zoneout 0 is no blend at all).
#[test]
fn outside_training_recurrent_dropout_is_off_and_zoneout_is_its_expectation() {
    let x = features(3, 6, 2, 9);
    let lengths = [6, 4, 5];
    for cell in CELLS {
        let spec = |recurrent_dropout: f64, zoneout: f64| {
            let LayerSpec::Recurrent(mut r) = recurrent(cell, Merge::Concat, true, 0.0) else { unreachable!() };
            (r.recurrent_dropout, r.zoneout) = (recurrent_dropout, zoneout);
            ModelSpec {
                mask_value: None,
                frozen: vec![],
                input: InputKind::Features { size: 2 },
                layers: vec![LayerSpec::Recurrent(r)],
            }
        };
        let out = |model: &Model<f64>, training: bool| {
            let batch = model.pack(Inputs::Features(x.view()), Some(&lengths)).unwrap();
            model.forward(batch, training, &mut Rng::new(4), None).unwrap().output
        };
        let infer = |model: &Model<f64>| {
            let batch = model.pack(Inputs::Features(x.view()), Some(&lengths)).unwrap();
            model.infer(&batch, None, None).unwrap().output
        };
        let plain = Model::<f64>::new(spec(0.0, 0.0), 3).unwrap();
        let dropped = Model::<f64>::new(spec(0.5, 0.0), 3).unwrap();
        assert_eq!(infer(&dropped), infer(&plain), "{cell:?}: recurrent dropout off in inference");
        assert_eq!(out(&dropped, false), infer(&plain), "{cell:?}: and in evaluation");
        assert_ne!(out(&dropped, true), infer(&plain), "{cell:?}: on in training");
        let zoned = Model::<f64>::new(spec(0.0, 0.4), 3).unwrap();
        assert_eq!(out(&zoned, false), infer(&zoned), "{cell:?}: zoneout's expectation in both");
        assert_ne!(infer(&zoned), infer(&plain), "{cell:?}: the expectation blends");
        assert_ne!(out(&zoned, true), infer(&zoned), "{cell:?}: training draws");
    }
}

#[test]
fn a_padded_batch_gives_each_sequences_own_outputs_and_the_sum_of_their_gradients() {
    for cell in CELLS {
        for seq in [true, false] {
            let config = ModelSpec {
                mask_value: None,
                frozen: vec![],
                input: InputKind::Features { size: 2 },
                layers: vec![
                    recurrent(cell, Merge::Concat, seq, 0.0),
                    LayerSpec::Dense { units: 2, activation: Activation::Linear },
                ],
            };
            let model = Model::<f64>::new(config, 21).unwrap();
            let lengths = [2usize, 6, 4];
            let mut x = features(3, 6, 2, 8);
            // Garbage in the padding must not matter.
            for (b, &len) in lengths.iter().enumerate() {
                for t in len..6 {
                    x[[b, t, 0]] = 1e6;
                    x[[b, t, 1]] = f64::NAN;
                }
            }
            let run = |x: ndarray::ArrayView3<f64>, lengths: &[usize]| {
                let batch = model.pack(Inputs::Features(x), Some(lengths)).unwrap();
                let trace = model.forward(batch, false, &mut Rng::new(0), None).unwrap();
                let out = model.unpack(&trace.batch, trace.output.view(), trace.sequence);
                let ones = Array2::from_elem(trace.output.dim(), 1.0);
                let grads = model.backward(trace, ones, false).unwrap();
                (out, grads)
            };
            let (out, grads) = run(x.view(), &lengths);
            let per = out.len() / 3;
            let mut summed: Vec<Vec<f64>> = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            for (b, &len) in lengths.iter().enumerate() {
                let alone = x.slice(ndarray::s![b..b + 1, ..len, ..]).to_owned();
                let (o, g) = run(alone.view(), &[len]);
                if seq {
                    for t in 0..6 {
                        for u in 0..2 {
                            let want = if t < len { o[t * 2 + u] } else { 0.0 };
                            let got = out[b * per + t * 2 + u];
                            assert!((got - want).abs() < 1e-12, "{cell:?} b{b} t{t}: {got} vs {want}");
                        }
                    }
                } else {
                    for u in 0..2 {
                        assert!((out[b * per + u] - o[u]).abs() < 1e-12, "{cell:?} final b{b}");
                    }
                }
                for (s, gi) in summed.iter_mut().zip(&g) {
                    s.iter_mut().zip(gi).for_each(|(a, v)| *a += v);
                }
            }
            for (ti, (a, b)) in grads.iter().zip(&summed).enumerate() {
                for (k, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!((x - y).abs() < 1e-10, "{cell:?} {}[{k}]: batch {x}, alone {y}", model.tensors[ti].name);
                }
            }
        }
    }
}

#[test]
fn parameters_carry_pytorch_names_and_shapes() {
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 5 },
        layers: vec![
            LayerSpec::Recurrent(RecurrentLayerSpec {
                cell: CellKind::gru(true),
                hidden_size: 4,
                num_layers: 2,
                bidirectional: true,
                merge: Merge::Concat,
                return_sequences: false,
                dropout: 0.0,
                go_backwards: false,
                input_dropout: 0.0,
                recurrent_dropout: 0.0,
                zoneout: 0.0,
            }),
            LayerSpec::Dense { units: 3, activation: Activation::Softmax },
        ],
    };
    let model = Model::<f32>::new(config, 1).unwrap();
    let names: Vec<(String, Vec<usize>)> = model.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    assert_eq!(names[0], ("0.weight_ih_l0".to_string(), vec![12, 5]));
    assert_eq!(names[4], ("0.weight_ih_l0_reverse".to_string(), vec![12, 5]));
    assert_eq!(names[8], ("0.weight_ih_l1".to_string(), vec![12, 8]));
    assert_eq!(names[15], ("0.bias_hh_l1_reverse".to_string(), vec![12]));
    assert_eq!(names[16], ("1.weight".to_string(), vec![3, 8]));
    assert_eq!(names[17], ("1.bias".to_string(), vec![3]));
    assert_eq!(model.tensors.len(), 18);
}

#[test]
fn bad_configurations_and_inputs_are_errors_naming_the_field() {
    let bad = |layers: Vec<LayerSpec>, input: InputKind| {
        Model::<f32>::new(ModelSpec { mask_value: None, frozen: vec![], input, layers }, 0).unwrap_err().to_string()
    };
    let feats = InputKind::Features { size: 2 };
    assert!(bad(vec![], feats).contains("layers"));
    assert!(bad(vec![LayerSpec::Dense { units: 0, activation: Activation::Linear }], feats).contains("layers[0].units"));
    assert!(bad(vec![recurrent(CellKind::LSTM, Merge::Concat, true, 1.5)], feats).contains("layers[0].dropout"));
    assert!(bad(vec![LayerSpec::Embedding { dim: 2 }], feats).contains("layers[0].type"));
    assert!(bad(vec![recurrent(CellKind::LSTM, Merge::Concat, true, 0.0)], InputKind::Tokens { vocab_size: 3 })
        .contains("embedding"));
    assert!(bad(
        vec![recurrent(CellKind::LSTM, Merge::Concat, false, 0.0), recurrent(CellKind::LSTM, Merge::Concat, true, 0.0)],
        feats
    )
    .contains("layers[1].type"));

    let model = Model::<f64>::new(
        ModelSpec {
            mask_value: None,
            frozen: vec![],
            input: feats,
            layers: vec![recurrent(CellKind::LSTM, Merge::Concat, true, 0.0)],
        },
        0,
    )
    .unwrap();
    let x = features(2, 3, 2, 1);
    let err = model.pack(Inputs::Features(x.view()), Some(&[3, 4])).unwrap_err().to_string();
    assert!(err.contains("lengths[1]") && err.contains("1..=3") && err.contains("got 4"), "{err}");
    let err = model.pack(Inputs::Features(x.view()), Some(&[0, 1])).unwrap_err().to_string();
    assert!(err.contains("lengths[0]"), "{err}");
    let wrong = features(2, 3, 5, 1);
    assert!(model.pack(Inputs::Features(wrong.view()), None).unwrap_err().to_string().contains("[2, 3, 2]"));

    let tok = Model::<f64>::new(
        ModelSpec {
            mask_value: None,
            frozen: vec![],
            input: InputKind::Tokens { vocab_size: 4 },
            layers: vec![LayerSpec::Embedding { dim: 2 }],
        },
        0,
    )
    .unwrap();
    let ids = Array2::from_shape_vec((1, 2), vec![1u32, 9]).unwrap();
    let err = tok.pack(Inputs::Tokens(ids.view()), None).unwrap_err().to_string();
    assert!(err.contains("x[0][1]") && err.contains("vocabulary size 4") && err.contains("got 9"), "{err}");
}

#[test]
fn stepping_one_step_at_a_time_reproduces_the_whole_sequence() {
    for cell in CELLS {
        let config = ModelSpec {
            mask_value: None,
            frozen: vec![],
            input: InputKind::Features { size: 2 },
            layers: vec![
                LayerSpec::Recurrent(RecurrentLayerSpec {
                    cell,
                    hidden_size: 4,
                    num_layers: 2,
                    bidirectional: false,
                    merge: Merge::Concat,
                    return_sequences: true,
                    dropout: 0.0,
                    go_backwards: false,
                    input_dropout: 0.0,
                    recurrent_dropout: 0.0,
                    zoneout: 0.0,
                }),
                LayerSpec::Dense { units: 3, activation: Activation::Tanh },
            ],
        };
        let model = Model::<f64>::new(config, 6).unwrap();
        let x = features(2, 5, 2, 4);
        let batch = model.pack(Inputs::Features(x.view()), None).unwrap();
        let trace = model.forward(batch, false, &mut Rng::new(0), None).unwrap();
        let whole = model.unpack(&trace.batch, trace.output.view(), true);
        let mut state = model.stream_state(2).unwrap();
        for t in 0..5 {
            let step = x.slice(ndarray::s![.., t..t + 1, ..]).to_owned();
            let out = model.step(Inputs::Features(step.view()), &mut state).unwrap();
            for b in 0..2 {
                for u in 0..3 {
                    let want = whole[(b * 5 + t) * 3 + u];
                    assert!((out[b * 3 + u] - want).abs() < 1e-12, "{cell:?} t{t} b{b}");
                }
            }
        }
        // One-step calls read W_hh directly; whole passes its transpose: the same sums, in
        // another order, so equal up to rounding.
        let (stepped, passed) = (&state.hidden[0][1], &trace.state.hidden[0][1]);
        assert_eq!(stepped.len(), passed.len());
        for (a, b) in stepped.iter().zip(passed) {
            assert!((a - b).abs() < 1e-12, "{cell:?}: final state of layer 1: {a} vs {b}");
        }
        let wrong = model.stream_state(3).unwrap();
        let mut wrong2 = wrong.clone();
        let step = x.slice(ndarray::s![.., 0..1, ..]).to_owned();
        assert!(model.step(Inputs::Features(step.view()), &mut wrong2).is_err());
        assert_eq!(wrong2, wrong, "a failed step leaves the state as it was");
    }
}

/// A stream runs one step at a time, and a backward direction needs the whole sequence: a model
/// with a bidirectional layer is refused as a stream, naming the layer, with a state made
/// for it or not.
#[test]
fn a_bidirectional_model_is_refused_as_a_stream() {
    let dense = LayerSpec::Dense { units: 2, activation: Activation::Linear };
    let uni = LayerSpec::Recurrent(RecurrentLayerSpec {
        cell: CellKind::LSTM,
        hidden_size: 3,
        num_layers: 1,
        bidirectional: false,
        merge: Merge::Concat,
        return_sequences: true,
        dropout: 0.0,
        go_backwards: false,
        input_dropout: 0.0,
        recurrent_dropout: 0.0,
        zoneout: 0.0,
    });
    let config = ModelSpec {
        mask_value: None,
        frozen: vec![],
        input: InputKind::Features { size: 2 },
        layers: vec![uni, recurrent(CellKind::gru(true), Merge::Sum, true, 0.0), dense],
    };
    let model = Model::<f64>::new(config, 1).unwrap();
    let err = model.stream_state(1).unwrap_err();
    assert_eq!(err.code().as_str(), "GYRE_INVALID_ARGUMENT");
    assert_eq!(
        err.to_string(),
        "layers[1].bidirectional must be false for a stream (a stream runs one step at a time and cannot run \
         layer 1's backward direction, which needs the whole sequence; use predict), got true"
    );
    let mut state = model.zero_state(1);
    let before = state.clone();
    let x = features(1, 1, 2, 3);
    assert_eq!(model.step(Inputs::Features(x.view()), &mut state).unwrap_err(), err);
    assert_eq!(state, before, "a refused step leaves the state as it was");
}
