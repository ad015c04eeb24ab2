//! The functional recurrent API over sequences of their own lengths, in either direction
//! (`forward_sequences` / `backward_sequences`): each sequence of a padded batch gets what it
//! gets alone (outputs, final states, every gradient), outputs and input gradients are 0 at its
//! padded steps, and the reverse direction is the forward one over the time-reversed sequence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

mod common;
use common::{random_problem, CELLS};
use gyre_core::{backward_sequences, forward_sequences, InitialState, OutputGrads, SequenceOptions};
use ndarray::{s, Axis};

/// `x[b, ..len]` reversed in time.
fn flip(x: ndarray::ArrayView2<f64>) -> ndarray::Array2<f64> {
    let mut out = x.to_owned();
    out.invert_axis(Axis(0));
    out
}

fn close(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn each_sequence_gets_what_it_gets_alone_in_either_direction() {
    let lengths = [6usize, 2, 5, 1, 6];
    for name in CELLS {
        let p = random_problem(name, lengths.len(), 6, 3, 4, 17);
        let lstm = p.kind.has_cell_state();
        for reverse in [false, true] {
            let opts = SequenceOptions { lengths: Some(&lengths), reverse };
            let out = forward_sequences(p.kind, &p.weights(), p.x.view(), &p.initial(), &opts).unwrap();
            let g =
                backward_sequences(p.kind, &p.weights(), p.x.view(), &p.initial(), &p.output_grads(), &opts).unwrap();
            let mut weight_sums = [0.0; 4];
            for (b, &len) in lengths.iter().enumerate() {
                let what = format!("{name}, reverse {reverse}, sequence {b}");
                // Alone, forwards over the sequence (time-reversed for the reverse direction).
                let mut x = p.x.slice(s![b, ..len, ..]).to_owned();
                let mut go = p.grad_output.slice(s![b, ..len, ..]).to_owned();
                if reverse {
                    x = flip(x.view());
                    go = flip(go.view());
                }
                let x = x.insert_axis(Axis(0));
                let go = go.insert_axis(Axis(0));
                let h0 = p.h0.slice(s![b..b + 1, ..]);
                let c0 = p.c0.as_ref().map(|c| c.slice(s![b..b + 1, ..]).to_owned());
                let init = InitialState { hidden: Some(h0), cell: c0.as_ref().map(|c| c.view()) };
                let alone = gyre_core::forward(p.kind, &p.weights(), x.view(), &init).unwrap();
                let mut alone_out = alone.output.index_axis(Axis(0), 0).to_owned();
                if reverse {
                    alone_out = flip(alone_out.view());
                }
                let got = out.output.slice(s![b, ..len, ..]).iter().copied().collect::<Vec<_>>();
                close(&got, &alone_out.iter().copied().collect::<Vec<_>>(), &format!("{what}: output"));
                assert!(out.output.slice(s![b, len.., ..]).iter().all(|&v| v == 0.0), "{what}: padded outputs are 0");
                close(&out.state.hidden.row(b).to_vec(), &alone.state.hidden.row(0).to_vec(), &format!("{what}: h_n"));
                if lstm {
                    let (c, ca) = (out.state.cell.as_ref().unwrap(), alone.state.cell.as_ref().unwrap());
                    close(&c.row(b).to_vec(), &ca.row(0).to_vec(), &format!("{what}: c_n"));
                }
                let ghn = p.grad_h_n.slice(s![b..b + 1, ..]);
                let gcn = p.grad_c_n.as_ref().map(|c| c.slice(s![b..b + 1, ..]).to_owned());
                let grads =
                    OutputGrads { output: Some(go.view()), hidden: Some(ghn), cell: gcn.as_ref().map(|c| c.view()) };
                let ga = gyre_core::backward(p.kind, &p.weights(), x.view(), &init, &grads).unwrap();
                let mut ga_in = ga.input.index_axis(Axis(0), 0).to_owned();
                if reverse {
                    ga_in = flip(ga_in.view());
                }
                let got = g.input.slice(s![b, ..len, ..]).iter().copied().collect::<Vec<_>>();
                close(&got, &ga_in.iter().copied().collect::<Vec<_>>(), &format!("{what}: grad input"));
                assert!(
                    g.input.slice(s![b, len.., ..]).iter().all(|&v| v == 0.0),
                    "{what}: padded input gradients are 0"
                );
                close(
                    &g.initial.hidden.row(b).to_vec(),
                    &ga.initial.hidden.row(0).to_vec(),
                    &format!("{what}: grad h0"),
                );
                if lstm {
                    let (c, ca) = (g.initial.cell.as_ref().unwrap(), ga.initial.cell.as_ref().unwrap());
                    close(&c.row(b).to_vec(), &ca.row(0).to_vec(), &format!("{what}: grad c0"));
                }
                let w = &ga.weights;
                for (k, t) in
                    [w.weight_ih.sum(), w.weight_hh.sum(), w.bias_ih.sum(), w.bias_hh.sum()].into_iter().enumerate()
                {
                    weight_sums[k] += t;
                }
            }
            // The batch's weight gradients are the sums of the sequences' (compared through their totals).
            let w = &g.weights;
            for (k, total) in
                [w.weight_ih.sum(), w.weight_hh.sum(), w.bias_ih.sum(), w.bias_hh.sum()].into_iter().enumerate()
            {
                assert!((total - weight_sums[k]).abs() <= 1e-10 * (1.0 + total.abs()), "{name}: weight gradient {k}");
            }
        }
    }
}

#[test]
fn without_lengths_it_is_the_plain_call_and_bad_lengths_are_named() {
    let p = random_problem("lstm", 3, 4, 2, 3, 5);
    let plain = gyre_core::forward(p.kind, &p.weights(), p.x.view(), &p.initial()).unwrap();
    let full = [4usize, 4, 4];
    let same = forward_sequences(
        p.kind,
        &p.weights(),
        p.x.view(),
        &p.initial(),
        &SequenceOptions { lengths: Some(&full), reverse: false },
    )
    .unwrap();
    assert_eq!(plain, same, "all lengths T: the same bits");
    let err = |lengths: &[usize]| {
        forward_sequences(
            p.kind,
            &p.weights(),
            p.x.view(),
            &p.initial(),
            &SequenceOptions { lengths: Some(lengths), reverse: false },
        )
        .unwrap_err()
        .to_string()
    };
    assert!(err(&[4, 0, 1]).contains("lengths[1]"));
    assert!(err(&[4, 5, 1]).contains("lengths[1]"));
    assert!(err(&[4, 4]).contains("lengths"));
}
