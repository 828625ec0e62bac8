//! `tdquant export`: FP weights and a bounds file to the packed integer
//! `.tdq` model.

use std::path::{Path, PathBuf};

use super::{bits_parser, model_or_default};

/// Options of `tdquant export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
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
}

impl ExportArgs {
    pub fn run(self, root: &Path) -> anyhow::Result<()> {
        tdquant_host::export::cli_export(
            &model_or_default(self.model, root),
            &self.bounds,
            self.bits,
            self.calib.as_deref(),
            root,
            &self.output,
        )
        .map(|_| ())
    }
}
