//! Learning-rate schedules: step, exponential and cosine decay, with linear warmup.

use super::optimizer::{non_negative, positive_finite};
use crate::error::{CoreError, Result};

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
    /// `torch.optim.lr_scheduler.ReduceLROnPlateau` in mode `'min'`, ticked once per epoch
    /// with the monitored loss (see [`Plateau`]): the rate is multiplied by `factor` (not
    /// below `min_lr`) when the loss has not improved for more than `patience` epochs, then
    /// `cooldown` epochs pass before counting again. Not a function of `t` alone: its state
    /// lives in the model ([`crate::Model`]'s `plateau`).
    Plateau {
        /// Multiplies the rate at each reduction, in `(0, 1)`.
        factor: f64,
        /// Epochs without improvement tolerated before a reduction.
        patience: usize,
        /// How much better counts as better, finite and `≥ 0`.
        threshold: f64,
        /// `threshold` relative (`best·(1 − threshold)`, PyTorch's default) or absolute.
        relative: bool,
        /// Epochs after a reduction before bad epochs count again.
        cooldown: usize,
        /// The lowest rate, finite and `≥ 0`.
        min_lr: f64,
    },
}

/// The state of a [`LrSchedule::Plateau`] schedule between epochs (and `fit` calls, and
/// saves): PyTorch's `ReduceLROnPlateau` fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plateau {
    /// The current rate (before warmup).
    pub lr: f64,
    /// The best monitored loss so far (`+∞` before the first epoch).
    pub best: f64,
    /// Epochs since the last improvement.
    pub bad_epochs: usize,
    /// Epochs of cooldown left.
    pub cooldown_left: usize,
}

impl Plateau {
    /// The state before the first epoch, at rate `lr`.
    pub fn new(lr: f64) -> Self {
        Plateau { lr, best: f64::INFINITY, bad_epochs: 0, cooldown_left: 0 }
    }

    /// One epoch's tick with its monitored loss `current` (PyTorch's `step(metrics)`): updates
    /// the state and returns the rate for the next epoch. `schedule` must be a
    /// [`LrSchedule::Plateau`]; others leave the state as it is.
    pub fn step(&mut self, schedule: &LrSchedule, current: f64) -> f64 {
        let LrSchedule::Plateau { factor, patience, threshold, relative, cooldown, min_lr } = *schedule else {
            return self.lr;
        };
        let better = if relative { current < self.best * (1.0 - threshold) } else { current < self.best - threshold };
        if better {
            self.best = current;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > patience {
            let new_lr = (self.lr * factor).max(min_lr);
            // PyTorch's eps: changes smaller than 1e-8 are not made.
            if self.lr - new_lr > 1e-8 {
                self.lr = new_lr;
            }
            self.cooldown_left = cooldown;
            self.bad_epochs = 0;
        }
        self.lr
    }
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
            LrSchedule::Plateau { factor, threshold, min_lr, .. } => {
                if !(factor > 0.0 && factor < 1.0) {
                    return Err(CoreError::invalid("factor", "a number in (0, 1)", factor));
                }
                non_negative("threshold", threshold)?;
                non_negative("min_lr", min_lr)
            }
        }
    }

    /// The learning rate at tick `t` (0 for the first) from `base_lr`. Call
    /// [`LrSchedule::validate`] first: invalid fields give meaningless (possibly non-finite)
    /// rates.
    pub fn lr_at(&self, base_lr: f64, t: usize) -> f64 {
        match *self {
            // The plateau's rate is its state's; `fit` reads it from there.
            LrSchedule::Constant | LrSchedule::Plateau { .. } => base_lr,
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
