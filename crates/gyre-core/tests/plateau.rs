//! The reduceOnPlateau schedule against PyTorch's `ReduceLROnPlateau` (mode 'min'): the rate
//! after every epoch of several settings and loss sequences, exactly (both compute in f64).
//! The values are in `tests/reference/plateau/plateau.json`, made by `make.py` there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed expectation is the report

use gyre_core::optim::{LrSchedule, Plateau};

#[test]
fn plateau_steps_give_pytorchs_rates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/plateau/plateau.json");
    let data: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let mut reductions = 0;
    for (i, c) in cases.iter().enumerate() {
        let s = &c["settings"];
        let schedule = LrSchedule::Plateau {
            factor: s["factor"].as_f64().unwrap(),
            patience: s["patience"].as_u64().unwrap() as usize,
            threshold: s["threshold"].as_f64().unwrap(),
            relative: s["threshold_mode"] == "rel",
            cooldown: s["cooldown"].as_u64().unwrap() as usize,
            min_lr: s["min_lr"].as_f64().unwrap(),
        };
        schedule.validate().unwrap();
        let mut state = Plateau::new(c["lr"].as_f64().unwrap());
        // Read as f64 bit patterns (the JSON's decimal forms are for reading).
        let bits = |k: &str| -> Vec<f64> {
            c[k].as_array().unwrap().iter().map(|v| f64::from_bits(v.as_u64().unwrap())).collect()
        };
        let (losses, lrs) = (bits("loss_bits"), bits("lr_bits"));
        assert_eq!(losses.len(), 60);
        let mut last = state.lr;
        for (t, (&loss, &want)) in losses.iter().zip(&lrs).enumerate() {
            let got = state.step(&schedule, loss);
            assert_eq!(got.to_bits(), want.to_bits(), "case {i} epoch {t}: {got} vs {want}");
            if got != last {
                reductions += 1;
            }
            last = got;
        }
    }
    assert!(reductions >= 16, "{reductions} reductions: the cases exercise the schedule");
}

#[test]
fn bad_plateau_settings_are_refused_naming_the_field() {
    let bad = |factor: f64, threshold: f64, min_lr: f64| {
        LrSchedule::Plateau { factor, patience: 1, threshold, relative: true, cooldown: 0, min_lr }
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert!(bad(1.0, 0.0, 0.0).contains("factor"));
    assert!(bad(0.0, 0.0, 0.0).contains("factor"));
    assert!(bad(0.5, -1.0, 0.0).contains("threshold"));
    assert!(bad(0.5, 0.0, f64::NAN).contains("min_lr"));
}
