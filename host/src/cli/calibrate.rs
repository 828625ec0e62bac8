//! `tdquant calibrate`: a preset, overridden option by option, or a stopped
//! run resumed from its folder.

use std::path::{Path, PathBuf};

use tdquant_host::app;
use tdquant_host::calib::calibrate::{read_run_config, CalibConfig, Method, Preset, RunOptions};
use tdquant_host::calib::dqc::{LossNorm, ScheduleKind};
use tdquant_host::calib::quantmodel::DobiMode;
use tdquant_host::compute_device::ComputeDevice;

use super::bits_parser;

/// Options of `tdquant calibrate`. Unset options take the preset's value.
#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// Preset: quick (~15 min on 2 cores), paper (§4.1 settings: batch
    /// 32 x 64^2, 3000 iterations) or released (the released yml).
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    preset: Preset,
    /// Calibration method (2dquant: DOBI then DQC). Default: the preset's.
    #[arg(long, value_enum)]
    method: Option<Method>,
    /// Bit width of weights and activations.
    #[arg(long, value_parser = bits_parser())]
    bits: Option<u8>,
    /// SwinIR-light weights. Default: the stand-in x4 model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// DOBI variant: paper (one-sided for post-softmax / post-GELU sites) or
    /// released (all two-sided, released step as the released code computes it
    /// on the CPU; matches the golden files) or released-cuda (its CUDA
    /// rounding of the step).
    #[arg(long, value_enum)]
    dobi_mode: Option<DobiMode>,
    /// Override the DOBI strategy of a site kind, e.g.
    /// `--dobi-site AttnProb=two-sided` (repeatable; kinds: QWeight, KWeight,
    /// VWeight, QInput, KInput, VInput, ProjWeight, ProjInput, Fc1Weight,
    /// Fc1Input, Fc2Weight, Fc2Input, AttnQ, AttnK, AttnV, AttnProb).
    #[arg(long = "dobi-site", value_name = "KIND=one-sided|two-sided")]
    dobi_site: Vec<String>,
    /// Observation (DOBI) batch: number of LR patches.
    #[arg(long)]
    obs_batch: Option<usize>,
    /// Observation patch size (multiple of 8).
    #[arg(long)]
    obs_patch: Option<usize>,
    /// Seed of the calibration-data RNG.
    #[arg(long)]
    seed: Option<u64>,
    /// DQC iterations.
    #[arg(long)]
    iters: Option<usize>,
    /// DQC batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// DQC LR patch size (multiple of 8).
    #[arg(long)]
    patch: Option<usize>,
    /// Run each DQC batch in micro-batches of this many patches (gradient
    /// accumulation, bounds memory); 0 = whole batch.
    #[arg(long)]
    micro_batch: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Adam beta1.
    #[arg(long)]
    beta1: Option<f64>,
    /// Adam beta2 (paper 0.999, released 0.99).
    #[arg(long)]
    beta2: Option<f64>,
    /// Learning-rate schedule: cosine (paper) or constant (released).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// Feature-distillation weight lambda (0 = output L1 only).
    #[arg(long)]
    feature_weight: Option<f64>,
    /// Loss normalisation: paper (Eq. 4-6) or released.
    #[arg(long, value_enum)]
    loss_norm: Option<LossNorm>,
    /// Write a DQC checkpoint every N iterations.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Calibration image folder. Default: `<data>/calib`.
    #[arg(long)]
    calib_dir: Option<PathBuf>,
    /// Comma-separated evaluation sets (FP, initial and final bounds).
    #[arg(long, value_delimiter = ',')]
    sets: Option<Vec<String>>,
    /// Skip the evaluation.
    #[arg(long)]
    no_eval: bool,
    /// Where the model, DOBI's observation, DQC and the evaluation run
    /// (cuda: needs a build with `--features cuda`). Not part of the
    /// configuration: a run may be resumed on another device.
    #[arg(long, value_enum, default_value_t = ComputeDevice::Cpu)]
    device: ComputeDevice,
    /// Run folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the stopped run in this folder (its config.json is used;
    /// no other configuration option may be given).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop DQC after N iterations (checkpointed) — for testing --resume.
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

impl CalibrateArgs {
    pub fn run(self, root: &Path) -> anyhow::Result<()> {
        // Options named after the configuration field they replace.
        macro_rules! any_given {
            ($($f:ident),*) => { false $(|| self.$f.is_some())* };
        }
        macro_rules! set_given {
            ($dst:expr; $($f:ident),*) => { $(if let Some(v) = self.$f { $dst.$f = v; })* };
        }
        let opts = RunOptions {
            stop_after: self.stop_after,
            progress: !self.quiet,
            skip_eval: self.no_eval,
            device: self.device,
        };
        if let Some(dir) = &self.resume {
            let given = any_given! {
                method, bits, model, dobi_mode, obs_batch, obs_patch, seed, calib_dir, iters,
                batch, patch, micro_batch, lr, beta1, beta2, schedule, feature_weight, loss_norm,
                checkpoint_every, sets, out
            } || !self.dobi_site.is_empty();
            if given {
                anyhow::bail!(
                    "--resume takes the configuration from {}/config.json; give no other configuration option",
                    dir.display()
                );
            }
            let cfg = read_run_config(dir)?;
            return app::calibrate(&cfg, dir, true, &opts).map(|_| ());
        }
        let preset = self.preset;
        let mut cfg = CalibConfig::preset(preset, root);
        set_given!(cfg; method, bits, model, dobi_mode, obs_batch, obs_patch, seed, calib_dir);
        set_given!(cfg.dqc; iters, batch, patch, micro_batch, lr, beta1, beta2, schedule);
        set_given!(cfg.dqc; feature_weight, loss_norm, checkpoint_every);
        if let Some(v) = self.sets {
            cfg.eval_sets = v;
        }
        for o in &self.dobi_site {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--dobi-site {o:?}: expected KIND=one-sided|two-sided")
            })?;
            cfg.dobi_overrides.insert(k.to_string(), v.to_string());
        }
        if self.no_eval {
            // Recorded in config.json, so `--resume` of this run skips it too.
            cfg.eval_sets.clear();
        }
        // Absolute paths in config.json, so `--resume` works from any folder.
        for p in [&mut cfg.model, &mut cfg.calib_dir, &mut cfg.data_root] {
            if let Ok(c) = std::fs::canonicalize(&*p) {
                *p = c;
            }
        }
        let out = self.out.unwrap_or_else(|| {
            PathBuf::from("runs").join(format!(
                "calibrate-{}-w{}-{}",
                cfg.method.name(),
                cfg.bits,
                preset.name()
            ))
        });
        app::calibrate(&cfg, &out, false, &opts).map(|_| ())
    }
}
