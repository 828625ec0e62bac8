//! `tdquant` — the command-line front end of tdquant-host.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tdquant_host::app;
use tdquant_host::data_root::data_root;

/// 2DQuant low-bit post-training quantization of SwinIR-light, down to
/// integer-only inference.
#[derive(Parser, Debug)]
#[command(name = "tdquant", version, about, long_about = None)]
struct Cli {
    /// Data root (weights, benchmark sets, calibration pool). Defaults to
    /// $TDQUANT_DATA, else ../shared/data.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Calibrate quantization bounds (DOBI, then DQC) for a SwinIR-light model.
    Calibrate {
        /// Remaining arguments (the calibration front end is not built yet).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
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
    },
    /// Export a calibrated model to the packed integer `.tdq` format.
    Export {
        /// Remaining arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Compare CPU-integer and GPU outputs bit for bit.
    Parity {
        /// Remaining arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
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
}

fn not_yet(name: &str) -> anyhow::Result<()> {
    anyhow::bail!("`tdquant {name}` is not implemented in this build yet")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = data_root(cli.data.as_deref());
    let model_or_default = |m: Option<PathBuf>| m.unwrap_or_else(|| app::default_model(&root));
    match cli.command {
        Command::Calibrate { .. } => not_yet("calibrate"),
        Command::Eval { model, sets, out } => {
            app::eval_fp(&model_or_default(model), &root, &sets, &out).map(|_| ())
        }
        Command::Upscale {
            input,
            output,
            model,
        } => app::upscale_fp(&input, &output, &model_or_default(model)),
        Command::Export { .. } => not_yet("export"),
        Command::Parity { .. } => not_yet("parity"),
        Command::Bench(BenchCommand::Fp { model, size, iters }) => {
            app::bench_fp(&model_or_default(model), size, size, iters).map(|_| ())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
