//! The optimizers, schedules and clipping against reference loops written from the
//! torch.optim documentation, and their state export and import.

use super::*;
use crate::error::{CoreError, Result};
use crate::kernels::real::Real;

// ---------------------------------------------------------------------------------------
// Reference implementations: scalar loops written from the torch.optim documentation's
// pseudo-code, line by line, in f64. They share no code with the implementation.
// ---------------------------------------------------------------------------------------

/// Fixed gradients for 3 steps of a parameter: the same pattern, scaled and sign-flipped.
fn grads_for(base: &[f64]) -> Vec<Vec<f64>> {
    [1.0, -0.5, 2.0].iter().map(|s| base.iter().enumerate().map(|(i, g)| s * g + 0.01 * i as f64).collect()).collect()
}

const LRS: [f64; 3] = [0.1, 0.05, 0.02];

#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)] // written as the pseudo-code reads
fn ref_sgd(
    p0: &[f64],
    grads: &[Vec<f64>],
    lrs: &[f64],
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
) -> Vec<f64> {
    let mut theta = p0.to_vec();
    let mut b = vec![0.0; p0.len()];
    for t in 1..=grads.len() {
        let gamma = lrs[t - 1];
        for i in 0..theta.len() {
            let mut g = grads[t - 1][i];
            if weight_decay != 0.0 {
                g = g + weight_decay * theta[i];
            }
            if momentum != 0.0 {
                if t > 1 {
                    b[i] = momentum * b[i] + (1.0 - dampening) * g;
                } else {
                    b[i] = g;
                }
                if nesterov {
                    g = g + momentum * b[i];
                } else {
                    g = b[i];
                }
            }
            theta[i] = theta[i] - gamma * g;
        }
    }
    theta
}

#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)] // written as the pseudo-code reads
fn ref_adam(
    p0: &[f64],
    grads: &[Vec<f64>],
    lrs: &[f64],
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
) -> Vec<f64> {
    let mut theta = p0.to_vec();
    let mut m = vec![0.0; p0.len()];
    let mut v = vec![0.0; p0.len()];
    for t in 1..=grads.len() {
        let gamma = lrs[t - 1];
        for i in 0..theta.len() {
            let mut g = grads[t - 1][i];
            if decoupled {
                // AdamW: θ_t ← θ_{t−1} − γλθ_{t−1}
                theta[i] = theta[i] - gamma * weight_decay * theta[i];
            } else if weight_decay != 0.0 {
                g = g + weight_decay * theta[i];
            }
            m[i] = beta1 * m[i] + (1.0 - beta1) * g;
            v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
            let m_hat = m[i] / (1.0 - beta1.powi(t as i32));
            let v_hat = v[i] / (1.0 - beta2.powi(t as i32));
            theta[i] = theta[i] - gamma * m_hat / (v_hat.sqrt() + eps);
        }
    }
    theta
}

#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)] // written as the pseudo-code reads
fn ref_rmsprop(
    p0: &[f64],
    grads: &[Vec<f64>],
    lrs: &[f64],
    alpha: f64,
    eps: f64,
    momentum: f64,
    centered: bool,
    weight_decay: f64,
) -> Vec<f64> {
    let mut theta = p0.to_vec();
    let mut v = vec![0.0; p0.len()];
    let mut b = vec![0.0; p0.len()];
    let mut g_ave = vec![0.0; p0.len()];
    for t in 1..=grads.len() {
        let gamma = lrs[t - 1];
        for i in 0..theta.len() {
            let mut g = grads[t - 1][i];
            if weight_decay != 0.0 {
                g = g + weight_decay * theta[i];
            }
            v[i] = alpha * v[i] + (1.0 - alpha) * g * g;
            let mut v_tilde = v[i];
            if centered {
                g_ave[i] = g_ave[i] * alpha + (1.0 - alpha) * g;
                v_tilde = v_tilde - g_ave[i] * g_ave[i];
            }
            if momentum > 0.0 {
                b[i] = momentum * b[i] + g / (v_tilde.sqrt() + eps);
                theta[i] = theta[i] - gamma * b[i];
            } else {
                theta[i] = theta[i] - gamma * g / (v_tilde.sqrt() + eps);
            }
        }
    }
    theta
}

/// The reference for one parameter, with weight decay applied iff `decay`.
fn reference(config: &OptimizerConfig, p0: &[f64], grads: &[Vec<f64>], decay: bool) -> Vec<f64> {
    let wd = |w: f64| if decay { w } else { 0.0 };
    match *config {
        OptimizerConfig::Sgd { momentum, dampening, nesterov, weight_decay, .. } => {
            ref_sgd(p0, grads, &LRS, momentum, dampening, nesterov, wd(weight_decay))
        }
        OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, .. } => {
            ref_adam(p0, grads, &LRS, beta1, beta2, eps, wd(weight_decay), false)
        }
        OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay, .. } => {
            ref_adam(p0, grads, &LRS, beta1, beta2, eps, wd(weight_decay), true)
        }
        OptimizerConfig::RmsProp { alpha, eps, momentum, centered, weight_decay, .. } => {
            ref_rmsprop(p0, grads, &LRS, alpha, eps, momentum, centered, wd(weight_decay))
        }
    }
}

const P_WEIGHT: [f64; 5] = [0.5, -1.25, 2.0, 0.0, -0.3];
const G_WEIGHT: [f64; 5] = [0.2, -0.4, 1.5, -0.05, 0.0];
const P_BIAS: [f64; 3] = [0.1, -0.7, 1.1];
const G_BIAS: [f64; 3] = [-0.3, 0.8, 0.02];

fn cast<F: Real>(v: &[f64]) -> Vec<F> {
    v.iter().map(|&x| F::lit(x)).collect()
}

/// Runs 3 steps of `config` with the learning rates `LRS` on a weight (decay) and a bias
/// (no decay) in `F`, returning both in f64.
fn run3<F: Real>(config: OptimizerConfig) -> (Vec<f64>, Vec<f64>) {
    let (gw, gb) = (grads_for(&G_WEIGHT), grads_for(&G_BIAS));
    let (mut w, mut b) = (cast::<F>(&P_WEIGHT), cast::<F>(&P_BIAS));
    let mut opt = Optimizer::<F>::new(config, &[w.len(), b.len()]).unwrap();
    for t in 0..3 {
        let (gw, gb) = (cast::<F>(&gw[t]), cast::<F>(&gb[t]));
        let mut params = [Param::new(&mut w, &gw, true), Param::new(&mut b, &gb, false)];
        opt.step(&mut params, F::lit(LRS[t])).unwrap();
    }
    assert_eq!(opt.step_count(), 3);
    let back = |v: &[F]| v.iter().map(|x| x.to_f64().unwrap()).collect::<Vec<_>>();
    (back(&w), back(&b))
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}[{i}]: got {g}, want {w}");
    }
}

/// Checks `config` against the reference in f64 (tight) and f32 (loose), and that the
/// parameters actually moved.
fn check_against_reference(config: OptimizerConfig) {
    let (gw, gb) = (grads_for(&G_WEIGHT), grads_for(&G_BIAS));
    let want_w = reference(&config, &P_WEIGHT, &gw, true);
    let want_b = reference(&config, &P_BIAS, &gb, false);
    let (w, b) = run3::<f64>(config);
    let name = config.name();
    assert_close(&w, &want_w, 1e-12, &format!("{name} f64 weight"));
    assert_close(&b, &want_b, 1e-12, &format!("{name} f64 bias"));
    let (w32, b32) = run3::<f32>(config);
    assert_close(&w32, &want_w, 2e-5, &format!("{name} f32 weight"));
    assert_close(&b32, &want_b, 2e-5, &format!("{name} f32 bias"));
    assert!(w.iter().zip(&P_WEIGHT).any(|(a, b)| a != b), "{name}: weight did not move");
}

fn sgd_config(momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::Sgd { lr: 0.1, momentum, dampening, nesterov, weight_decay }
}

fn adam_config(weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::Adam { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
}

fn adamw_config(weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::AdamW { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay }
}

fn rms_config(momentum: f64, centered: bool, weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::RmsProp { lr: 0.1, alpha: 0.9, eps: 1e-8, momentum, centered, weight_decay }
}

fn all_configs() -> Vec<OptimizerConfig> {
    vec![
        sgd_config(0.0, 0.0, false, 0.1),
        sgd_config(0.9, 0.1, false, 0.1),
        sgd_config(0.9, 0.0, true, 0.1),
        adam_config(0.1),
        adamw_config(0.1),
        rms_config(0.0, false, 0.1),
        rms_config(0.8, true, 0.1),
        rms_config(0.8, false, 0.0),
        rms_config(0.0, true, 0.1),
    ]
}

#[test]
fn sgd_plain_matches_reference() {
    check_against_reference(sgd_config(0.0, 0.0, false, 0.0));
    check_against_reference(sgd_config(0.0, 0.0, false, 0.1));
}

#[test]
fn sgd_momentum_with_dampening_matches_reference() {
    check_against_reference(sgd_config(0.9, 0.0, false, 0.0));
    check_against_reference(sgd_config(0.9, 0.3, false, 0.05));
}

#[test]
fn sgd_nesterov_matches_reference() {
    check_against_reference(sgd_config(0.9, 0.0, true, 0.0));
    check_against_reference(sgd_config(0.5, 0.0, true, 0.1));
}

#[test]
fn adam_matches_reference() {
    check_against_reference(adam_config(0.0));
    check_against_reference(adam_config(0.1));
    check_against_reference(OptimizerConfig::Adam { lr: 0.1, beta1: 0.0, beta2: 0.5, eps: 1e-3, weight_decay: 0.2 });
}

#[test]
fn adamw_matches_reference() {
    check_against_reference(adamw_config(0.0));
    check_against_reference(adamw_config(0.1));
    check_against_reference(OptimizerConfig::AdamW { lr: 0.1, beta1: 0.5, beta2: 0.9, eps: 1e-3, weight_decay: 0.5 });
}

#[test]
fn rmsprop_matches_reference() {
    check_against_reference(rms_config(0.0, false, 0.0));
    check_against_reference(rms_config(0.0, false, 0.1));
    check_against_reference(rms_config(0.9, false, 0.1));
}

#[test]
fn rmsprop_centered_matches_reference() {
    check_against_reference(rms_config(0.0, true, 0.0));
    check_against_reference(rms_config(0.9, true, 0.1));
}

#[test]
fn adamw_differs_from_adam_only_with_weight_decay() {
    let (adam_w, adam_b) = run3::<f64>(adam_config(0.1));
    let (adamw_w, adamw_b) = run3::<f64>(adamw_config(0.1));
    assert!(adam_w.iter().zip(&adamw_w).any(|(a, b)| (a - b).abs() > 1e-6), "{adam_w:?} vs {adamw_w:?}");
    // The bias has decay = false: both reduce to plain Adam.
    assert_eq!(adam_b, adamw_b);
    let (adam_w, _) = run3::<f64>(adam_config(0.0));
    let (adamw_w, _) = run3::<f64>(adamw_config(0.0));
    assert_eq!(adam_w, adamw_w);
}

#[test]
fn params_without_decay_get_no_weight_decay() {
    let without = |c: OptimizerConfig| match c {
        OptimizerConfig::Sgd { lr, momentum, dampening, nesterov, .. } => {
            OptimizerConfig::Sgd { lr, momentum, dampening, nesterov, weight_decay: 0.0 }
        }
        OptimizerConfig::Adam { lr, beta1, beta2, eps, .. } => {
            OptimizerConfig::Adam { lr, beta1, beta2, eps, weight_decay: 0.0 }
        }
        OptimizerConfig::AdamW { lr, beta1, beta2, eps, .. } => {
            OptimizerConfig::AdamW { lr, beta1, beta2, eps, weight_decay: 0.0 }
        }
        OptimizerConfig::RmsProp { lr, alpha, eps, momentum, centered, .. } => {
            OptimizerConfig::RmsProp { lr, alpha, eps, momentum, centered, weight_decay: 0.0 }
        }
    };
    for config in all_configs() {
        let (w_decay, b_decay) = run3::<f64>(config);
        let (w_plain, b_plain) = run3::<f64>(without(config));
        assert_eq!(b_decay, b_plain, "{}: bias (decay = false) must not be decayed", config.name());
        let has_decay = match config {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::AdamW { weight_decay, .. }
            | OptimizerConfig::RmsProp { weight_decay, .. } => weight_decay > 0.0,
        };
        if has_decay {
            assert_ne!(w_decay, w_plain, "{}: weight (decay = true) must be decayed", config.name());
        }
    }
}

/// Minimizes f(p) = ½|p − target|² (gradient p − target) from a fixed start.
fn bowl<F: Real>(config: OptimizerConfig, schedule: Schedule, steps: usize) -> f64 {
    let target: Vec<F> = cast(&[1.0, -2.0, 0.5, 3.0]);
    let mut p: Vec<F> = cast(&[-1.0, 1.0, 2.5, 0.0]);
    let mut opt = Optimizer::<F>::new(config, &[p.len()]).unwrap();
    for t in 0..steps {
        let grad: Vec<F> = p.iter().zip(&target).map(|(&p, &q)| p - q).collect();
        let lr = F::lit(schedule.lr_at(config.lr(), t));
        opt.step(&mut [Param::new(&mut p, &grad, false)], lr).unwrap();
    }
    p.iter().zip(&target).map(|(&p, &q)| (p - q).to_f64().unwrap().abs()).fold(0.0, f64::max)
}

#[test]
fn quadratic_bowl_converges_with_every_optimizer() {
    let constant = Schedule::new(LrSchedule::Constant, 0).unwrap();
    let cosine = Schedule::new(LrSchedule::Cosine { t_max: 2000, eta_min: 0.0 }, 20).unwrap();
    let cases = [
        (sgd_config(0.0, 0.0, false, 0.0), constant),
        (sgd_config(0.9, 0.0, false, 0.1), constant),
        (sgd_config(0.9, 0.0, true, 0.1), constant),
        (sgd_config(0.5, 0.5, false, 0.0), constant),
        (adam_config(0.1), cosine),
        (adamw_config(0.1), cosine),
        (rms_config(0.0, false, 0.0), cosine),
        (rms_config(0.5, true, 0.1), cosine),
    ];
    for (config, schedule) in cases {
        let err = bowl::<f64>(config, schedule, 2000);
        assert!(err < 1e-4, "{config:?}: max error {err}");
        let err = bowl::<f32>(config, schedule, 2000);
        assert!(err < 1e-3, "{config:?} (f32): max error {err}");
    }
}

fn invalid_field(result: Result<()>) -> String {
    match result {
        Err(CoreError::InvalidArgument { what, .. }) => what,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn validation_errors_name_the_field() {
    for config in all_configs() {
        config.validate().unwrap();
    }
    let sgd = |lr, momentum, dampening, nesterov, weight_decay| {
        OptimizerConfig::Sgd { lr, momentum, dampening, nesterov, weight_decay }.validate()
    };
    assert_eq!(invalid_field(sgd(0.0, 0.0, 0.0, false, 0.0)), "lr");
    assert_eq!(invalid_field(sgd(-0.1, 0.0, 0.0, false, 0.0)), "lr");
    assert_eq!(invalid_field(sgd(f64::NAN, 0.0, 0.0, false, 0.0)), "lr");
    assert_eq!(invalid_field(sgd(f64::INFINITY, 0.0, 0.0, false, 0.0)), "lr");
    assert_eq!(invalid_field(sgd(0.1, -0.5, 0.0, false, 0.0)), "momentum");
    assert_eq!(invalid_field(sgd(0.1, f64::INFINITY, 0.0, false, 0.0)), "momentum");
    assert_eq!(invalid_field(sgd(0.1, 0.9, 1.5, false, 0.0)), "dampening");
    assert_eq!(invalid_field(sgd(0.1, 0.9, f64::NAN, false, 0.0)), "dampening");
    assert_eq!(invalid_field(sgd(0.1, 0.9, 0.0, false, -1e-3)), "weight_decay");
    assert_eq!(invalid_field(sgd(0.1, 0.9, 0.0, false, f64::NAN)), "weight_decay");
    for make in [
        |lr, beta1, beta2, eps, weight_decay| OptimizerConfig::Adam { lr, beta1, beta2, eps, weight_decay },
        |lr, beta1, beta2, eps, weight_decay| OptimizerConfig::AdamW { lr, beta1, beta2, eps, weight_decay },
    ] {
        assert_eq!(invalid_field(make(-1.0, 0.9, 0.999, 1e-8, 0.0).validate()), "lr");
        assert_eq!(invalid_field(make(0.1, 1.0, 0.999, 1e-8, 0.0).validate()), "beta1");
        assert_eq!(invalid_field(make(0.1, -0.1, 0.999, 1e-8, 0.0).validate()), "beta1");
        assert_eq!(invalid_field(make(0.1, 0.9, 1.0, 1e-8, 0.0).validate()), "beta2");
        assert_eq!(invalid_field(make(0.1, 0.9, f64::NAN, 1e-8, 0.0).validate()), "beta2");
        assert_eq!(invalid_field(make(0.1, 0.9, 0.999, 0.0, 0.0).validate()), "eps");
        assert_eq!(invalid_field(make(0.1, 0.9, 0.999, f64::INFINITY, 0.0).validate()), "eps");
        assert_eq!(invalid_field(make(0.1, 0.9, 0.999, 1e-8, -0.01).validate()), "weight_decay");
        make(0.1, 0.0, 0.0, 1e-8, 0.0).validate().unwrap();
    }
    let rms = |lr, alpha, eps, momentum, weight_decay| {
        OptimizerConfig::RmsProp { lr, alpha, eps, momentum, centered: true, weight_decay }.validate()
    };
    assert_eq!(invalid_field(rms(0.0, 0.99, 1e-8, 0.0, 0.0)), "lr");
    assert_eq!(invalid_field(rms(0.1, 1.0, 1e-8, 0.0, 0.0)), "alpha");
    assert_eq!(invalid_field(rms(0.1, -0.01, 1e-8, 0.0, 0.0)), "alpha");
    assert_eq!(invalid_field(rms(0.1, 0.99, -1e-8, 0.0, 0.0)), "eps");
    assert_eq!(invalid_field(rms(0.1, 0.99, 1e-8, -0.9, 0.0)), "momentum");
    assert_eq!(invalid_field(rms(0.1, 0.99, 1e-8, 0.0, f64::NEG_INFINITY)), "weight_decay");
    // The message carries the rule and the value.
    let err = OptimizerConfig::Adam { lr: 0.1, beta1: 1.5, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    assert_eq!(err.validate().unwrap_err().to_string(), "beta1 must be in [0, 1), got 1.5");
    // The constructor validates too.
    let err = Optimizer::<f32>::new(OptimizerConfig::sgd(-1.0), &[3]).unwrap_err();
    assert!(matches!(err, CoreError::InvalidArgument { ref what, .. } if what == "lr"), "{err}");
}

#[test]
fn nesterov_requires_momentum_and_zero_dampening() {
    assert_eq!(invalid_field(sgd_config(0.0, 0.0, true, 0.0).validate()), "nesterov");
    assert_eq!(invalid_field(sgd_config(0.9, 0.1, true, 0.0).validate()), "nesterov");
    sgd_config(0.9, 0.0, true, 0.0).validate().unwrap();
    sgd_config(0.9, 0.1, false, 0.0).validate().unwrap();
}

#[test]
fn defaults_follow_pytorch() {
    assert_eq!(
        OptimizerConfig::sgd(0.1),
        OptimizerConfig::Sgd { lr: 0.1, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    );
    assert_eq!(
        OptimizerConfig::adam(1e-3),
        OptimizerConfig::Adam { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    );
    assert_eq!(
        OptimizerConfig::adamw(1e-3),
        OptimizerConfig::AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    );
    assert_eq!(
        OptimizerConfig::rmsprop(1e-2),
        OptimizerConfig::RmsProp {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            centered: false,
            weight_decay: 0.0
        }
    );
    for config in [
        OptimizerConfig::sgd(0.1),
        OptimizerConfig::adam(0.1),
        OptimizerConfig::adamw(0.1),
        OptimizerConfig::rmsprop(0.1),
    ] {
        config.validate().unwrap();
        assert_eq!(config.lr(), 0.1);
    }
}

#[test]
fn step_rejects_mismatched_params_and_changes_nothing() {
    let mut opt = Optimizer::<f64>::new(adam_config(0.0), &[3, 2]).unwrap();
    let (mut a, mut b, mut c) = (vec![1.0; 3], vec![1.0; 2], vec![1.0; 4]);
    let (ga, gb, gc) = (vec![0.5; 3], vec![0.5; 2], vec![0.5; 4]);
    let shape_what = |r: Result<()>| match r {
        Err(CoreError::ShapeMismatch { what, .. }) => what,
        other => panic!("expected ShapeMismatch, got {other:?}"),
    };
    assert_eq!(shape_what(opt.step(&mut [Param::new(&mut a, &ga, true)], 0.1)), "params");
    assert_eq!(
        shape_what(opt.step(&mut [Param::new(&mut a, &ga, true), Param::new(&mut c, &gc, true)], 0.1)),
        "params[1].value"
    );
    assert_eq!(
        shape_what(opt.step(&mut [Param::new(&mut a, &ga, true), Param::new(&mut b, &ga, true)], 0.1)),
        "params[1].grad"
    );
    assert_eq!(
        shape_what(opt.step(&mut [Param::new(&mut a, &gb, true), Param::new(&mut b, &gb, true)], 0.1)),
        "params[0].grad"
    );
    for lr in [f64::NAN, -0.1, f64::INFINITY] {
        let r = opt.step(&mut [Param::new(&mut a, &ga, true), Param::new(&mut b, &gb, true)], lr);
        assert_eq!(invalid_field(r), "lr");
    }
    assert_eq!((a.as_slice(), b.as_slice()), (&[1.0; 3][..], &[1.0; 2][..]));
    assert_eq!(opt.step_count(), 0);
    assert!(opt.state().params.iter().flatten().all(|buf| buf.data.iter().all(|&x| x == 0.0)));
    // A zero learning rate is allowed (a schedule may reach it) and leaves Adam's params alone.
    opt.step(&mut [Param::new(&mut a, &ga, true), Param::new(&mut b, &gb, true)], 0.0).unwrap();
    assert_eq!(opt.step_count(), 1);
    assert_eq!(a, vec![1.0; 3]);
}

#[test]
fn state_buffers_are_named_as_in_pytorch() {
    let names = |c: OptimizerConfig| {
        let opt = Optimizer::<f32>::new(c, &[2, 0]).unwrap();
        let state = opt.state();
        assert_eq!(state.params.len(), 2);
        assert!(state.params[0].iter().all(|b| b.data.len() == 2));
        assert!(state.params[1].iter().all(|b| b.data.is_empty()));
        state.params[0].iter().map(|b| b.name.clone()).collect::<Vec<_>>()
    };
    assert!(names(sgd_config(0.0, 0.0, false, 0.1)).is_empty());
    assert_eq!(names(sgd_config(0.9, 0.0, false, 0.0)), ["momentum_buffer"]);
    assert_eq!(names(adam_config(0.0)), ["exp_avg", "exp_avg_sq"]);
    assert_eq!(names(adamw_config(0.0)), ["exp_avg", "exp_avg_sq"]);
    assert_eq!(names(rms_config(0.0, false, 0.0)), ["square_avg"]);
    assert_eq!(names(rms_config(0.9, true, 0.0)), ["square_avg", "momentum_buffer", "grad_avg"]);
}

/// Gradients that depend on the current parameters, so a divergent state would show.
fn grad_of(p: &[f64], t: usize) -> Vec<f64> {
    p.iter().enumerate().map(|(i, &x)| (x - i as f64 * 0.3).sin() + 0.1 * t as f64).collect()
}

fn steps(opt: &mut Optimizer<f64>, w: &mut [f64], b: &mut [f64], range: std::ops::Range<usize>) {
    for t in range {
        let (gw, gb) = (grad_of(w, t), grad_of(b, t));
        let lr = 0.05 / (1.0 + t as f64);
        opt.step(&mut [Param::new(w, &gw, true), Param::new(b, &gb, false)], lr).unwrap();
    }
}

#[test]
fn state_roundtrip_continues_bit_identically() {
    for config in all_configs() {
        let (w0, b0) = (vec![0.3, -0.2, 1.0, 0.7], vec![0.05, -0.4]);
        let sizes = [w0.len(), b0.len()];

        let mut straight = Optimizer::<f64>::new(config, &sizes).unwrap();
        let (mut w1, mut b1) = (w0.clone(), b0.clone());
        steps(&mut straight, &mut w1, &mut b1, 0..7);

        for split in [0, 1, 3] {
            let mut first = Optimizer::<f64>::new(config, &sizes).unwrap();
            let (mut w2, mut b2) = (w0.clone(), b0.clone());
            steps(&mut first, &mut w2, &mut b2, 0..split);
            let mut state = first.state();
            // Order of the buffers within a parameter does not matter.
            state.params.iter_mut().for_each(|bufs| bufs.reverse());
            let mut resumed = Optimizer::<f64>::new(config, &sizes).unwrap();
            resumed.load_state(state).unwrap();
            assert_eq!(resumed.step_count(), split as u64);
            steps(&mut resumed, &mut w2, &mut b2, split..7);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&w1), bits(&w2), "{config:?} split at {split}");
            assert_eq!(bits(&b1), bits(&b2), "{config:?} split at {split}");
            assert_eq!(straight.state(), resumed.state(), "{config:?} split at {split}");
        }
    }
}

#[test]
fn load_state_rejects_mismatches_and_changes_nothing() {
    let mut donor = Optimizer::<f64>::new(adam_config(0.0), &[3, 2]).unwrap();
    let (mut w, mut b) = (vec![1.0; 3], vec![1.0; 2]);
    steps(&mut donor, &mut w, &mut b, 0..2);
    let good = donor.state();
    let mut opt = Optimizer::<f64>::new(adam_config(0.0), &[3, 2]).unwrap();
    let before = opt.state();

    let mut s = good.clone();
    s.params.pop();
    assert!(matches!(opt.load_state(s), Err(CoreError::ShapeMismatch { what, .. }) if what == "state.params"));
    let mut s = good.clone();
    s.params[1][0].data.push(0.0);
    let err = opt.load_state(s).unwrap_err();
    assert!(matches!(&err, CoreError::ShapeMismatch { what, .. } if what == "state.params[1].exp_avg"), "{err}");
    let mut s = good.clone();
    s.params[0][1].name = "square_avg".into();
    let err = opt.load_state(s).unwrap_err();
    assert!(matches!(&err, CoreError::InvalidArgument { what, .. } if what == "state.params[0]"), "{err}");
    let mut s = good.clone();
    s.params[1].pop();
    assert!(matches!(opt.load_state(s), Err(CoreError::InvalidArgument { .. })));
    let mut s = good.clone();
    let dup = s.params[0][0].clone();
    s.params[0][1] = dup;
    assert!(matches!(opt.load_state(s), Err(CoreError::InvalidArgument { .. })));
    // An SGD-with-momentum state does not fit Adam.
    let sgd = Optimizer::<f64>::new(sgd_config(0.9, 0.0, false, 0.0), &[3, 2]).unwrap();
    assert!(matches!(opt.load_state(sgd.state()), Err(CoreError::InvalidArgument { .. })));
    assert_eq!(opt.state(), before);

    opt.load_state(good.clone()).unwrap();
    assert_eq!(opt.state(), good);
}

#[test]
fn schedules_match_closed_forms() {
    let base = 0.1;
    let at = |s: LrSchedule, t: usize| {
        s.validate().unwrap();
        s.lr_at(base, t)
    };
    for t in [0, 1, 5, 1000] {
        assert_eq!(at(LrSchedule::Constant, t), base);
    }
    let step = LrSchedule::Step { step_size: 3, gamma: 0.5 };
    for (t, k) in [(0, 0), (1, 0), (2, 0), (3, 1), (5, 1), (6, 2), (10, 3)] {
        assert!((at(step, t) - base * 0.5f64.powi(k)).abs() < 1e-15, "step at {t}");
    }
    let exp = LrSchedule::Exponential { gamma: 0.9 };
    for t in [0, 1, 2, 7, 50] {
        assert!((at(exp, t) - base * 0.9f64.powi(t as i32)).abs() < 1e-15, "exponential at {t}");
    }
    let eta_min = 0.01;
    let cos = LrSchedule::Cosine { t_max: 10, eta_min };
    assert!((at(cos, 0) - base).abs() < 1e-15);
    assert!((at(cos, 5) - (eta_min + base) / 2.0).abs() < 1e-15);
    assert!((at(cos, 10) - eta_min).abs() < 1e-15);
    // A quarter period: cos(π/4) = √2/2.
    let quarter = LrSchedule::Cosine { t_max: 4, eta_min: 0.0 };
    assert!((at(quarter, 1) - base * (1.0 + 0.5f64.sqrt()) / 2.0).abs() < 1e-15);
    assert!((at(quarter, 3) - base * (1.0 - 0.5f64.sqrt()) / 2.0).abs() < 1e-15);
    // Past t_max the closed form follows the cosine back up, as in PyTorch.
    assert!((at(cos, 15) - (eta_min + base) / 2.0).abs() < 1e-15);
    assert!((at(cos, 20) - base).abs() < 1e-15);
    // Monotone decay over the half period.
    assert!((0..10).all(|t| at(cos, t + 1) < at(cos, t)));
}

#[test]
fn warmup_ramps_linearly_then_follows_the_decay() {
    let plain = Schedule::new(LrSchedule::Step { step_size: 10, gamma: 0.1 }, 0).unwrap();
    assert_eq!(plain.lr_at(1.0, 0), 1.0);
    assert!((plain.lr_at(1.0, 10) - 0.1).abs() < 1e-15);
    let warm = Schedule::new(LrSchedule::Constant, 4).unwrap();
    for (t, want) in [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0), (4, 1.0), (100, 1.0)] {
        assert_eq!(warm.lr_at(2.0, t), 2.0 * want, "warmup at {t}");
    }
    let warm_exp = Schedule::new(LrSchedule::Exponential { gamma: 0.5 }, 2).unwrap();
    assert_eq!(warm_exp.lr_at(1.0, 0), 0.5);
    assert_eq!(warm_exp.lr_at(1.0, 1), 0.5);
    assert_eq!(warm_exp.lr_at(1.0, 2), 0.25);
    let warm_cos = Schedule::new(LrSchedule::Cosine { t_max: 10, eta_min: 0.0 }, 5).unwrap();
    assert!((warm_cos.lr_at(1.0, 4) - (1.0 + (std::f64::consts::PI * 0.4).cos()) / 2.0).abs() < 1e-15);
    assert_eq!(Schedule::new(LrSchedule::Constant, 3).unwrap().lr_at(1.0, usize::MAX), 1.0);
}

#[test]
fn schedule_validation_names_the_field() {
    let what = |s: LrSchedule| invalid_field(Schedule::new(s, 0).map(|_| ()));
    assert_eq!(what(LrSchedule::Step { step_size: 0, gamma: 0.5 }), "step_size");
    assert_eq!(what(LrSchedule::Step { step_size: 2, gamma: 0.0 }), "gamma");
    assert_eq!(what(LrSchedule::Step { step_size: 2, gamma: f64::NAN }), "gamma");
    assert_eq!(what(LrSchedule::Exponential { gamma: -0.5 }), "gamma");
    assert_eq!(what(LrSchedule::Exponential { gamma: f64::INFINITY }), "gamma");
    assert_eq!(what(LrSchedule::Cosine { t_max: 0, eta_min: 0.0 }), "t_max");
    assert_eq!(what(LrSchedule::Cosine { t_max: 10, eta_min: -1e-3 }), "eta_min");
    assert_eq!(what(LrSchedule::Cosine { t_max: 10, eta_min: f64::NAN }), "eta_min");
    LrSchedule::Constant.validate().unwrap();
    LrSchedule::Step { step_size: 1, gamma: 1.5 }.validate().unwrap();
}

fn total_norm(grads: &[Vec<f64>]) -> f64 {
    grads.iter().flatten().map(|x| x * x).sum::<f64>().sqrt()
}

#[test]
fn clip_grad_norm_scales_to_max_norm() {
    let mut grads = vec![vec![3.0, 4.0], vec![], vec![12.0]];
    let original = grads.clone();
    let norm = {
        let mut views: Vec<&mut [f64]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        clip_grad_norm(&mut views, 1.0)
    };
    assert_eq!(norm, 13.0);
    assert!((total_norm(&grads) - 1.0).abs() < 1e-6, "{}", total_norm(&grads));
    // Direction kept: every element scaled by the same factor, max_norm / (norm + 1e-6).
    let scale = 1.0 / (13.0 + 1e-6);
    for (g, o) in grads.iter().flatten().zip(original.iter().flatten()) {
        assert!((g - o * scale).abs() < 1e-15);
    }
    // f32: same norm, accumulated without overflow even for large values.
    let mut big = vec![3e20f32, 4e20];
    let norm = clip_grad_norm(&mut [big.as_mut_slice()], 5.0);
    assert!((norm / 5e20 - 1.0).abs() < 1e-6, "{norm}");
    assert!(((big[0] * big[0] + big[1] * big[1]).sqrt() - 5.0).abs() < 1e-5, "{big:?}");
    // max_norm = 0 zeroes the gradients.
    let mut g = vec![1.0f64, -2.0];
    clip_grad_norm(&mut [g.as_mut_slice()], 0.0);
    assert_eq!(g, vec![0.0, -0.0]);
}

#[test]
fn clip_grad_norm_leaves_small_gradients_untouched() {
    let mut grads = vec![vec![3.0f64, 4.0], vec![12.0]];
    let original = grads.clone();
    let mut views: Vec<&mut [f64]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    assert_eq!(clip_grad_norm(&mut views, 20.0), 13.0);
    assert_eq!(clip_grad_norm(&mut views, 13.0 + 1e-6), 13.0);
    // Negative or NaN max_norm: nothing scaled, the norm is still reported.
    assert_eq!(clip_grad_norm(&mut views, -1.0), 13.0);
    assert_eq!(clip_grad_norm(&mut views, f64::NAN), 13.0);
    drop(views);
    assert_eq!(grads, original);
    assert_eq!(clip_grad_norm::<f64>(&mut [], 1.0), 0.0);
    // max_norm == norm: scale 13 / (13 + 1e-6) is just below 1 and applied, as in torch.
    let mut views: Vec<&mut [f64]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    assert_eq!(clip_grad_norm(&mut views, 13.0), 13.0);
    drop(views);
    assert!((total_norm(&grads) - 13.0).abs() < 1e-6);
}

#[test]
fn clip_grad_norm_reports_non_finite_norms_without_scaling() {
    let mut g = vec![1.0f64, f64::NAN, 2.0];
    assert!(clip_grad_norm(&mut [g.as_mut_slice()], 1.0).is_nan());
    assert_eq!(g[0], 1.0);
    assert_eq!(g[2], 2.0);
    let mut a = vec![1.0f32, 2.0];
    let mut b = vec![f32::INFINITY];
    let norm = clip_grad_norm(&mut [a.as_mut_slice(), b.as_mut_slice()], 1.0);
    assert_eq!(norm, f32::INFINITY);
    assert_eq!((a, b), (vec![1.0, 2.0], vec![f32::INFINITY]));
    // f64 squares that overflow also give an infinite (reported) norm.
    let mut g = vec![1e200f64, 1e200];
    assert_eq!(clip_grad_norm(&mut [g.as_mut_slice()], 1.0), f64::INFINITY);
    assert_eq!(g, vec![1e200, 1e200]);
}

#[test]
fn check_and_clip_names_what_went_wrong_and_clips_only_finite_gradients() {
    let mut g = vec![3.0f64, 4.0];
    let e = check_and_clip(&mut [g.as_mut_slice()], f64::NAN, Some(1.0), None, 2, 7).unwrap_err();
    assert!(matches!(&e, CoreError::NonFinite { what, epoch: 2, batch: 7, .. } if what == "loss"), "{e}");
    assert_eq!(g, vec![3.0, 4.0]);
    let mut bad = vec![1.0f64, f64::INFINITY];
    let e = check_and_clip(&mut [bad.as_mut_slice()], 0.5, None, None, 1, 1).unwrap_err();
    assert!(matches!(&e, CoreError::NonFinite { what, .. } if what == "gradient norm"), "{e}");
    // No norm limit: not scaled; a limit: scaled to it, then each element bounded by the value.
    check_and_clip(&mut [g.as_mut_slice()], 0.5, None, None, 1, 1).unwrap();
    assert_eq!(g, vec![3.0, 4.0]);
    check_and_clip(&mut [g.as_mut_slice()], 0.5, Some(1.0), Some(0.7), 1, 1).unwrap();
    assert!((g[0] - 0.6).abs() < 1e-6 && g[1] == 0.7, "{g:?}");
}

#[test]
fn clip_grad_value_bounds_every_element() {
    let mut a = vec![-3.0f32, -0.5, 0.0, 0.5, 3.0];
    let mut b = vec![10.0f32, f32::NAN, f32::NEG_INFINITY];
    clip_grad_value(&mut [a.as_mut_slice(), b.as_mut_slice()], 1.0);
    assert_eq!(a, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(b[0], 1.0);
    assert!(b[1].is_nan());
    assert_eq!(b[2], -1.0);
    assert!(a.iter().chain(&b).filter(|x| !x.is_nan()).all(|x| x.abs() <= 1.0));
    let mut c = vec![0.25f64, -0.25];
    clip_grad_value(&mut [c.as_mut_slice()], 0.0);
    assert_eq!(c, vec![0.0, 0.0]);
}
