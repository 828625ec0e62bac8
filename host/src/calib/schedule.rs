//! Learning-rate schedules and the Adam optimizer for DQC.
//!
//! # Adam
//!
//! `candle_nn::AdamW` with `weight_decay = 0` **is** Adam (checked in
//! candle-nn 0.11.1 `src/optim.rs`): per step `t` it computes
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `m̂ = m/(1−β₁ᵗ)`,
//! `v̂ = v/(1−β₂ᵗ)`, `θ ← θ·(1 − lr·λ) − lr·m̂/(√v̂ + ε)`; with `λ = 0` the
//! decay factor is exactly 1. PyTorch's `Adam` (no amsgrad, no maximize)
//! computes `θ ← θ − (lr/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + ε)`, the same formula
//! with `ε` added after the bias correction. Only the f32 rounding of the
//! intermediate products differs. So [`adam`] just builds an `AdamW` with
//! `weight_decay = 0`, and [`AdamConfig`] exposes the betas.
//!
//! # Schedules
//!
//! [`LrSchedule::lr_at`]`(t)` is the learning rate of the `t`-th optimizer
//! step (0-based), i.e. PyTorch's `scheduler.get_last_lr()` after `t` calls
//! of `scheduler.step()`, each made after an optimizer step.

use candle_core::{Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// A learning-rate schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum LrSchedule {
    /// Constant `lr` (the released yml: MultiStepLR with its only milestone,
    /// 10000, beyond the 4000 iterations).
    Constant {
        /// The learning rate.
        lr: f64,
    },
    /// PyTorch `CosineAnnealingLR` (closed form):
    /// `lr_t = η_min + (lr₀ − η_min)·(1 + cos(π·t/T_max))/2`. Past `T_max`
    /// the formula keeps following the cosine, as PyTorch's does. The paper
    /// uses this with `η_min = 0`, `T_max` = number of iterations.
    Cosine {
        /// Initial learning rate `lr₀`.
        lr0: f64,
        /// Half period `T_max` (iterations); must be ≥ 1.
        t_max: usize,
        /// Floor `η_min`.
        eta_min: f64,
    },
    /// PyTorch `MultiStepLR`: `lr₀·γ^{#milestones ≤ t}`.
    MultiStep {
        /// Initial learning rate.
        lr0: f64,
        /// Step indices at which the rate is multiplied by `gamma`.
        milestones: Vec<usize>,
        /// Decay factor.
        gamma: f64,
    },
}

impl LrSchedule {
    /// Cosine annealing to 0 over `t_max` steps.
    pub fn cosine(lr0: f64, t_max: usize) -> Self {
        Self::Cosine {
            lr0,
            t_max,
            eta_min: 0.0,
        }
    }

    /// Learning rate of optimizer step `t` (0-based).
    pub fn lr_at(&self, t: usize) -> f64 {
        match self {
            Self::Constant { lr } => *lr,
            Self::Cosine {
                lr0,
                t_max,
                eta_min,
            } => {
                let tm = (*t_max).max(1) as f64;
                eta_min
                    + (lr0 - eta_min) * (1.0 + (std::f64::consts::PI * t as f64 / tm).cos()) / 2.0
            }
            Self::MultiStep {
                lr0,
                milestones,
                gamma,
            } => {
                let k = milestones.iter().filter(|&&m| m <= t).count();
                lr0 * gamma.powi(k as i32)
            }
        }
    }
}

/// Adam hyper-parameters (no weight decay).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (overridden each step by a schedule, if one is used).
    pub lr: f64,
    /// `β₁`.
    pub beta1: f64,
    /// `β₂`.
    pub beta2: f64,
    /// `ε` (PyTorch default 1e-8).
    pub eps: f64,
}

impl AdamConfig {
    /// Released yml `train_2DQuant_x*.yml`: lr 1e-2, betas (0.9, 0.99).
    pub fn released() -> Self {
        Self {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
        }
    }

    /// Paper §4.1: lr 1e-2, betas (0.9, 0.999).
    pub fn paper() -> Self {
        Self {
            beta2: 0.999,
            ..Self::released()
        }
    }
}

/// Adam over `vars` = `candle_nn::AdamW` with `weight_decay = 0`.
pub fn adam(vars: Vec<Var>, cfg: &AdamConfig) -> Result<AdamW> {
    AdamW::new(
        vars,
        ParamsAdamW {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: 0.0,
        },
    )
}

/// Adam driven by a schedule: step `t` uses `schedule.lr_at(t)`.
#[derive(Debug)]
pub struct ScheduledAdam {
    opt: AdamW,
    schedule: LrSchedule,
    t: usize,
}

impl ScheduledAdam {
    /// Adam over `vars` (the `cfg.lr` is ignored in favour of the schedule).
    pub fn new(vars: Vec<Var>, cfg: &AdamConfig, schedule: LrSchedule) -> Result<Self> {
        Ok(Self {
            opt: adam(vars, cfg)?,
            schedule,
            t: 0,
        })
    }

    /// Backpropagate `loss` and take one step at the scheduled rate.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// One step with precomputed gradients at the scheduled rate.
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.opt.set_learning_rate(self.schedule.lr_at(self.t));
        self.opt.step(grads)?;
        self.t += 1;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.t
    }

    /// Learning rate the next step will use.
    pub fn next_lr(&self) -> f64 {
        self.schedule.lr_at(self.t)
    }
}

/// Adam over a flat vector of f32 parameters with an explicit, serializable
/// state (first / second moments and the step count), so DQC can checkpoint
/// and resume bit-exactly. The arithmetic is PyTorch's single-tensor CPU
/// `torch.optim.Adam` (no weight decay, no amsgrad) step for f32 tensors,
/// operation by operation (Python floats are f64 and enter f32 kernels
/// rounded to f32):
///
/// ```text
/// t += 1
/// m = m + f32(1−β₁)·(g − m)                 # exp_avg.lerp_(grad, 1−β₁)
/// v = v·f32(β₂) + f32(1−β₂)·g·g             # mul_(β₂).addcmul_(g, g, 1−β₂)
/// step_size = lr/(1 − β₁ᵗ)                  # f64
/// denom = √v / f32(√(1 − β₂ᵗ)) + f32(ε)
/// θ = θ + f32(−step_size)·(m / denom)       # addcdiv_
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FlatAdam {
    /// Hyper-parameters (`lr` is replaced by the schedule's rate per step).
    pub cfg: AdamConfig,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Steps taken.
    pub t: u64,
}

impl FlatAdam {
    /// Fresh state for `n` parameters.
    pub fn new(n: usize, cfg: AdamConfig) -> Self {
        Self {
            cfg,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One step at learning rate `lr`: updates `params` in place from `grads`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64) {
        assert_eq!(params.len(), self.m.len(), "parameter count changed");
        assert_eq!(grads.len(), self.m.len(), "gradient count mismatch");
        self.t += 1;
        let t = self.t as f64;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let w1 = (1.0 - b1) as f32;
        let b2f = b2 as f32;
        let w2 = (1.0 - b2) as f32;
        let bc1 = 1.0 - b1.powf(t);
        let bc2 = 1.0 - b2.powf(t);
        let step_size = lr / bc1;
        let bc2_sqrt = bc2.sqrt() as f32;
        let eps = self.cfg.eps as f32;
        let neg_step = (-step_size) as f32;
        for i in 0..params.len() {
            let g = grads[i];
            let m = self.m[i] + w1 * (g - self.m[i]);
            let v = self.v[i] * b2f + w2 * g * g;
            self.m[i] = m;
            self.v[i] = v;
            let denom = v.sqrt() / bc2_sqrt + eps;
            params[i] += neg_step * (m / denom);
        }
    }
}
