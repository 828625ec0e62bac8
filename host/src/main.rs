//! `tdquant` — the command-line front end of tdquant-host.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tdquant_host::app;
use tdquant_host::calib::calibrate::{Method, Preset};
use tdquant_host::calib::dqc::{LossNorm, ScheduleKind};
use tdquant_host::calib::quantmodel::DobiMode;
use tdquant_host::data_root::resolve;

/// 2DQuant low-bit post-training quantization of SwinIR-light, down to
/// integer-only inference.
#[derive(Parser, Debug)]
#[command(name = "tdquant", version, about, long_about = None)]
struct Cli {
    /// Data root (weights, benchmark sets, calibration pool). Defaults to
    /// $TDQUANT_DATA, else ../shared/data when it exists, else the bundle
    /// embedded in the repository (assets/).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Calibrate quantization bounds (DOBI, then DQC) for a SwinIR-light model.
    ///
    /// With no arguments: the stand-in x4 model, W4A4, 2DQuant, the `quick`
    /// preset (about 15 minutes on 2 cores including the Set5 evaluation).
    Calibrate(Box<CalibrateArgs>),
    /// Evaluate a model on benchmark sets, BasicSR-exact (PSNR/SSIM-Y).
    Eval {
        /// SwinIR-light weights (.pth or .safetensors). Default: the stand-in
        /// x4 model under the data root.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Comma-separated benchmark sets.
        #[arg(long, value_delimiter = ',', default_value = "Set5,Set14,B100")]
        sets: Vec<String>,
        /// Folder for eval.json and eval.md.
        #[arg(long, default_value = "runs/eval")]
        out: PathBuf,
        /// Evaluate the fake-quant model with these bounds (a `calibrate`
        /// bounds file, or a metadata-less one such as the golden files,
        /// which needs --bits).
        #[arg(long)]
        bounds: Option<PathBuf>,
        /// Bit width (W = A) for a bounds file without metadata; checked
        /// against the metadata otherwise.
        #[arg(long, value_parser = bits_parser())]
        bits: Option<u8>,
        /// Evaluate the integer-only model in this `.tdq` file (from
        /// `tdquant export`) instead.
        #[arg(long, conflicts_with_all = ["model", "bounds", "bits"])]
        int: Option<PathBuf>,
        /// With --int: process tile by tile, cores of this many LR pixels
        /// (byte-identical to untiled with the default halo).
        #[arg(long, requires = "int")]
        tile: Option<usize>,
        /// With --tile: context added around each core, in LR pixels
        /// (default 192: exact).
        #[arg(long, requires = "tile")]
        halo: Option<usize>,
    },
    /// Upscale one PNG/JPEG image (any bit depth or colour type; read as RGB8).
    Upscale {
        /// Input image.
        input: PathBuf,
        /// Output PNG (written atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// SwinIR-light weights (.pth or .safetensors). Default: the stand-in
        /// x4 model under the data root.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Run the integer-only model in this `.tdq` file instead.
        #[arg(long, conflicts_with = "model")]
        int: Option<PathBuf>,
        /// Process tile by tile, cores of this many LR pixels (rounded up to
        /// a multiple of 8, clipped to the image). Without it, images whose
        /// working set exceeds --mem-budget-mib are tiled automatically.
        #[arg(long)]
        tile: Option<usize>,
        /// Context added around each core, in LR pixels. Default: 192 for
        /// --int (tiled output byte-identical to untiled), 32 for FP (within
        /// the tolerance stated in the README).
        #[arg(long)]
        halo: Option<usize>,
        /// Memory budget of the upscale in MiB (automatic tiling above it).
        #[arg(long, default_value_t = 1024)]
        mem_budget_mib: usize,
    },
    /// Export a calibrated model to the packed integer `.tdq` format; prints
    /// the file size and the ratio to the FP32 parameter bytes.
    Export {
        /// SwinIR-light weights. Default: the stand-in x4 model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Bounds file (`tdquant calibrate` output, or a golden
        /// `dobi_released_w*.safetensors`, which needs --bits).
        #[arg(long)]
        bounds: PathBuf,
        /// Bit width for a bounds file without metadata.
        #[arg(long, value_parser = bits_parser())]
        bits: Option<u8>,
        /// Calibration batch (safetensors, tensor `calibration_batch`
        /// `[B, 3, H, W]`) for the stream and conv scales. Default: the bounds
        /// file's, else 8 seeded 64x64 patches of the calibration pool.
        #[arg(long)]
        calib: Option<PathBuf>,
        /// Output `.tdq` file (written atomically).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Compare two or more integer backends bit for bit (SHA-256 per image,
    /// first differing pixel); exits non-zero on any mismatch.
    Parity {
        /// The integer model (`tdquant export`).
        #[arg(long)]
        int: PathBuf,
        /// Comma-separated benchmark sets (LR inputs).
        #[arg(long, value_delimiter = ',', default_value = "Set5")]
        sets: Vec<String>,
        /// The reference backend.
        #[arg(long, value_enum, default_value = "oracle")]
        a: tdquant_host::parity::BackendName,
        /// Comma-separated backends compared with `--a` (the emulated ones
        /// run the CUDA kernels on the CPU: slow; the CUDA ones need a build
        /// with `--features cuda`).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "cuda-fused,cuda-per-op"
        )]
        b: Vec<tdquant_host::parity::BackendName>,
        /// At most this many images per set (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Benchmarks (FP forward, calibration step, integer inference).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Full-precision forward time (candle, CPU) for one LR image.
    Fp {
        /// SwinIR-light weights. Default: the stand-in x4 model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// LR image size (square).
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Timed runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        iters: usize,
    },
    /// One DQC step (teacher + fake-quant student forward, backward, Adam).
    Dqc {
        /// SwinIR-light weights. Default: the stand-in x4 model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Bit width (W = A).
        #[arg(long, default_value_t = 4, value_parser = bits_parser())]
        bits: u8,
        /// Patches per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Micro-batch size (gradient accumulation); 0 = whole batch.
        #[arg(long, default_value_t = 0)]
        micro_batch: usize,
        /// LR patch size (multiple of 8).
        #[arg(long, default_value_t = 48)]
        patch: usize,
        /// Timed steps after one warm-up (the median is reported).
        #[arg(long, default_value_t = 3)]
        iters: usize,
    },
    /// Integer inference: FP forward, scalar oracle and fast path in one run.
    Int {
        /// SwinIR-light weights. Default: the stand-in x4 model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// A `.tdq` model. Default: exported from the golden DOBI bounds.
        #[arg(long)]
        tdq: Option<PathBuf>,
        /// Bit width of the default export (W = A).
        #[arg(long, default_value_t = 4, value_parser = bits_parser())]
        bits: u8,
        /// LR image size (square) for the FP and fast integer runs.
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// LR image size for the (slow) scalar oracle; 0 skips it.
        #[arg(long, default_value_t = 64)]
        oracle_size: usize,
        /// Timed runs (the median is reported).
        #[arg(long, default_value_t = 1)]
        iters: usize,
    },
}

/// Options of `tdquant calibrate`. Unset options take the preset's value.
#[derive(clap::Args, Debug)]
struct CalibrateArgs {
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

/// The bit widths the quantizer supports (W = A), listed by `--help`.
fn bits_parser() -> impl clap::builder::TypedValueParser<Value = u8> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["2", "3", "4", "8"])
        .map(|s| s.parse::<u8>().expect("one of the listed widths"))
}

fn calibrate(a: CalibrateArgs, root: &std::path::Path) -> anyhow::Result<()> {
    use tdquant_host::calib::calibrate::{read_run_config, CalibConfig, RunOptions};
    let opts = RunOptions {
        stop_after: a.stop_after,
        progress: !a.quiet,
        skip_eval: a.no_eval,
    };
    if let Some(dir) = &a.resume {
        let given = a.method.is_some()
            || a.bits.is_some()
            || a.model.is_some()
            || a.dobi_mode.is_some()
            || !a.dobi_site.is_empty()
            || a.obs_batch.is_some()
            || a.obs_patch.is_some()
            || a.seed.is_some()
            || a.iters.is_some()
            || a.batch.is_some()
            || a.patch.is_some()
            || a.micro_batch.is_some()
            || a.lr.is_some()
            || a.beta1.is_some()
            || a.beta2.is_some()
            || a.schedule.is_some()
            || a.feature_weight.is_some()
            || a.loss_norm.is_some()
            || a.checkpoint_every.is_some()
            || a.calib_dir.is_some()
            || a.sets.is_some()
            || a.out.is_some();
        if given {
            anyhow::bail!(
                "--resume takes the configuration from {}/config.json; give no other configuration option",
                dir.display()
            );
        }
        let cfg = read_run_config(dir)?;
        return app::calibrate(&cfg, dir, true, &opts).map(|_| ());
    }
    let preset = a.preset;
    let mut cfg = CalibConfig::preset(preset, root);
    if let Some(m) = a.method {
        cfg.method = m;
    }
    if let Some(b) = a.bits {
        cfg.bits = b;
    }
    if let Some(m) = a.model {
        cfg.model = m;
    }
    if let Some(m) = a.dobi_mode {
        cfg.dobi_mode = m;
    }
    for o in &a.dobi_site {
        let (k, v) = o.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--dobi-site {o:?}: expected KIND=one-sided|two-sided")
        })?;
        cfg.dobi_overrides.insert(k.to_string(), v.to_string());
    }
    if let Some(v) = a.obs_batch {
        cfg.obs_batch = v;
    }
    if let Some(v) = a.obs_patch {
        cfg.obs_patch = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.iters {
        cfg.dqc.iters = v;
    }
    if let Some(v) = a.batch {
        cfg.dqc.batch = v;
    }
    if let Some(v) = a.patch {
        cfg.dqc.patch = v;
    }
    if let Some(v) = a.micro_batch {
        cfg.dqc.micro_batch = v;
    }
    if let Some(v) = a.lr {
        cfg.dqc.lr = v;
    }
    if let Some(v) = a.beta1 {
        cfg.dqc.beta1 = v;
    }
    if let Some(v) = a.beta2 {
        cfg.dqc.beta2 = v;
    }
    if let Some(v) = a.schedule {
        cfg.dqc.schedule = v;
    }
    if let Some(v) = a.feature_weight {
        cfg.dqc.feature_weight = v;
    }
    if let Some(v) = a.loss_norm {
        cfg.dqc.loss_norm = v;
    }
    if let Some(v) = a.checkpoint_every {
        cfg.dqc.checkpoint_every = v;
    }
    if let Some(v) = a.calib_dir {
        cfg.calib_dir = v;
    }
    if let Some(v) = a.sets {
        cfg.eval_sets = v;
    }
    if a.no_eval {
        // Recorded in config.json, so `--resume` of this run skips it too.
        cfg.eval_sets.clear();
    }
    // Absolute paths in config.json, so `--resume` works from any folder.
    for p in [&mut cfg.model, &mut cfg.calib_dir, &mut cfg.data_root] {
        if let Ok(c) = std::fs::canonicalize(&*p) {
            *p = c;
        }
    }
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "calibrate-{}-w{}-{}",
            cfg.method.name(),
            cfg.bits,
            preset.name()
        ))
    });
    app::calibrate(&cfg, &out, false, &opts).map(|_| ())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let resolved = resolve(cli.data.as_deref());
    let uses_root = !matches!(
        cli.command,
        Command::Upscale { int: Some(_), .. } | Command::Upscale { model: Some(_), .. }
    );
    if uses_root {
        eprintln!(
            "data root: {} ({})",
            resolved.path.display(),
            resolved.source
        );
    }
    let root = resolved.path;
    let model_or_default =
        |m: Option<PathBuf>| m.unwrap_or_else(|| tdquant_host::data_root::default_model(&root));
    match cli.command {
        Command::Calibrate(args) => calibrate(*args, &root),
        Command::Eval {
            int: Some(int),
            sets,
            out,
            tile,
            halo,
            ..
        } => tdquant_host::intmodel::cli_eval(
            &int,
            &root,
            &sets,
            &out,
            tile.map(|t| tdquant_host::tiling::TileChoice {
                tile: Some(t),
                halo,
                ..Default::default()
            }),
        )
        .map(|_| ()),
        Command::Eval {
            model,
            sets,
            out,
            bounds: None,
            bits: None,
            ..
        } => app::eval_fp(&model_or_default(model), &root, &sets, &out).map(|_| ()),
        Command::Eval {
            bounds: None,
            bits: Some(_),
            ..
        } => anyhow::bail!("--bits needs --bounds (the FP model has no bit width)"),
        Command::Eval {
            model,
            sets,
            out,
            bounds: Some(bounds),
            bits,
            ..
        } => {
            app::eval_quant(&model_or_default(model), &bounds, bits, &root, &sets, &out).map(|_| ())
        }
        Command::Upscale {
            input,
            output,
            model,
            int,
            tile,
            halo,
            mem_budget_mib,
        } => {
            let tiles = tdquant_host::tiling::TileChoice {
                tile,
                halo,
                budget: mem_budget_mib.saturating_mul(1 << 20),
            };
            match int {
                Some(int) => tdquant_host::upscale::upscale_int(&int, &input, &output, tiles),
                None => tdquant_host::upscale::upscale_fp(
                    &model_or_default(model),
                    &input,
                    &output,
                    tiles,
                ),
            }
        }
        Command::Export {
            model,
            bounds,
            bits,
            calib,
            output,
        } => tdquant_host::export::cli_export(
            &model_or_default(model),
            &bounds,
            bits,
            calib.as_deref(),
            &root,
            &output,
        )
        .map(|_| ()),
        Command::Parity {
            int,
            sets,
            a,
            b,
            limit,
        } => {
            use tdquant_host::parity::{run_parity, ParityOptions};
            run_parity(&int, &root, &ParityOptions { sets, a, b, limit })
        }
        Command::Bench(BenchCommand::Fp { model, size, iters }) => {
            app::bench_fp(&model_or_default(model), size, size, iters).map(|_| ())
        }
        Command::Bench(BenchCommand::Dqc {
            model,
            bits,
            batch,
            micro_batch,
            patch,
            iters,
        }) => app::bench_dqc(
            &model_or_default(model),
            bits,
            batch,
            micro_batch,
            patch,
            iters,
        )
        .map(|_| ()),
        Command::Bench(BenchCommand::Int {
            model,
            tdq,
            bits,
            size,
            oracle_size,
            iters,
        }) => app::bench_int(
            &root,
            &app::BenchIntOptions {
                model: model_or_default(model),
                tdq,
                bits,
                size,
                oracle_size,
                iters,
            },
        )
        .map(|_| ()),
    }
}

fn main() -> ExitCode {
    app::tune_runtime();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", without_backtrace(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The message without the backtrace that candle appends to its errors when
/// `RUST_BACKTRACE` is set: a user needs the problem, not our stack.
fn without_backtrace(msg: &str) -> String {
    let mut out = Vec::new();
    for line in msg.lines() {
        let t = line.trim_start();
        // Frames are indented: "   0: path::fn" then "      at file:line".
        let indented = line.starts_with(' ');
        let frame = t
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if indented && (frame || t.starts_with("at ")) {
            continue;
        }
        if t == "stack backtrace:" {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::without_backtrace;

    #[test]
    fn candle_backtraces_are_cut_and_the_message_kept() {
        let msg = "loading model m.pth: shape mismatch in conv\n   0: candle_core::error::Error::bt\n             at /x/error.rs:10:5\n   1: tdquant::main\nstack backtrace:";
        assert_eq!(
            without_backtrace(msg),
            "loading model m.pth: shape mismatch in conv"
        );
        let plain = "bounds: expected 384 pairs\nfound 12: see --bits";
        assert_eq!(without_backtrace(plain), plain);
    }
}
