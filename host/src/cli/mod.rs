//! The `tdquant` command line: one file per subcommand, each holding its
//! options (with their `--help` text) and the call into the library.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use tdquant_host::data_root::{default_model, resolve};

mod bench;
mod calibrate;
mod eval;
mod export;
mod parity;
mod upscale;

/// 2DQuant low-bit post-training quantization of SwinIR-light, down to
/// integer-only inference.
#[derive(Parser, Debug)]
#[command(name = "tdquant", version, about, long_about = None)]
pub struct Cli {
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
    Calibrate(Box<calibrate::CalibrateArgs>),
    /// Evaluate a model on benchmark sets, BasicSR-exact (PSNR/SSIM-Y).
    Eval(eval::EvalArgs),
    /// Upscale one PNG/JPEG image (any bit depth or colour type; read as RGB8).
    Upscale(upscale::UpscaleArgs),
    /// Export a calibrated model to the packed integer `.tdq` format; prints
    /// the file size and the ratio to the FP32 parameter bytes.
    Export(export::ExportArgs),
    /// Compare two or more integer backends bit for bit (SHA-256 per image,
    /// first differing pixel); exits non-zero on any mismatch.
    Parity(parity::ParityArgs),
    /// Benchmarks (FP forward, calibration step, integer inference).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// `model`, else the default model under the data root.
fn model_or_default(model: Option<PathBuf>, root: &Path) -> PathBuf {
    model.unwrap_or_else(|| default_model(root))
}

impl Cli {
    /// Runs the subcommand; says first which data root it uses when it uses one.
    pub fn run(self) -> anyhow::Result<()> {
        let resolved = resolve(self.data.as_deref());
        let uses_root = match &self.command {
            Command::Upscale(a) => a.uses_data_root(),
            _ => true,
        };
        if uses_root {
            eprintln!(
                "data root: {} ({})",
                resolved.path.display(),
                resolved.source
            );
        }
        let root = &resolved.path;
        match self.command {
            Command::Calibrate(args) => args.run(root),
            Command::Eval(args) => args.run(root),
            Command::Upscale(args) => args.run(root),
            Command::Export(args) => args.run(root),
            Command::Parity(args) => args.run(root),
            Command::Bench(command) => command.run(root),
        }
    }
}

/// The bit widths the quantizer supports (W = A), listed by `--help`.
fn bits_parser() -> impl clap::builder::TypedValueParser<Value = u8> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["2", "3", "4", "8"])
        .map(|s| s.parse::<u8>().expect("one of the listed widths"))
}

/// The message of `e` as the CLI prints it: the whole context chain, without
/// the backtrace that candle appends to its errors when `RUST_BACKTRACE` is
/// set (a user needs the problem, not our stack).
pub fn error_message(e: &anyhow::Error) -> String {
    without_backtrace(&format!("{e:#}"))
}

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
