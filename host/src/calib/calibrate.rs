//! The calibration tool: `tdquant calibrate`.
//!
//! Stages (each timed in the report):
//!
//! 1. **check** — everything that can fail is checked before any long work:
//!    bit width, patch sizes, DQC hyper-parameters, the model file, the
//!    calibration folder (exists, has images, every LR holds the largest
//!    patch), the evaluation sets, the output folder.
//! 2. **observe** — one no-grad forward of the observation batch
//!    (`obs_batch` LR patches `obs_patch`², default 32 × 64², the paper's
//!    calibration batch) through a [`QuantHook`] in [`HookMode::Observe`]:
//!    MinMax, Percentile or DOBI at every site on FP statistics.
//! 3. **dqc** (method `2dquant` only) — [`super::dqc::run_dqc`] from those
//!    bounds, checkpointing into the run folder.
//! 4. **eval** — fake-quant PSNR/SSIM-Y (BasicSR protocol) on the evaluation
//!    sets (default Set5) for the FP model, the initial bounds and (for
//!    2dquant) the final bounds.
//!
//! The run folder ([`RUN_FILES`]) holds `config.json` (the resolved
//! configuration; `--resume` reads it), `init_bounds.safetensors` (+ `.json`),
//! `bounds.safetensors` (+ `.json`, the result), `checkpoint.safetensors`,
//! `loss.csv`, `loss.png`, `report.md`, `report.json`.
//!
//! # Presets
//!
//! * `quick` (the default): 2dquant, W4A4 unless `--bits`, DOBI paper mode;
//!   observation batch 32 × 64² (the paper's calibration batch); DQC
//!   [`QUICK_ITERS`] = 300 iterations of batch 4 × 48² (LR; run as two
//!   micro-batches of 2, which is faster than one of 4 here), Adam lr 1e-2
//!   (0.9, 0.999), cosine, paper loss with λ = 1e3; Set5 evaluation. Sized
//!   from the measured DQC step (`tdquant bench dqc --micro-batch 2`: 2.05 s
//!   on an idle 2-core machine, ~2.7 s with another job running) and
//!   observation pass (~90 s idle, ~160 s busy, for 32 × 64²): about 12
//!   minutes idle, 15–17 minutes on a busy machine, including the Set5
//!   evaluation (three Set5 passes, ~10 s).
//! * `paper`: the paper's §4.1 settings — observation batch 32 × 64², DQC
//!   3000 iterations of batch 32 × 64² (as micro-batches of 4: ~4.6 GB peak
//!   instead of ~36 GB), Adam lr 1e-2 (0.9, 0.999), cosine. About 30 s per
//!   iteration here, i.e. ~1 day of CPU time.
//! * `released`: the released yml — batch 16 × 64² (micro-batches of 4),
//!   4000 iterations, Adam (0.9, 0.99), constant lr, released loss
//!   normalisation with λ = 5 (feature broadcast bug fixed), DOBI released.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bounds_file::{save_bounds, BoundsMeta, SiteMeta, BOUNDS_FORMAT};
use super::data::{CalibPool, SplitMix64, CALIB_DIR};
use super::dqc::{run_dqc, DqcConfig, DqcRunControl, DqcState, LossNorm, ScheduleKind};
use super::quantmodel::{
    check_bits, parse_strategy, site_kind_from_name, site_kind_name, DobiMode, HookMode,
    InitMethod, InitPlan, QuantHook, SiteInit,
};
use super::report::{write_loss_csv, write_loss_png, CalibReport, EvalRow, StageTime};
use crate::compute_device::ComputeDevice;
use crate::eval::check_sets_exist;
use crate::eval::{self, EvalReport};
use crate::input_file::PathContext;
use crate::model::hook::SiteId;
use crate::model::SwinIR;
use crate::model::{FpHook, SiteHook};
use crate::output::write_atomic;

/// Files of a run folder.
pub const RUN_FILES: &[&str] = &[
    "config.json",
    "init_bounds.safetensors",
    "bounds.safetensors",
    "checkpoint.safetensors",
    "loss.csv",
    "loss.png",
    "report.md",
    "report.json",
];

/// DQC iterations of the quick preset.
pub const QUICK_ITERS: usize = 300;

/// Calibration method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// MinMax bounds.
    #[value(name = "minmax")]
    MinMax,
    /// PTQ4SR percentile (activations) + MinMax (weights).
    Percentile,
    /// DOBI only.
    Dobi,
    /// DOBI then DQC.
    #[serde(rename = "2dquant")]
    #[value(name = "2dquant")]
    TwoDQuant,
}

impl Method {
    /// CLI / metadata name.
    pub fn name(self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile => "percentile",
            Method::Dobi => "dobi",
            Method::TwoDQuant => "2dquant",
        }
    }

    fn init(self) -> InitMethod {
        match self {
            Method::MinMax => InitMethod::MinMax,
            Method::Percentile => InitMethod::Percentile,
            Method::Dobi | Method::TwoDQuant => InitMethod::Dobi,
        }
    }
}

/// Preset names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 32 x 64^2 observation patches, 300 DQC iterations of 4 x 48^2.
    Quick,
    /// Paper §4.1.
    Paper,
    /// Released yml.
    Released,
}

impl Preset {
    /// Name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Paper => "paper",
            Preset::Released => "released",
        }
    }
}

/// The resolved calibration configuration (stored as `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibConfig {
    /// Method.
    pub method: Method,
    /// Bits (W = A).
    pub bits: u8,
    /// DOBI mode.
    pub dobi_mode: DobiMode,
    /// Preset the values started from (command-line options may have
    /// changed them).
    pub preset: Preset,
    /// Per-site-kind DOBI strategy overrides (`AttnProb` → `two-sided`, …),
    /// applied on top of the DOBI mode's assignment.
    #[serde(default)]
    pub dobi_overrides: std::collections::BTreeMap<String, String>,
    /// Observation (DOBI) batch size.
    pub obs_batch: usize,
    /// Observation patch size.
    pub obs_patch: usize,
    /// Seed of the data RNG.
    pub seed: u64,
    /// DQC (method 2dquant).
    pub dqc: DqcConfig,
    /// Evaluation sets.
    pub eval_sets: Vec<String>,
    /// FP weights.
    pub model: PathBuf,
    /// Calibration image folder.
    pub calib_dir: PathBuf,
    /// Data root (benchmark sets).
    pub data_root: PathBuf,
}

impl CalibConfig {
    /// The preset's configuration (paths filled from `data_root`).
    pub fn preset(preset: Preset, data_root: &Path) -> Self {
        let base = CalibConfig {
            method: Method::TwoDQuant,
            bits: 4,
            dobi_mode: DobiMode::Paper,
            preset,
            dobi_overrides: Default::default(),
            obs_batch: 32,
            obs_patch: 64,
            seed: 0,
            dqc: DqcConfig::paper(),
            eval_sets: vec!["Set5".into()],
            model: crate::data_root::default_model(data_root),
            calib_dir: data_root.join(CALIB_DIR),
            data_root: data_root.to_path_buf(),
        };
        match preset {
            Preset::Paper => base,
            Preset::Quick => CalibConfig {
                dqc: DqcConfig {
                    iters: QUICK_ITERS,
                    batch: 4,
                    micro_batch: 2,
                    patch: 48,
                    checkpoint_every: 50,
                    ..DqcConfig::paper()
                },
                ..base
            },
            Preset::Released => CalibConfig {
                dobi_mode: DobiMode::Released,
                dqc: DqcConfig {
                    iters: 4000,
                    batch: 16,
                    micro_batch: 4,
                    patch: 64,
                    beta2: 0.99,
                    schedule: ScheduleKind::Constant,
                    feature_weight: 5.0,
                    loss_norm: LossNorm::Released,
                    ..DqcConfig::paper()
                },
                ..base
            },
        }
    }

    /// The initialization plan of the run (method, DOBI mode, overrides).
    pub fn init_plan(&self) -> Result<InitPlan> {
        let mut plan = if self.method.init() == InitMethod::Dobi {
            InitPlan::dobi(self.bits, self.dobi_mode)?
        } else {
            InitPlan::baseline(self.bits, self.method.init())?
        };
        for (kind, strat) in &self.dobi_overrides {
            let site = site_kind_from_name(kind).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown site kind {kind:?} in a DOBI override (one of {})",
                    crate::model::hook::Site::ALL
                        .iter()
                        .map(|&s| site_kind_name(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            plan.set_strategy(site, parse_strategy(strat).map_err(anyhow::Error::msg)?);
        }
        Ok(plan)
    }

    /// Check everything cheap (no file is read here except for existence).
    pub fn validate(&self) -> Result<()> {
        check_bits(self.bits)?;
        self.init_plan()?;
        super::data::check_patch(self.obs_patch)?;
        anyhow::ensure!(
            self.obs_batch >= 1,
            "observation batch size must be at least 1"
        );
        if self.method == Method::TwoDQuant {
            self.dqc.validate()?;
        }
        anyhow::ensure!(
            self.model.is_file(),
            "model file {} does not exist",
            self.model.display()
        );
        let sets: Vec<&str> = self.eval_sets.iter().map(String::as_str).collect();
        if !sets.is_empty() {
            check_sets_exist(&self.data_root, &sets)?;
        }
        Ok(())
    }

    /// The largest patch the data must provide.
    pub fn max_patch(&self) -> usize {
        if self.method == Method::TwoDQuant {
            self.obs_patch.max(self.dqc.patch)
        } else {
            self.obs_patch
        }
    }

    /// Hash of everything that determines the result (checkpoints refuse
    /// another configuration).
    pub fn fingerprint(&self, weights_sha: &str) -> String {
        let mut c = self.clone();
        c.eval_sets.clear();
        c.dqc.checkpoint_every = 0;
        let js = serde_json::to_string(&(
            c.method,
            c.bits,
            c.dobi_mode,
            &c.dobi_overrides,
            c.obs_batch,
            c.obs_patch,
            c.seed,
            &c.dqc,
        ))
        .expect("plain values");
        let mut h = Sha256::new();
        h.update(js.as_bytes());
        h.update(weights_sha.as_bytes());
        format!("{:x}", h.finalize())
    }

    /// The calibration configuration recorded in bounds metadata (no paths,
    /// nothing run-control-only).
    pub fn meta_config(&self) -> serde_json::Value {
        let mut dqc = serde_json::to_value(&self.dqc).expect("plain values");
        if let Some(o) = dqc.as_object_mut() {
            o.remove("checkpoint_every");
        }
        serde_json::json!({
            "calibration_data": "LR (MATLAB bicubic 1/scale) crops of $TDQUANT_DATA/calib images, hflip/vflip/transpose, SplitMix64(seed)",
            "obs_batch": self.obs_batch,
            "obs_patch": self.obs_patch,
            "dqc": if self.method == Method::TwoDQuant { dqc } else { serde_json::Value::Null },
        })
    }
}

/// Bounds metadata for a run.
fn bounds_meta(
    cfg: &CalibConfig,
    method: &str,
    plan: &InitPlan,
    sha: &str,
    scale: usize,
) -> BoundsMeta {
    BoundsMeta {
        format: BOUNDS_FORMAT.into(),
        method: method.into(),
        bits: cfg.bits,
        scale,
        seed: cfg.seed,
        dobi_mode: cfg.dobi_mode.name().into(),
        preset: cfg.preset.name().into(),
        weights_sha256: sha.into(),
        model_file: cfg
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        config: cfg.meta_config(),
        sites: SiteId::all()
            .map(|s| SiteMeta {
                name: s.checkpoint_prefix(),
                kind: site_kind_name(s.site).into(),
                init: plan.describe(s.site),
            })
            .collect(),
    }
}

/// Run-control options (do not change the result).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop DQC after this many iterations (checkpointed), for resume tests.
    pub stop_after: Option<usize>,
    /// Progress bars.
    pub progress: bool,
    /// Skip the evaluation stage.
    pub skip_eval: bool,
    /// Where the model, observation, DQC and evaluation run (not part of the
    /// configuration: a run may be resumed on another device).
    pub device: ComputeDevice,
}

/// What a finished (or stopped) run produced.
#[derive(Debug)]
pub struct CalibOutcome {
    /// The run folder.
    pub out_dir: PathBuf,
    /// Final bounds file (absent if stopped early).
    pub bounds_path: Option<PathBuf>,
    /// The report (absent if stopped early).
    pub report: Option<CalibReport>,
}

fn load_model(cfg: &CalibConfig, device: &Device) -> Result<(SwinIR, String)> {
    let model = SwinIR::load_on(&cfg.model, device).path_context("loading model", &cfg.model)?;
    let sha = model
        .weights_sha256()
        .map(str::to_string)
        .context("the model has no weights SHA-256")?;
    Ok((model, sha))
}

/// Fake-quant (or FP, `bounds = None`) evaluation on `sets`.
pub fn eval_bounds(
    model: &SwinIR,
    data_root: &Path,
    sets: &[String],
    bits: u8,
    bounds: Option<&[(f32, f32)]>,
) -> Result<EvalReport> {
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let hook = match bounds {
        Some(b) => Some(QuantHook::from_bounds(bits, b)?),
        None => None,
    };
    let hook: &dyn SiteHook = match &hook {
        Some(h) => h,
        None => &FpHook,
    };
    eval::evaluate_sets(data_root, &sets, model.scale(), &mut |lr| {
        model.upscale_image(lr, hook)
    })
}

/// Result of [`observe`]: the bounds and what each site's search found.
pub type Observation = (Vec<(f32, f32)>, Vec<SiteInit>);

/// Observation pass: initial bounds from one no-grad forward of `x`.
pub fn observe(
    model: &SwinIR,
    plan: InitPlan,
    x: &candle_core::Tensor,
    progress: bool,
) -> Result<Observation> {
    let hook = QuantHook::new(plan)?;
    hook.set_mode(HookMode::Observe);
    let mut bar =
        crate::progress::Progress::new("observe", crate::model::NUM_SITES as u64, progress);
    hook.on_observe(move |site, _| {
        bar.inc(|| format!("sites, last {}", site.checkpoint_prefix()));
    });
    model.forward_with(x, &hook)?;
    Ok((hook.bounds()?, hook.observed()?))
}

/// Run (or resume) a calibration into `out_dir`.
pub fn calibrate(
    cfg: &CalibConfig,
    out_dir: &Path,
    resume: bool,
    opts: &RunOptions,
) -> Result<CalibOutcome> {
    let t_all = Instant::now();
    let mut stages: Vec<StageTime> = Vec::new();
    // ---- 1. checks ----
    let t0 = Instant::now();
    cfg.validate()?;
    let (model, sha) = load_model(cfg, &opts.device.open()?)?;
    let pool = CalibPool::open(&cfg.calib_dir, model.scale(), cfg.max_patch())?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let config_path = out_dir.join("config.json");
    let fingerprint = cfg.fingerprint(&sha);
    if !resume {
        write_atomic(&config_path, serde_json::to_string_pretty(cfg)?.as_bytes())?;
    }
    stages.push(StageTime::new("check + load", t0));
    eprintln!(
        "calibrate: {} W{b}A{b} x{} ({} calibration images, model sha256 {}…), run folder {}",
        cfg.method.name(),
        model.scale(),
        pool.images.len(),
        &sha[..12],
        out_dir.display(),
        b = cfg.bits
    );

    let plan = cfg.init_plan()?;
    let init_path = out_dir.join("init_bounds.safetensors");
    let checkpoint = out_dir.join("checkpoint.safetensors");
    let init_method_name = match cfg.method {
        Method::TwoDQuant => "dobi",
        m => m.name(),
    };

    // ---- 2. observe (or reload on resume) ----
    let mut rng = SplitMix64::new(cfg.seed);
    let init_bounds: Vec<(f32, f32)>;
    let mut state: Option<DqcState> = None;
    if resume {
        let loaded = super::bounds_file::load_bounds(
            &init_path,
            &super::bounds_file::BoundsExpect {
                bits: Some(cfg.bits),
                weights_sha256: Some(&sha),
                scale: Some(model.scale()),
            },
        )?;
        init_bounds = loaded.bounds;
        if cfg.method == Method::TwoDQuant && checkpoint.is_file() {
            state = Some(DqcState::load(&checkpoint, &cfg.dqc, &fingerprint)?);
        }
        eprintln!("resuming from {}", out_dir.display());
    } else {
        let t0 = Instant::now();
        let x = pool.sample_batch(&mut rng, cfg.obs_batch, cfg.obs_patch, model.device())?;
        let (b, _) = observe(&model, plan.clone(), &x, opts.progress)?;
        init_bounds = b;
        save_bounds(
            &init_path,
            &init_bounds,
            &bounds_meta(cfg, init_method_name, &plan, &sha, model.scale()),
        )?;
        stages.push(StageTime::new(
            &format!(
                "observe ({} x {}^2, {init_method_name})",
                cfg.obs_batch, cfg.obs_patch
            ),
            t0,
        ));
    }

    // ---- 3. DQC ----
    let final_bounds: Vec<(f32, f32)>;
    let mut log = Vec::new();
    if cfg.method == Method::TwoDQuant {
        let t0 = Instant::now();
        let mut st = match state {
            Some(s) => s,
            None => {
                // The observation batch was drawn from `rng` first (also on
                // resume without a checkpoint: redraw it to advance the RNG).
                if resume {
                    let _ =
                        pool.sample_batch(&mut rng, cfg.obs_batch, cfg.obs_patch, model.device())?;
                }
                DqcState::new(init_bounds.clone(), &cfg.dqc, rng)
            }
        };
        let hook = QuantHook::from_bounds(cfg.bits, &st.bounds)?;
        let start_iter = st.iteration;
        run_dqc(
            &model,
            &pool,
            &mut st,
            &cfg.dqc,
            &DqcRunControl {
                checkpoint: Some(&checkpoint),
                fingerprint: &fingerprint,
                stop_after: opts.stop_after,
                progress: opts.progress,
            },
            &hook,
        )?;
        let done = st.iteration - start_iter;
        stages.push(StageTime::new(
            &format!(
                "dqc ({done} iterations, {} x {}^2)",
                cfg.dqc.batch, cfg.dqc.patch
            ),
            t0,
        ));
        write_loss_csv(&out_dir.join("loss.csv"), &st.log)?;
        if st.iteration < cfg.dqc.iters {
            eprintln!(
                "stopped after iteration {} of {} (checkpoint {}); continue with --resume {}",
                st.iteration,
                cfg.dqc.iters,
                checkpoint.display(),
                out_dir.display()
            );
            return Ok(CalibOutcome {
                out_dir: out_dir.to_path_buf(),
                bounds_path: None,
                report: None,
            });
        }
        write_loss_png(&out_dir.join("loss.png"), &st.log)?;
        final_bounds = st.bounds.clone();
        log = st.log;
    } else {
        final_bounds = init_bounds.clone();
    }
    let bounds_path = out_dir.join("bounds.safetensors");
    save_bounds(
        &bounds_path,
        &final_bounds,
        &bounds_meta(cfg, cfg.method.name(), &plan, &sha, model.scale()),
    )?;

    // ---- 4. eval ----
    let mut rows = Vec::new();
    if !opts.skip_eval && !cfg.eval_sets.is_empty() {
        let t0 = Instant::now();
        let fp = eval_bounds(&model, &cfg.data_root, &cfg.eval_sets, cfg.bits, None)?;
        rows.push(EvalRow::new("FP32", &fp));
        let init = eval_bounds(
            &model,
            &cfg.data_root,
            &cfg.eval_sets,
            cfg.bits,
            Some(&init_bounds),
        )?;
        rows.push(EvalRow::new(
            &format!(
                "{} W{b}A{b}",
                init_method_name_label(init_method_name),
                b = cfg.bits
            ),
            &init,
        ));
        if cfg.method == Method::TwoDQuant {
            let fin = eval_bounds(
                &model,
                &cfg.data_root,
                &cfg.eval_sets,
                cfg.bits,
                Some(&final_bounds),
            )?;
            rows.push(EvalRow::new(
                &format!("2DQuant W{b}A{b}", b = cfg.bits),
                &fin,
            ));
        }
        write_run_comparison(
            cfg,
            &model,
            init_method_name,
            &init_bounds,
            &final_bounds,
            out_dir,
        )?;
        stages.push(StageTime::new("eval", t0));
    }
    let report = CalibReport {
        method: cfg.method.name().into(),
        bits: cfg.bits,
        scale: model.scale(),
        preset: cfg.preset.name().into(),
        resumed: resume,
        weights_sha256: sha.clone(),
        config: serde_json::to_value(cfg)?,
        stages,
        total_seconds: t_all.elapsed().as_secs_f64(),
        eval: rows,
        final_loss: log.last().copied(),
        iterations: log.len(),
    };
    write_atomic(
        &out_dir.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    write_atomic(&out_dir.join("report.md"), report.to_markdown().as_bytes())?;
    Ok(CalibOutcome {
        out_dir: out_dir.to_path_buf(),
        bounds_path: Some(bounds_path),
        report: Some(report),
    })
}

/// `compare.png` of a run: HR, bicubic, FP, the initial bounds and (2DQuant)
/// the final bounds on the first image of the first evaluation set.
fn write_run_comparison(
    cfg: &CalibConfig,
    model: &SwinIR,
    init_method_name: &str,
    init_bounds: &[(f32, f32)],
    final_bounds: &[(f32, f32)],
    out_dir: &Path,
) -> Result<()> {
    let b = cfg.bits;
    let init_hook = QuantHook::from_bounds(b, init_bounds)?;
    let final_hook = QuantHook::from_bounds(b, final_bounds)?;
    let mut fp = |lr: &eval::RgbImageF32| model.upscale_image(lr, &FpHook);
    let mut init = |lr: &eval::RgbImageF32| model.upscale_image(lr, &init_hook);
    let mut fin = |lr: &eval::RgbImageF32| model.upscale_image(lr, &final_hook);
    let mut contenders: Vec<eval::compare::Contender<'_>> = vec![
        ("FP32".into(), &mut fp),
        (
            format!("{} W{b}A{b}", init_method_name_label(init_method_name)),
            &mut init,
        ),
    ];
    if cfg.method == Method::TwoDQuant {
        contenders.push((format!("2DQuant W{b}A{b}"), &mut fin));
    }
    eval::compare::write_comparison(
        &cfg.data_root,
        &cfg.eval_sets[0],
        model.scale(),
        &mut contenders,
        &out_dir.join("compare.png"),
    )
}

fn init_method_name_label(n: &str) -> &str {
    match n {
        "dobi" => "DOBI",
        "minmax" => "MinMax",
        "percentile" => "Percentile",
        o => o,
    }
}

/// Read `config.json` of a run folder (for `--resume`).
pub fn read_run_config(out_dir: &Path) -> Result<CalibConfig> {
    let p = out_dir.join("config.json");
    if !p.is_file() {
        bail!(
            "{} is not a calibration run folder (no config.json)",
            out_dir.display()
        );
    }
    let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))
}
