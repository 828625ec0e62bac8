//! `tdquant bench`: FP forward, one DQC step, integer inference.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use tdquant_host::app;
use tdquant_host::compute_device::ComputeDevice;

use super::{bits_parser, model_or_default};

/// The FP model of `bench fp` and `bench dqc`, and where it runs.
#[derive(clap::Args, Debug)]
pub struct FpModelArgs {
    /// SwinIR-light weights. Default: the stand-in x4 model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Where the model runs (cuda: needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = ComputeDevice::Cpu)]
    device: ComputeDevice,
}

/// The benchmarks of `tdquant bench`.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Full-precision forward time (candle) for one LR image.
    Fp {
        #[command(flatten)]
        fp: FpModelArgs,
        /// LR image size (square).
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Timed runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        iters: usize,
    },
    /// One DQC step (teacher + fake-quant student forward, backward, Adam).
    Dqc {
        #[command(flatten)]
        fp: FpModelArgs,
        /// Bit width (W = A).
        #[arg(long, default_value_t = 4, value_parser = bits_parser())]
        bits: u8,
        /// Patches per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Micro-batch size (gradient accumulation; micro-batches run in
        /// parallel, one per thread); 0 = whole batch. The default is the
        /// quick preset's.
        #[arg(long, default_value_t = 2)]
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

impl BenchCommand {
    pub fn run(self, root: &Path) -> anyhow::Result<()> {
        match self {
            Self::Fp { fp, size, iters } => app::bench_fp(
                &model_or_default(fp.model, root),
                fp.device,
                size,
                size,
                iters,
            )
            .map(|_| ()),
            Self::Dqc {
                fp,
                bits,
                batch,
                micro_batch,
                patch,
                iters,
            } => app::bench_dqc(
                &model_or_default(fp.model, root),
                fp.device,
                bits,
                batch,
                micro_batch,
                patch,
                iters,
            )
            .map(|_| ()),
            Self::Int {
                model,
                tdq,
                bits,
                size,
                oracle_size,
                iters,
            } => app::bench_int(
                root,
                &app::BenchIntOptions {
                    model: model_or_default(model, root),
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
}
