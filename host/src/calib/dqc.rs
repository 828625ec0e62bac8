//! DQC — Distillation Quantization Calibration: only the 768 quantizer
//! bounds train; the teacher is the same FP SwinIR (no grad).
//!
//! # Loss
//!
//! `L = L_O + λ·Σ_{l=0..3} L_F,l`, with `O`/`O_q` the FP / fake-quant SR
//! outputs of a batch `[B, 3, sH, sW]` and `F_l`/`F_q,l` the outputs of RSTB
//! `l`'s `residual_group` (`[B, HW, 60]`, before the RSTB conv and
//! residual; the released `hook_per_layer` points, [`FeatureTap::ResidualGroup`]).
//! Every feature is divided **per sample** by its own Frobenius norm over
//! `(HW, C)`, detached (no gradient through the norm): `F̂_b = F_b / ‖F_b‖`.
//! The released code reshapes that norm to `[B,1,1,1]` against a 3-D
//! feature, so broadcasting divides every sample by every sample's norm
//! (a `[B,B,HW,C]` tensor); that is a bug (correct only for B = 1) and is
//! fixed here.
//!
//! Two normalisations ([`LossNorm`]):
//!
//! * [`LossNorm::Paper`] (default), paper Eq. 4–6, averaged over the batch:
//!   `L_O = mean|O − O_q|` (`‖O − O_q‖₁/(C·H·W)` per image) and
//!   `L_F,l = mean_b ‖F̂_b − F̂_q,b‖₂ / (HW·C)` (an L2 norm, not squared).
//! * [`LossNorm::Released`], `optimize_parameters` of the released code with
//!   the broadcast bug fixed: `L_O = mean|O − O_q| / (3·sH·sW)` (BasicSR
//!   `L1Loss(mean)` divided by `numel`, times `B`) and
//!   `L_F,l = mean((F̂ − F̂_q)²) / (B·HW·C)` (`MSELoss(mean)` divided by the
//!   numel of the — now correctly shaped — feature tensor); the released
//!   yml uses λ = 5.
//!
//! λ ([`DqcConfig::feature_weight`]) is not given in the paper. Default
//! [`DEFAULT_FEATURE_WEIGHT`] = 1e3 with the paper normalisation. With
//! unit-norm per-sample features the paper's `L_F,l` is
//! `‖relative feature error‖ / (HW·C)`, so at λ = 1 the four feature terms
//! are about 10⁻³ of `L_O` (measured on the stand-in ×4 model at the DOBI
//! start, W4A4, batch 4 × 48²: `Σ L_F` = 5.5e-7 vs `L_O` = 6.7e-4), i.e. DQC
//! would be output-only in practice — which is what the released code
//! effectively does (its feature term is ~7 orders of magnitude below the
//! pixel term). λ = 1e3 puts the summed feature term at the same order as
//! the output term there (5.5e-4 vs 6.7e-4), so both distillation signals
//! count, as the paper intends. `λ·L_F` scales with `1/(HW·C)`: keep that in
//! mind when changing the patch size. `--feature-weight 0` gives pure output
//! distillation.
//!
//! # Optimisation
//!
//! Adam ([`FlatAdam`], PyTorch arithmetic; betas paper (0.9, 0.999) /
//! released (0.9, 0.99)), learning rate from [`LrSchedule`] (paper: cosine
//! over the iterations to 0; released: constant). Every iteration draws a
//! fresh batch from the [`CalibPool`] with the run's [`SplitMix64`].
//!
//! # Keeping every quantizer valid
//!
//! Neither the paper nor the released code constrains `l < u`, and on the
//! stand-in model (whose attention branch barely matters) DQC at lr 1e-2
//! drives some weight quantizers' bounds past each other (seen: a k-weight
//! quantizer of `layers.3` block 4 at `l = −0.084 > u = −0.195` after 300
//! quick-preset iterations). A crossed pair is no quantizer at all (torch's
//! clamp then returns `u` everywhere, the step is negative) and cannot be
//! exported to the integer model. So after every Adam step the bounds are
//! projected back ([`keep_bounds_ordered`]): a pair with
//! `u − l < MIN_GAP_REL · max(|l|, |u|)` is replaced by its midpoint
//! `± gap/2`. The projection is deterministic, so resume stays byte-exact.
//!
//! # Checkpoints and determinism
//!
//! [`DqcState`] holds everything the loop depends on: bounds, Adam moments
//! and step, the RNG state, the iteration and the loss log. It is written
//! atomically every `checkpoint_every` iterations and at the end
//! ([`DqcState::save`]); a run resumed from a checkpoint computes exactly the
//! same iterations as an uninterrupted one, so the final bounds are
//! byte-identical (`tests/calib_dqc.rs`). The forward and backward kernels
//! reduce in a fixed order for any thread count (candle's CPU reductions,
//! `gemm` without k-splitting, the fixed-block DOBI/fake-quant kernels), so
//! the same seed gives the same bytes.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{CalibPool, SplitMix64};
use super::fakequant::FakeQuantizer;
use super::quantmodel::{HookMode, QuantHook};
use super::schedule::{AdamConfig, FlatAdam, LrSchedule};
use crate::model::hook::{FeatureRecorder, FeatureTap};
use crate::model::SwinIR;
use crate::weights::NUM_LAYERS;

/// Default λ (see the module docs).
pub const DEFAULT_FEATURE_WEIGHT: f64 = 1e3;

/// Loss normalisation (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossNorm {
    /// Paper Eq. 4–6.
    Paper,
    /// Released code (feature broadcast bug fixed).
    Released,
}

/// Learning-rate schedule kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Cosine annealing to 0 over the iterations (paper).
    Cosine,
    /// Constant (released yml).
    Constant,
}

/// DQC hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DqcConfig {
    /// Iterations (optimizer steps).
    pub iters: usize,
    /// Patches per batch.
    pub batch: usize,
    /// Run the batch in micro-batches of this many patches, accumulating
    /// the gradients (same loss and gradient up to f32 summation order).
    /// Micro-batches run in parallel, one per worker thread, and are summed
    /// in batch order, so the result does not depend on the thread count;
    /// memory: ~1.1 GB per 64×64 patch of a micro-batch, times the threads
    /// that hold one. 0 = the whole batch at once (one thread).
    #[serde(default)]
    pub micro_batch: usize,
    /// LR patch size (multiple of 8).
    pub patch: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Adam β₁.
    pub beta1: f64,
    /// Adam β₂.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Schedule.
    pub schedule: ScheduleKind,
    /// λ of the feature term.
    pub feature_weight: f64,
    /// Loss normalisation.
    pub loss_norm: LossNorm,
    /// Checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
}

impl DqcConfig {
    /// Paper §4.1: 3000 iterations, batch 32, 64×64, Adam lr 1e-2 (0.9, 0.999),
    /// cosine, paper loss.
    pub fn paper() -> Self {
        Self {
            iters: 3000,
            batch: 32,
            micro_batch: 4,
            patch: 64,
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            schedule: ScheduleKind::Cosine,
            feature_weight: DEFAULT_FEATURE_WEIGHT,
            loss_norm: LossNorm::Paper,
            checkpoint_every: 100,
        }
    }

    /// The schedule.
    pub fn lr_schedule(&self) -> LrSchedule {
        match self.schedule {
            ScheduleKind::Cosine => LrSchedule::cosine(self.lr, self.iters),
            ScheduleKind::Constant => LrSchedule::Constant { lr: self.lr },
        }
    }

    /// The Adam hyper-parameters.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        }
    }

    /// Check the values (before any long work).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.batch >= 1, "DQC batch size must be at least 1");
        super::data::check_patch(self.patch)?;
        anyhow::ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "learning rate must be positive, got {}",
            self.lr
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.beta1) && (0.0..1.0).contains(&self.beta2),
            "Adam betas must be in [0, 1), got ({}, {})",
            self.beta1,
            self.beta2
        );
        anyhow::ensure!(
            self.feature_weight.is_finite() && self.feature_weight >= 0.0,
            "feature weight must be ≥ 0, got {}",
            self.feature_weight
        );
        Ok(())
    }
}

/// One logged iteration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossRecord {
    /// Iteration (1-based: the state after this many steps).
    pub iter: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss.
    pub loss: f64,
    /// Output term `L_O`.
    pub output: f64,
    /// Feature term `λ·Σ L_F` (weighted).
    pub feature: f64,
}

/// Everything DQC's loop depends on (checkpointed).
#[derive(Clone, Debug, PartialEq)]
pub struct DqcState {
    /// Current bounds, 384 `(l, u)`.
    pub bounds: Vec<(f32, f32)>,
    /// Optimizer state.
    pub adam: FlatAdam,
    /// Data RNG.
    pub rng: SplitMix64,
    /// Iterations done.
    pub iteration: usize,
    /// Loss log.
    pub log: Vec<LossRecord>,
}

/// Smallest `u − l` DQC leaves, relative to `max(|l|, |u|)` (module docs).
pub const MIN_GAP_REL: f32 = 1.0 / 1024.0;

/// Projects every `(l, u)` onto `u − l ≥ MIN_GAP_REL · max(|l|, |u|)`
/// (at least `f32::MIN_POSITIVE`), around the pair's midpoint; pairs that
/// already satisfy it are left bit-identical.
pub fn keep_bounds_ordered(bounds: &mut [(f32, f32)]) {
    for (l, u) in bounds.iter_mut() {
        let gap = (MIN_GAP_REL * l.abs().max(u.abs())).max(f32::MIN_POSITIVE);
        if *u - *l < gap {
            let mid = 0.5 * (*l + *u);
            let half = 0.5 * gap;
            *l = mid - half;
            // half ≥ 2^-11·max(|l|, |u|) is thousands of ulps of mid: l < u.
            *u = mid + half;
        }
    }
}

fn flatten(bounds: &[(f32, f32)]) -> Vec<f32> {
    bounds.iter().flat_map(|&(l, u)| [l, u]).collect()
}

fn unflatten(v: &[f32]) -> Vec<(f32, f32)> {
    v.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

impl DqcState {
    /// Initial state: bounds from the initializer, fresh Adam, RNG as given.
    pub fn new(bounds: Vec<(f32, f32)>, cfg: &DqcConfig, rng: SplitMix64) -> Self {
        let n = bounds.len() * 2;
        Self {
            bounds,
            adam: FlatAdam::new(n, cfg.adam()),
            rng,
            iteration: 0,
            log: Vec::new(),
        }
    }
}

/// The loss terms of one batch (differentiable in the student's bounds).
pub struct DqcLoss {
    /// `L_O + λ·Σ L_F` (scalar).
    pub total: Tensor,
    /// `L_O` value.
    pub output: f64,
    /// `λ·Σ L_F` value.
    pub feature: f64,
}

/// Per-sample L2-normalised feature: `F_b / ‖F_b‖` with the norm detached.
fn normalise(f: &Tensor) -> candle_core::Result<Tensor> {
    let b = f.dim(0)?;
    let norm = f
        .detach()
        .sqr()?
        .reshape((b, ()))?
        .sum_keepdim(1)?
        .sqrt()?
        .reshape((b, 1, 1))?;
    f.broadcast_div(&norm)
}

/// The DQC loss of a student output / features against the teacher's
/// (see the module docs).
pub fn dqc_loss(
    out_q: &Tensor,
    out_fp: &Tensor,
    feats_q: &[Tensor],
    feats_fp: &[Tensor],
    cfg: &DqcConfig,
) -> candle_core::Result<DqcLoss> {
    dqc_loss_part(out_q, out_fp, feats_q, feats_fp, cfg, out_q.dim(0)?)
}

/// [`dqc_loss`] of a micro-batch (`n` samples) that is part of a batch of
/// `full_batch` samples, normalised so that the micro-batch losses (and
/// their gradients) add up to the loss of the whole batch: the batch means
/// become `Σ_micro-batch / full_batch`, and the released feature term's
/// `1/(B·HW·C)` uses the full `B`.
pub fn dqc_loss_part(
    out_q: &Tensor,
    out_fp: &Tensor,
    feats_q: &[Tensor],
    feats_fp: &[Tensor],
    cfg: &DqcConfig,
    full_batch: usize,
) -> candle_core::Result<DqcLoss> {
    let (n, c, h, w) = out_q.dims4()?;
    if full_batch < n || full_batch == 0 {
        candle_core::bail!("micro-batch of {n} in a batch of {full_batch}");
    }
    // n / B (exactly 1 for a whole batch, so that case is unchanged).
    let part = n as f64 / full_batch as f64;
    let scale = |t: Tensor, f: f64| if f == 1.0 { Ok(t) } else { t * f };
    let mut l_o = scale((out_q - out_fp.detach())?.abs()?.mean_all()?, part)?;
    if cfg.loss_norm == LossNorm::Released {
        l_o = (l_o / (c * h * w) as f64)?;
    }
    let mut total = l_o.clone();
    let mut feature = 0f64;
    if cfg.feature_weight > 0.0 {
        let mut l_f: Option<Tensor> = None;
        for (fq, ff) in feats_q.iter().zip(feats_fp) {
            let (b, hw, ch) = fq.dims3()?;
            let d = (normalise(fq)? - normalise(&ff.detach())?)?;
            let term = match cfg.loss_norm {
                LossNorm::Paper => {
                    // mean over samples of ‖F̂_b − F̂_q,b‖₂ / (HW·C)
                    let per = d.sqr()?.reshape((b, ()))?.sum(1)?.sqrt()?;
                    scale((per.mean_all()? / (hw * ch) as f64)?, part)?
                }
                // Σ d² / (B·HW·C)² = mean(d²) · n / (B²·HW·C)
                LossNorm::Released => scale(
                    (d.sqr()?.mean_all()? / (full_batch * hw * ch) as f64)?,
                    part,
                )?,
            };
            l_f = Some(match l_f {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        if let Some(l_f) = l_f {
            let weighted = (l_f * cfg.feature_weight)?;
            feature = weighted.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            total = (total + weighted)?;
        }
    }
    let output = l_o.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(DqcLoss {
        total,
        output,
        feature,
    })
}

/// The four `residual_group` taps.
pub fn feature_taps() -> Vec<FeatureTap> {
    (0..NUM_LAYERS as u8)
        .map(FeatureTap::ResidualGroup)
        .collect()
}

/// Teacher pass: FP output and the four features of `x` (no grad).
pub fn teacher(model: &SwinIR, x: &Tensor) -> anyhow::Result<(Tensor, Vec<Tensor>)> {
    let rec = FeatureRecorder::only(&feature_taps());
    let out = model.forward_with(x, &rec)?;
    let feats = feature_taps()
        .into_iter()
        .map(|t| {
            rec.get(t)
                .ok_or_else(|| anyhow::anyhow!("teacher feature {} missing", t.name()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((
        out.detach(),
        feats.into_iter().map(|f| f.detach()).collect(),
    ))
}

/// What one micro-batch adds to a DQC step.
pub struct MicroStep {
    /// The loss gradient of each bound variable (`None` where the loss does
    /// not reach it).
    pub grads: Vec<Option<f32>>,
    /// The loss.
    pub total: f64,
    /// Its output term.
    pub output: f64,
    /// Its feature term.
    pub feature: f64,
}

/// The teacher and fake-quant student passes, loss and backward of the `n`
/// samples of `x` from `start`, part of a batch of `full_batch`, through a
/// hook over `quantizers` (another thread's, sharing their variables), on
/// the model's device.
#[allow(clippy::too_many_arguments)]
pub fn micro_step(
    model: &SwinIR,
    bits: u8,
    quantizers: &[FakeQuantizer],
    vars: &[Var],
    x: &Tensor,
    start: usize,
    n: usize,
    cfg: &DqcConfig,
    full_batch: usize,
) -> anyhow::Result<MicroStep> {
    let xc = if n == full_batch {
        x.clone()
    } else {
        x.narrow(0, start, n)?
    };
    let hook = QuantHook::sharing(bits, quantizers)?;
    let t0 = Instant::now();
    let (out_fp, feats_fp) = teacher(model, &xc)?;
    let t_teacher = t0.elapsed().as_secs_f64();
    hook.set_differentiable(true);
    hook.record_features(true);
    let out_q = model.forward_with(&xc, &hook)?;
    let feats_q = hook.take_features()?;
    let loss = dqc_loss_part(&out_q, &out_fp, &feats_q, &feats_fp, cfg, full_batch)?;
    let t_student = t0.elapsed().as_secs_f64() - t_teacher;
    let grads = loss.total.backward()?;
    if std::env::var_os("TDQUANT_DQC_TIMING").is_some() {
        let t_backward = t0.elapsed().as_secs_f64() - t_teacher - t_student;
        eprintln!(
            "dqc step ({n} samples): teacher {t_teacher:.3} s, student+loss {t_student:.3} s, backward {t_backward:.3} s"
        );
    }
    drop(feats_q);
    drop(out_q);
    let grads = vars
        .iter()
        .map(|var| {
            grads
                .get(var.as_tensor())
                .map(|t| anyhow::Ok(t.flatten_all()?.to_vec1::<f32>()?[0]))
                .transpose()
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(MicroStep {
        grads,
        total: loss.total.to_dtype(DType::F64)?.to_scalar::<f64>()?,
        output: loss.output,
        feature: loss.feature,
    })
}

/// One DQC iteration on batch `x`: teacher pass, student pass with the
/// bounds of `state` as variables, loss, backward, Adam step at `lr`.
/// Returns the loss record (the caller pushes it).
pub fn dqc_step(
    model: &SwinIR,
    hook: &QuantHook,
    state: &mut DqcState,
    x: &Tensor,
    cfg: &DqcConfig,
) -> anyhow::Result<LossRecord> {
    let batch = x.dim(0)?;
    let micro = match cfg.micro_batch {
        0 => batch,
        m => m.min(batch),
    };
    hook.set_bounds(&state.bounds)?;
    hook.set_mode(HookMode::Quantize);
    let vars = hook.vars();
    let (bits, quantizers) = (hook.bits(), hook.quantizers());
    // Each micro-batch on a rayon worker, through a hook of its own that
    // shares the bound variables, in rounds of one per worker (a worker
    // waiting inside a kernel could otherwise steal and start another
    // micro-batch, and each holds its whole graph); the sums below run in
    // micro-batch order, exactly as a serial loop would add them. On a GPU
    // one at a time: the device is already busy with one, and each graph
    // holds its activations in device memory.
    let n_micro = batch.div_ceil(micro);
    let round = if model.device().is_cpu() {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let mut parts = Vec::with_capacity(n_micro);
    for first in (0..n_micro).step_by(round) {
        let last = (first + round).min(n_micro);
        parts.extend(
            (first..last)
                .into_par_iter()
                .map(|k| {
                    let start = k * micro;
                    let n = micro.min(batch - start);
                    micro_step(model, bits, quantizers, &vars, x, start, n, cfg, batch)
                })
                .collect::<Vec<_>>(),
        );
    }
    let mut g = vec![0f64; vars.len()];
    let (mut total, mut output, mut feature) = (0f64, 0f64, 0f64);
    for part in parts {
        let part = part?;
        for (acc, grad) in g.iter_mut().zip(&part.grads) {
            if let Some(v) = grad {
                *acc += f64::from(*v);
            }
        }
        total += part.total;
        output += part.output;
        feature += part.feature;
    }
    // One micro-batch: the f32 gradients pass through f64 unchanged.
    let g: Vec<f32> = g.into_iter().map(|v| v as f32).collect();
    let lr = cfg.lr_schedule().lr_at(state.iteration);
    let mut params = flatten(&state.bounds);
    state.adam.step(&mut params, &g, lr);
    state.bounds = unflatten(&params);
    keep_bounds_ordered(&mut state.bounds);
    state.iteration += 1;
    Ok(LossRecord {
        iter: state.iteration,
        lr,
        loss: total,
        output,
        feature,
    })
}

/// Options of [`run_dqc`] that do not change its result.
pub struct DqcRunControl<'a> {
    /// Checkpoint file (written every `cfg.checkpoint_every` iterations and
    /// at the end); `None` disables checkpoints.
    pub checkpoint: Option<&'a Path>,
    /// Configuration fingerprint stored in checkpoints.
    pub fingerprint: &'a str,
    /// Stop (after checkpointing) once this many iterations are done — a
    /// deliberate interruption, for resume tests.
    pub stop_after: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

/// Run DQC from `state` until `cfg.iters` iterations are done (or
/// `ctl.stop_after`), with `hook` (its bit width is the run's; its bounds are
/// overwritten from `state` every step). Returns the seconds spent.
pub fn run_dqc(
    model: &SwinIR,
    pool: &CalibPool,
    state: &mut DqcState,
    cfg: &DqcConfig,
    ctl: &DqcRunControl,
    hook: &QuantHook,
) -> anyhow::Result<f64> {
    cfg.validate()?;
    let t0 = Instant::now();
    let end = ctl.stop_after.map_or(cfg.iters, |s| s.min(cfg.iters));
    let mut bar = crate::progress::Progress::new("DQC", cfg.iters as u64, ctl.progress);
    bar.set_position(state.iteration as u64);
    let device = model.device().clone();
    while state.iteration < end {
        let x = pool.sample_batch(&mut state.rng, cfg.batch, cfg.patch, &device)?;
        let rec = dqc_step(model, hook, state, &x, cfg)?;
        anyhow::ensure!(
            rec.loss.is_finite(),
            "DQC diverged at iteration {}: loss {}",
            rec.iter,
            rec.loss
        );
        state.log.push(rec);
        bar.inc(|| {
            format!(
                "loss {:.4e} (out {:.3e} feat {:.3e}) lr {:.2e}",
                rec.loss, rec.output, rec.feature, rec.lr
            )
        });
        let periodic =
            cfg.checkpoint_every > 0 && state.iteration.is_multiple_of(cfg.checkpoint_every);
        if let Some(ck) = ctl.checkpoint {
            if periodic || state.iteration == end {
                state.save(ck, ctl.fingerprint)?;
            }
        }
    }
    bar.finish();
    Ok(t0.elapsed().as_secs_f64())
}

/// Seconds per DQC step (median of `iters` after one warm-up) for a batch
/// of `batch` random `patch × patch` inputs at `bits` bits (in micro-batches
/// of `micro_batch`, 0 = whole), bounds from a MinMax observation of the
/// same batch.
pub fn bench_dqc_step(
    model: &SwinIR,
    bits: u8,
    batch: usize,
    micro_batch: usize,
    patch: usize,
    iters: usize,
) -> anyhow::Result<DqcBench> {
    let mut rng = SplitMix64::new(1);
    let n = batch * 3 * patch * patch;
    let data: Vec<f32> = (0..n)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
        .collect();
    let x = Tensor::from_vec(data, (batch, 3, patch, patch), model.device())?;
    let hook = QuantHook::new(super::quantmodel::InitPlan::baseline(
        bits,
        super::quantmodel::InitMethod::MinMax,
    )?)?;
    model.forward_with(&x, &hook)?;
    let cfg = DqcConfig {
        iters: iters + 1,
        batch,
        micro_batch,
        patch,
        ..DqcConfig::paper()
    };
    let mut state = DqcState::new(hook.bounds()?, &cfg, rng);
    let mut times = Vec::new();
    let mut cpu = 0.0;
    for i in 0..=iters.max(1) {
        let (t0, c0) = (Instant::now(), process_cpu_seconds());
        dqc_step(model, &hook, &mut state, &x, &cfg)?;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
            cpu += process_cpu_seconds() - c0;
        }
    }
    let wall: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    Ok(DqcBench {
        median_s: times[times.len() / 2],
        cpu_per_wall: cpu / wall,
    })
}

/// [`bench_dqc_step`]'s figures.
#[derive(Clone, Copy, Debug)]
pub struct DqcBench {
    /// Median wall seconds of a step.
    pub median_s: f64,
    /// CPU seconds (user + system, all threads) per wall second over the
    /// timed steps: how many cores a step keeps busy.
    pub cpu_per_wall: f64,
}

/// CPU seconds (user + system) the process has used, all threads; NaN
/// where `getrusage` is unavailable.
fn process_cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes only the struct it is given, which is
        // plain data (all-zero is a valid value).
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `u` outlives the call.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0 {
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            return secs(u.ru_utime) + secs(u.ru_stime);
        }
    }
    f64::NAN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_bounds_are_left_alone_and_crossed_ones_projected() {
        let mut b = vec![
            (-0.5f32, 0.5f32),
            (-0.08389115, -0.19542968),
            (1.0, 1.0),
            (0.0, 0.0),
        ];
        keep_bounds_ordered(&mut b);
        assert_eq!(b[0], (-0.5, 0.5), "a valid pair keeps its bits");
        for &(l, u) in &b[1..] {
            assert!(l < u, "({l}, {u}) must be ordered");
            let gap = (MIN_GAP_REL * l.abs().max(u.abs())).max(f32::MIN_POSITIVE);
            assert!(u - l >= gap * 0.999, "({l}, {u}) gap below {gap}");
        }
        let mid = 0.5 * (-0.08389115f32 + -0.19542968);
        assert!(
            (0.5 * (b[1].0 + b[1].1) - mid).abs() < 1e-6,
            "projected around the midpoint"
        );
    }
}
