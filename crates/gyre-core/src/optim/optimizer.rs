//! Optimizers, learning-rate schedules and gradient clipping, with PyTorch's semantics.
//!
//! [`Optimizer`] updates a fixed list of flat parameters in place from their gradients, as
//! `torch.optim.SGD`, `Adam`, `AdamW` and `RMSprop` do (see [`OptimizerConfig`] for the exact
//! update of each). Every parameter is a [`Param`]: its values, its gradient (same length) and
//! whether weight decay applies to it (weights: yes; biases: usually no — the caller decides).
//!
//! The learning rate is passed to every [`Optimizer::step`], so a [`Schedule`] (or any other
//! rule) can drive it; [`OptimizerConfig::lr`] is the base rate a schedule starts from:
//!
//! ```
//! use gyre_core::optim::{LrSchedule, Optimizer, OptimizerConfig, Param, Schedule};
//!
//! let config = OptimizerConfig::adam(0.01);
//! let schedule = Schedule::new(LrSchedule::Cosine { t_max: 100, eta_min: 0.0 }, 10)?;
//! let (mut weight, mut bias) = (vec![0.5f32; 6], vec![0.0f32; 2]);
//! let mut optimizer = Optimizer::<f32>::new(config, &[weight.len(), bias.len()])?;
//! for t in 0..100 {
//!     let (grad_weight, grad_bias) = (vec![0.1f32; 6], vec![0.2f32; 2]);
//!     let lr = schedule.lr_at(config.lr(), t) as f32;
//!     let mut params = [
//!         Param::new(&mut weight, &grad_weight, true),
//!         Param::new(&mut bias, &grad_bias, false),
//!     ];
//!     optimizer.step(&mut params, lr)?;
//! }
//! # Ok::<(), gyre_core::CoreError>(())
//! ```
//!
//! [`Optimizer::state`] and [`Optimizer::load_state`] export and import the whole optimizer
//! state (step count and per-parameter buffers, named as in PyTorch's `state_dict`) for
//! checkpoints; a restored optimizer continues bit-identically.

use crate::error::{CoreError, Result};
use crate::kernels::real::Real;

/// One parameter as the optimizer sees it: a flat value slice, its gradient and the weight
/// decay flag.
///
/// `value` and `grad` have the same length `[n]` (any tensor, flattened row-major); `n` must
/// be the size given to [`Optimizer::new`] for this position.
#[derive(Debug)]
pub struct Param<'a, F> {
    /// The parameter values, `[n]`, updated in place.
    pub value: &'a mut [F],
    /// The gradient of the loss with respect to `value`, `[n]`.
    pub grad: &'a [F],
    /// Whether weight decay applies to this parameter (usual choice: weights yes, biases no).
    pub decay: bool,
}

impl<'a, F> Param<'a, F> {
    /// A parameter from its values `[n]`, gradient `[n]` and weight decay flag.
    pub fn new(value: &'a mut [F], grad: &'a [F], decay: bool) -> Self {
        Param { value, grad, decay }
    }
}

/// An optimizer and its hyperparameters, following `torch.optim` exactly.
///
/// Below, `g` is the gradient, `p` the parameter, `t` the step number (1 for the first step)
/// and `lr` the learning rate passed to [`Optimizer::step`]; the field `lr` is only the base
/// rate (see [`OptimizerConfig::lr`]). Weight decay only touches parameters whose
/// [`Param::decay`] is `true`. All fields are `f64` whatever the element type; they are
/// rounded to `F` when used, as PyTorch does with its Python-float hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`: `g += weight_decay·p`; with `momentum ≠ 0`, `b = g` on the first
    /// step and `b = momentum·b + (1 − dampening)·g` after it, then `g = g + momentum·b`
    /// (Nesterov) or `g = b`; finally `p -= lr·g`. State: `momentum_buffer` (only when
    /// `momentum ≠ 0`).
    Sgd {
        /// Base learning rate, finite and `> 0`.
        lr: f64,
        /// Momentum factor, finite and `≥ 0` (0: plain gradient descent).
        momentum: f64,
        /// Dampening of the momentum, in `[0, 1]`.
        dampening: f64,
        /// Nesterov momentum; needs `momentum > 0` and `dampening = 0`.
        nesterov: bool,
        /// L2 penalty added to the gradient, finite and `≥ 0`.
        weight_decay: f64,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient): `g += weight_decay·p`,
    /// `m = β1·m + (1 − β1)·g`, `v = β2·v + (1 − β2)·g²`,
    /// `p -= lr·(m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps)`. State: `exp_avg`, `exp_avg_sq`.
    Adam {
        /// Base learning rate, finite and `> 0`.
        lr: f64,
        /// Decay of the first moment, in `[0, 1)`.
        beta1: f64,
        /// Decay of the second moment, in `[0, 1)`.
        beta2: f64,
        /// Added to the denominator, finite and `> 0`.
        eps: f64,
        /// L2 penalty added to the gradient, finite and `≥ 0`.
        weight_decay: f64,
    },
    /// `torch.optim.AdamW` (decoupled weight decay): `p -= lr·weight_decay·p`, then the Adam
    /// update above with the raw gradient. State: `exp_avg`, `exp_avg_sq`.
    AdamW {
        /// Base learning rate, finite and `> 0`.
        lr: f64,
        /// Decay of the first moment, in `[0, 1)`.
        beta1: f64,
        /// Decay of the second moment, in `[0, 1)`.
        beta2: f64,
        /// Added to the denominator, finite and `> 0`.
        eps: f64,
        /// Decoupled weight decay, finite and `≥ 0` (PyTorch's default is `0.01`).
        weight_decay: f64,
    },
    /// `torch.optim.RMSprop`: `g += weight_decay·p`, `v = α·v + (1 − α)·g²`; centered:
    /// `ḡ = α·ḡ + (1 − α)·g` and `d = √(v − ḡ²) + eps`, else `d = √v + eps`; with
    /// `momentum > 0`, `b = momentum·b + g/d` and `p -= lr·b`, else `p -= lr·g/d`.
    /// State: `square_avg`, `momentum_buffer` (when `momentum > 0`), `grad_avg` (centered).
    RmsProp {
        /// Base learning rate, finite and `> 0`.
        lr: f64,
        /// Smoothing constant of the squared-gradient average, in `[0, 1)`.
        alpha: f64,
        /// Added to the denominator, finite and `> 0`.
        eps: f64,
        /// Momentum factor, finite and `≥ 0`.
        momentum: f64,
        /// Normalizes by the variance of the gradient instead of its second moment.
        centered: bool,
        /// L2 penalty added to the gradient, finite and `≥ 0`.
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// SGD with PyTorch's defaults: no momentum, no dampening, no Nesterov, no weight decay.
    pub fn sgd(lr: f64) -> Self {
        OptimizerConfig::Sgd { lr, momentum: 0.0, dampening: 0.0, nesterov: false, weight_decay: 0.0 }
    }

    /// Adam with PyTorch's defaults: betas `(0.9, 0.999)`, eps `1e-8`, no weight decay.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }

    /// AdamW with PyTorch's defaults: betas `(0.9, 0.999)`, eps `1e-8`, weight decay `0.01`.
    pub fn adamw(lr: f64) -> Self {
        OptimizerConfig::AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }

    /// RMSprop with PyTorch's defaults: alpha `0.99`, eps `1e-8`, no momentum, not centered,
    /// no weight decay.
    pub fn rmsprop(lr: f64) -> Self {
        OptimizerConfig::RmsProp { lr, alpha: 0.99, eps: 1e-8, momentum: 0.0, centered: false, weight_decay: 0.0 }
    }

    /// The base learning rate (the `lr` field), the rate a [`Schedule`] starts from.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. }
            | OptimizerConfig::RmsProp { lr, .. } => lr,
        }
    }

    /// The optimizer's PyTorch class name: `SGD`, `Adam`, `AdamW` or `RMSprop`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "SGD",
            OptimizerConfig::Adam { .. } => "Adam",
            OptimizerConfig::AdamW { .. } => "AdamW",
            OptimizerConfig::RmsProp { .. } => "RMSprop",
        }
    }

    /// Checks every field; the [`CoreError::InvalidArgument`] names the first bad one (`lr`,
    /// `momentum`, `dampening`, `nesterov`, `weight_decay`, `beta1`, `beta2`, `eps`, `alpha`).
    /// Non-finite values are always rejected.
    pub fn validate(&self) -> Result<()> {
        match *self {
            OptimizerConfig::Sgd { lr, momentum, dampening, nesterov, weight_decay } => {
                positive_finite("lr", lr)?;
                non_negative("momentum", momentum)?;
                check("dampening", dampening, (0.0..=1.0).contains(&dampening), "in [0, 1]")?;
                non_negative("weight_decay", weight_decay)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(CoreError::invalid(
                        "nesterov",
                        "used with momentum > 0 and dampening = 0",
                        format!("true with momentum = {momentum}, dampening = {dampening}"),
                    ));
                }
            }
            OptimizerConfig::Adam { lr, beta1, beta2, eps, weight_decay }
            | OptimizerConfig::AdamW { lr, beta1, beta2, eps, weight_decay } => {
                positive_finite("lr", lr)?;
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                positive_finite("eps", eps)?;
                non_negative("weight_decay", weight_decay)?;
            }
            OptimizerConfig::RmsProp { lr, alpha, eps, momentum, centered: _, weight_decay } => {
                positive_finite("lr", lr)?;
                unit("alpha", alpha)?;
                positive_finite("eps", eps)?;
                non_negative("momentum", momentum)?;
                non_negative("weight_decay", weight_decay)?;
            }
        }
        Ok(())
    }

    /// The names of the per-parameter state buffers this configuration keeps, in the order of
    /// [`OptimizerState::params`] (PyTorch's `state_dict` names).
    pub fn buffer_names(&self) -> Vec<&'static str> {
        match *self {
            OptimizerConfig::Sgd { momentum, .. } => {
                if momentum != 0.0 {
                    vec![MOMENTUM_BUFFER]
                } else {
                    Vec::new()
                }
            }
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => vec![EXP_AVG, EXP_AVG_SQ],
            OptimizerConfig::RmsProp { momentum, centered, .. } => {
                let mut names = vec![SQUARE_AVG];
                if momentum > 0.0 {
                    names.push(MOMENTUM_BUFFER);
                }
                if centered {
                    names.push(GRAD_AVG);
                }
                names
            }
        }
    }
}

const MOMENTUM_BUFFER: &str = "momentum_buffer";
const EXP_AVG: &str = "exp_avg";
const EXP_AVG_SQ: &str = "exp_avg_sq";
const SQUARE_AVG: &str = "square_avg";
const GRAD_AVG: &str = "grad_avg";

fn check(what: &str, value: f64, ok: bool, expected: &str) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(CoreError::invalid(what, expected, value))
    }
}

fn positive_finite(what: &str, value: f64) -> Result<()> {
    check(what, value, value > 0.0, "finite and > 0")
}

fn non_negative(what: &str, value: f64) -> Result<()> {
    check(what, value, value >= 0.0, "finite and >= 0")
}

fn unit(what: &str, value: f64) -> Result<()> {
    check(what, value, (0.0..1.0).contains(&value), "in [0, 1)")
}

/// One named state buffer of one parameter, `[n]` like the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedBuffer<F> {
    /// The buffer's name, as in PyTorch's `state_dict` (`momentum_buffer`, `exp_avg`,
    /// `exp_avg_sq`, `square_avg`, `grad_avg`).
    pub name: String,
    /// Its values, `[n]`.
    pub data: Vec<F>,
}

/// A snapshot of an [`Optimizer`]'s state for checkpoints: everything needed, together with
/// the same [`OptimizerConfig`] and parameter sizes, to continue bit-identically.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<F> {
    /// Number of steps taken so far (Adam's bias corrections and SGD's first momentum step
    /// depend on it).
    pub step: u64,
    /// Per parameter, in construction order: its buffers, named as
    /// [`OptimizerConfig::buffer_names`] lists them (possibly none, e.g. SGD without momentum).
    pub params: Vec<Vec<NamedBuffer<F>>>,
}

/// An optimizer over a fixed list of parameters: the configuration plus per-parameter state,
/// allocated once by [`Optimizer::new`].
#[derive(Debug, Clone)]
pub struct Optimizer<F> {
    config: OptimizerConfig,
    sizes: Vec<usize>,
    step: u64,
    /// Per parameter, per name of `config.buffer_names()` (same order): `[sizes[i]]` values.
    buffers: Vec<Vec<Vec<F>>>,
}

impl<F: Real> Optimizer<F> {
    /// An optimizer for parameters of `sizes[i]` values each, with zeroed state. Fails with
    /// [`CoreError::InvalidArgument`] if [`OptimizerConfig::validate`] does.
    pub fn new(config: OptimizerConfig, sizes: &[usize]) -> Result<Self> {
        config.validate()?;
        let names = config.buffer_names().len();
        let buffers = sizes.iter().map(|&n| (0..names).map(|_| vec![F::zero(); n]).collect()).collect();
        Ok(Optimizer { config, sizes: sizes.to_vec(), step: 0, buffers })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The parameter sizes given at construction.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Number of steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One update of every parameter in place with learning rate `lr` (the rate for this step,
    /// e.g. from [`Schedule::lr_at`]; finite and `≥ 0`).
    ///
    /// `params` must hold as many parameters as the sizes given to [`Optimizer::new`], in the
    /// same order, each with `value` and `grad` of that size; otherwise a
    /// [`CoreError::ShapeMismatch`] names the parameter (`params[i].value`, `params[i].grad`)
    /// and nothing changes. Non-finite gradients are not checked: they propagate into the
    /// parameters and state, as in PyTorch (clip or check them first, see [`clip_grad_norm`]).
    pub fn step(&mut self, params: &mut [Param<'_, F>], lr: F) -> Result<()> {
        if !(lr.is_finite() && lr >= F::zero()) {
            return Err(CoreError::invalid("lr", "finite and >= 0", lr));
        }
        if params.len() != self.sizes.len() {
            return Err(CoreError::shape(
                "params",
                format!("{} parameters (as at construction)", self.sizes.len()),
                format!("{} parameters", params.len()),
            ));
        }
        for (i, (param, &n)) in params.iter().zip(&self.sizes).enumerate() {
            if param.value.len() != n {
                return Err(CoreError::shape(
                    format!("params[{i}].value"),
                    format!("[{n}] (as at construction)"),
                    format!("[{}]", param.value.len()),
                ));
            }
            if param.grad.len() != n {
                return Err(CoreError::shape(
                    format!("params[{i}].grad"),
                    format!("[{n}] (as params[{i}].value)"),
                    format!("[{}]", param.grad.len()),
                ));
            }
        }
        self.step += 1;
        let t = self.step;
        for (param, buffers) in params.iter_mut().zip(self.buffers.iter_mut()) {
            let mut buffers = buffers.iter_mut().map(Vec::as_mut_slice);
            let (p, g, decay) = (&mut *param.value, param.grad, param.decay);
            match self.config {
                OptimizerConfig::Sgd { momentum, dampening, nesterov, weight_decay, .. } => {
                    let wd = if decay { weight_decay } else { 0.0 };
                    let hyper = SgdHyper {
                        lr,
                        momentum: F::lit(momentum),
                        dampening: F::lit(dampening),
                        nesterov,
                        weight_decay: F::lit(wd),
                        first: t == 1,
                    };
                    sgd(p, g, buffers.next(), &hyper);
                }
                OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, .. } => {
                    let wd = if decay { weight_decay } else { 0.0 };
                    let hyper = AdamHyper::new(lr, beta1, beta2, eps, t);
                    if let (Some(m), Some(v)) = (buffers.next(), buffers.next()) {
                        adam(p, g, m, v, F::lit(wd), &hyper);
                    }
                }
                OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay, .. } => {
                    if decay && weight_decay != 0.0 {
                        // torch: param.mul_(1 - lr * weight_decay)
                        let keep = F::one() - lr * F::lit(weight_decay);
                        p.iter_mut().for_each(|x| *x = *x * keep);
                    }
                    let hyper = AdamHyper::new(lr, beta1, beta2, eps, t);
                    if let (Some(m), Some(v)) = (buffers.next(), buffers.next()) {
                        adam(p, g, m, v, F::zero(), &hyper);
                    }
                }
                OptimizerConfig::RmsProp { alpha, eps, momentum, centered, weight_decay, .. } => {
                    let wd = if decay { weight_decay } else { 0.0 };
                    let hyper = RmsHyper {
                        lr,
                        alpha: F::lit(alpha),
                        eps: F::lit(eps),
                        momentum: F::lit(momentum),
                        weight_decay: F::lit(wd),
                    };
                    let square_avg = buffers.next();
                    let momentum_buffer = if momentum > 0.0 { buffers.next() } else { None };
                    let grad_avg = if centered { buffers.next() } else { None };
                    if let Some(square_avg) = square_avg {
                        rmsprop(p, g, square_avg, momentum_buffer, grad_avg, &hyper);
                    }
                }
            }
        }
        Ok(())
    }

    /// A copy of the whole state: step count and every buffer, named.
    pub fn state(&self) -> OptimizerState<F> {
        let names = self.config.buffer_names();
        let params = self
            .buffers
            .iter()
            .map(|bufs| {
                names
                    .iter()
                    .zip(bufs)
                    .map(|(&name, data)| NamedBuffer { name: name.into(), data: data.clone() })
                    .collect()
            })
            .collect();
        OptimizerState { step: self.step, params }
    }

    /// Replaces the state with `state` (from [`Optimizer::state`] of an optimizer with the same
    /// configuration kind and sizes). Buffers may come in any order but must be exactly those
    /// of [`OptimizerConfig::buffer_names`], each `[sizes[i]]`; otherwise a
    /// [`CoreError::ShapeMismatch`] (wrong count or length) or [`CoreError::InvalidArgument`]
    /// (wrong names) names the offending `state.params[i]` and nothing changes.
    pub fn load_state(&mut self, state: OptimizerState<F>) -> Result<()> {
        let names = self.config.buffer_names();
        if state.params.len() != self.sizes.len() {
            return Err(CoreError::shape(
                "state.params",
                format!("{} parameters", self.sizes.len()),
                format!("{} parameters", state.params.len()),
            ));
        }
        for (i, (bufs, &n)) in state.params.iter().zip(&self.sizes).enumerate() {
            let mut got: Vec<&str> = bufs.iter().map(|b| b.name.as_str()).collect();
            let mut want = names.clone();
            got.sort_unstable();
            want.sort_unstable();
            if got != want {
                return Err(CoreError::invalid(
                    format!("state.params[{i}]"),
                    format!("buffers {names:?} for {}", self.config.name()),
                    format!("{:?}", bufs.iter().map(|b| b.name.as_str()).collect::<Vec<_>>()),
                ));
            }
            if let Some(b) = bufs.iter().find(|b| b.data.len() != n) {
                return Err(CoreError::shape(
                    format!("state.params[{i}].{}", b.name),
                    format!("[{n}]"),
                    format!("[{}]", b.data.len()),
                ));
            }
        }
        let mut buffers = Vec::with_capacity(state.params.len());
        for bufs in state.params {
            let mut bufs: Vec<Option<NamedBuffer<F>>> = bufs.into_iter().map(Some).collect();
            let mut ordered = Vec::with_capacity(names.len());
            for &name in &names {
                let data = bufs
                    .iter_mut()
                    .find(|b| b.as_ref().is_some_and(|b| b.name == name))
                    .and_then(Option::take)
                    .map(|b| b.data)
                    .ok_or_else(|| CoreError::invalid("state.params", format!("a buffer named {name}"), "none"))?;
                ordered.push(data);
            }
            buffers.push(ordered);
        }
        self.buffers = buffers;
        self.step = state.step;
        Ok(())
    }
}

struct SgdHyper<F> {
    lr: F,
    momentum: F,
    dampening: F,
    nesterov: bool,
    weight_decay: F,
    first: bool,
}

fn sgd<F: Real>(p: &mut [F], g: &[F], buf: Option<&mut [F]>, h: &SgdHyper<F>) {
    let zero = F::zero();
    let mut buf = buf.filter(|_| h.momentum != zero).map(|b| b.iter_mut());
    for (p, &g) in p.iter_mut().zip(g) {
        let mut d = g;
        if h.weight_decay != zero {
            d = d + h.weight_decay * *p;
        }
        if let Some(b) = buf.as_mut().and_then(Iterator::next) {
            *b = if h.first { d } else { h.momentum * *b + (F::one() - h.dampening) * d };
            d = if h.nesterov { d + h.momentum * *b } else { *b };
        }
        *p = *p - h.lr * d;
    }
}

struct AdamHyper<F> {
    beta1: F,
    beta2: F,
    eps: F,
    /// `lr / (1 − β1^t)`.
    step_size: F,
    /// `√(1 − β2^t)`.
    bias_correction2_sqrt: F,
}

impl<F: Real> AdamHyper<F> {
    fn new(lr: F, beta1: f64, beta2: f64, eps: f64, t: u64) -> Self {
        // Like torch, the bias corrections are computed in double precision.
        let t = t as f64;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        AdamHyper {
            beta1: F::lit(beta1),
            beta2: F::lit(beta2),
            eps: F::lit(eps),
            step_size: lr / F::lit(bias_correction1),
            bias_correction2_sqrt: F::lit(bias_correction2.sqrt()),
        }
    }
}

/// Adam over one parameter; a large one in blocks side by side on the pool (element-wise
/// arithmetic: the same bits on any number of threads).
fn adam<F: Real>(p: &mut [F], g: &[F], m: &mut [F], v: &mut [F], weight_decay: F, h: &AdamHyper<F>) {
    const BLOCK: usize = 1 << 15;
    let hp = [weight_decay, h.beta1, h.beta2, h.bias_correction2_sqrt, h.eps, h.step_size];
    if p.len() >= 2 * BLOCK && crate::kernels::threads::can_split() {
        use rayon::prelude::*;
        p.par_chunks_mut(BLOCK)
            .zip(g.par_chunks(BLOCK))
            .zip(m.par_chunks_mut(BLOCK))
            .zip(v.par_chunks_mut(BLOCK))
            .for_each(|(((p, g), m), v)| F::adam_update(p, g, m, v, hp));
    } else {
        F::adam_update(p, g, m, v, hp);
    }
}

struct RmsHyper<F> {
    lr: F,
    alpha: F,
    eps: F,
    momentum: F,
    weight_decay: F,
}

fn rmsprop<F: Real>(
    p: &mut [F],
    g: &[F],
    square_avg: &mut [F],
    momentum_buffer: Option<&mut [F]>,
    grad_avg: Option<&mut [F]>,
    h: &RmsHyper<F>,
) {
    let (zero, one) = (F::zero(), F::one());
    let mut momentum_buffer = momentum_buffer.map(|b| b.iter_mut());
    let mut grad_avg = grad_avg.map(|b| b.iter_mut());
    for ((p, &g), v) in p.iter_mut().zip(g).zip(square_avg.iter_mut()) {
        let d = if h.weight_decay != zero { g + h.weight_decay * *p } else { g };
        *v = h.alpha * *v + (one - h.alpha) * d * d;
        let avg = match grad_avg.as_mut().and_then(Iterator::next) {
            Some(ga) => {
                *ga = h.alpha * *ga + (one - h.alpha) * d;
                // v − ḡ² ≥ 0 in exact arithmetic; clamp rounding below zero (torch would give NaN).
                (*v - *ga * *ga).max(zero).sqrt() + h.eps
            }
            None => v.sqrt() + h.eps,
        };
        match momentum_buffer.as_mut().and_then(Iterator::next) {
            Some(b) => {
                *b = h.momentum * *b + d / avg;
                *p = *p - h.lr * *b;
            }
            None => *p = *p - h.lr * (d / avg),
        }
    }
}

/// How the learning rate decays, as a factor of the base rate at tick `t` (`t = 0` first).
///
/// One counter drives everything: `t` counts scheduler ticks, and every length below
/// (`step_size`, `t_max`, and [`Schedule::warmup_steps`]) is in ticks. PyTorch's usual use is
/// one tick per epoch; ticking once per optimizer step works the same with lengths in steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// `base_lr` at every tick.
    Constant,
    /// `torch.optim.lr_scheduler.StepLR`: `base_lr · gamma^⌊t / step_size⌋`.
    Step {
        /// Ticks between decays, `> 0`.
        step_size: usize,
        /// Multiplicative factor per decay, finite and `> 0`.
        gamma: f64,
    },
    /// `torch.optim.lr_scheduler.ExponentialLR`: `base_lr · gamma^t`.
    Exponential {
        /// Multiplicative factor per tick, finite and `> 0`.
        gamma: f64,
    },
    /// `torch.optim.lr_scheduler.CosineAnnealingLR`, closed form:
    /// `eta_min + (base_lr − eta_min)·(1 + cos(π·t / t_max)) / 2`. It reaches `eta_min` at
    /// `t = t_max` and, like PyTorch's, keeps following the cosine after it (rising back to
    /// `base_lr` at `2·t_max`): stop at `t_max` or pick `t_max` = the run length.
    Cosine {
        /// Half period in ticks, `> 0`.
        t_max: usize,
        /// Minimum learning rate, finite and `≥ 0`.
        eta_min: f64,
    },
}

impl LrSchedule {
    /// Checks every field; the [`CoreError::InvalidArgument`] names the bad one (`step_size`,
    /// `gamma`, `t_max`, `eta_min`).
    pub fn validate(&self) -> Result<()> {
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(CoreError::invalid("step_size", "a positive integer", step_size));
                }
                positive_finite("gamma", gamma)
            }
            LrSchedule::Exponential { gamma } => positive_finite("gamma", gamma),
            LrSchedule::Cosine { t_max, eta_min } => {
                if t_max == 0 {
                    return Err(CoreError::invalid("t_max", "a positive integer", t_max));
                }
                non_negative("eta_min", eta_min)
            }
        }
    }

    /// The learning rate at tick `t` (0 for the first) from `base_lr`. Call
    /// [`LrSchedule::validate`] first: invalid fields give meaningless (possibly non-finite)
    /// rates.
    pub fn lr_at(&self, base_lr: f64, t: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base_lr,
            LrSchedule::Step { step_size, gamma } => base_lr * gamma.powf((t / step_size.max(1)) as f64),
            LrSchedule::Exponential { gamma } => base_lr * gamma.powf(t as f64),
            LrSchedule::Cosine { t_max, eta_min } => {
                let phase = std::f64::consts::PI * t as f64 / t_max as f64;
                eta_min + (base_lr - eta_min) * (1.0 + phase.cos()) / 2.0
            }
        }
    }
}

/// A decay schedule with an optional linear warmup: the rate of `decay` at tick `t`,
/// multiplied by `min(1, (t + 1) / warmup_steps)` (no warmup when `warmup_steps` is 0).
/// `t` and `warmup_steps` count the same ticks as the decay (see [`LrSchedule`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The decay of the base rate.
    pub decay: LrSchedule,
    /// Ticks of linear warmup; 0 for none.
    pub warmup_steps: usize,
}

impl Schedule {
    /// A validated schedule (see [`LrSchedule::validate`]).
    pub fn new(decay: LrSchedule, warmup_steps: usize) -> Result<Self> {
        let schedule = Schedule { decay, warmup_steps };
        schedule.validate()?;
        Ok(schedule)
    }

    /// Checks the decay's fields (any `warmup_steps` is valid).
    pub fn validate(&self) -> Result<()> {
        self.decay.validate()
    }

    /// The learning rate at tick `t` (0 for the first) from `base_lr`: `decay.lr_at(base_lr, t)
    /// · min(1, (t + 1) / warmup_steps)`.
    pub fn lr_at(&self, base_lr: f64, t: usize) -> f64 {
        let lr = self.decay.lr_at(base_lr, t);
        if self.warmup_steps == 0 {
            return lr;
        }
        lr * (t.saturating_add(1) as f64 / self.warmup_steps as f64).min(1.0)
    }
}

/// Total L2 norm of all gradients; if above `max_norm`, scales them all in place by
/// `max_norm / (norm + 1e-6)`, as `torch.nn.utils.clip_grad_norm_` does.
///
/// `grads` is any list of flat gradients. Returns the total norm before clipping, computed
/// as `√Σ g²` in a fixed order (the lanes of [`crate::Real::square_sums`] over the gradients
/// in turn, then a fixed tree), accumulated in `f64` (so identical inputs always give the
/// identical norm, on every SIMD level, and `f32` squares do not overflow).
///
/// A non-finite total (a NaN or infinite gradient, or an overflowing sum) is returned as is
/// and the gradients are left untouched: check the result with `is_finite` and skip the step
/// (PyTorch would instead scale every gradient by NaN or 0). `max_norm` must be `≥ 0`; with
/// a NaN or negative `max_norm` nothing is scaled.
pub fn clip_grad_norm<F: Real>(grads: &mut [&mut [F]], max_norm: F) -> F {
    // Independent f64 lanes (a fixed order, so the same bits every run), summed at the end by
    // a fixed tree: one long dependent chain of additions was the slowest part of a small
    // model's update.
    let mut lanes = [0.0f64; crate::kernels::real::SQUARE_LANES];
    for g in grads.iter() {
        F::square_sums(g, &mut lanes);
    }
    let mut width = lanes.len();
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    let sum = lanes[0];
    let norm = sum.sqrt();
    if !norm.is_finite() {
        return F::lit(norm);
    }
    let max_norm_f64 = max_norm.to_f64().unwrap_or(f64::NAN);
    let scale = max_norm_f64 / (norm + 1e-6);
    if (0.0..1.0).contains(&scale) {
        let scale = F::lit(scale);
        for g in grads.iter_mut() {
            g.iter_mut().for_each(|x| *x = *x * scale);
        }
    }
    F::lit(norm)
}

/// Clamps every gradient element to `[-clip, clip]` in place, as
/// `torch.nn.utils.clip_grad_value_` does. `clip` must be `≥ 0`; NaN elements stay NaN.
pub fn clip_grad_value<F: Real>(grads: &mut [&mut [F]], clip: F) {
    for g in grads.iter_mut() {
        for x in g.iter_mut() {
            if *x > clip {
                *x = clip;
            } else if *x < -clip {
                *x = -clip;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---------------------------------------------------------------------------------------
    // Reference implementations: scalar loops written from the torch.optim documentation's
    // pseudo-code, line by line, in f64. They share no code with the implementation above.
    // ---------------------------------------------------------------------------------------

    /// Fixed gradients for 3 steps of a parameter: the same pattern, scaled and sign-flipped.
    fn grads_for(base: &[f64]) -> Vec<Vec<f64>> {
        [1.0, -0.5, 2.0]
            .iter()
            .map(|s| base.iter().enumerate().map(|(i, g)| s * g + 0.01 * i as f64).collect())
            .collect()
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
        check_against_reference(OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 0.0,
            beta2: 0.5,
            eps: 1e-3,
            weight_decay: 0.2,
        });
    }

    #[test]
    fn adamw_matches_reference() {
        check_against_reference(adamw_config(0.0));
        check_against_reference(adamw_config(0.1));
        check_against_reference(OptimizerConfig::AdamW {
            lr: 0.1,
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-3,
            weight_decay: 0.5,
        });
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
}
