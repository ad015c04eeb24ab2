//! The optimizer: its configuration ([`OptimizerConfig`], with PyTorch's defaults and checks),
//! its parameters ([`Param`]), one step over all of them, and its exportable state.

use super::adam::{adam, AdamHyper};
use super::rmsprop::{rmsprop, RmsHyper};
use super::sgd::{sgd, SgdHyper};
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

/// The parameters of a model kept as flat `values` with their `shapes`, and their `grads` (one
/// per value, same lengths), weight decay on the matrices (2-D shapes) only.
pub fn matrix_decay_params<'a, F>(
    values: &'a mut [Vec<F>],
    grads: &'a [Vec<F>],
    shapes: &[Vec<usize>],
) -> Vec<Param<'a, F>> {
    values.iter_mut().zip(grads).zip(shapes).map(|((v, g), s)| Param::new(v, g, s.len() == 2)).collect()
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

    /// The base learning rate (the `lr` field), the rate a [`Schedule`](crate::optim::Schedule) starts from.
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

pub(super) fn positive_finite(what: &str, value: f64) -> Result<()> {
    check(what, value, value > 0.0, "finite and > 0")
}

pub(super) fn non_negative(what: &str, value: f64) -> Result<()> {
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
    /// e.g. from [`Schedule::lr_at`](crate::optim::Schedule::lr_at); finite and `≥ 0`).
    ///
    /// `params` must hold as many parameters as the sizes given to [`Optimizer::new`], in the
    /// same order, each with `value` and `grad` of that size; otherwise a
    /// [`CoreError::ShapeMismatch`] names the parameter (`params[i].value`, `params[i].grad`)
    /// and nothing changes. Non-finite gradients are not checked: they propagate into the
    /// parameters and state, as in PyTorch (clip or check them first, see [`clip_grad_norm`](crate::optim::clip_grad_norm)).
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
