//! `tdquant upscale`: one image through the FP model or an integer `.tdq`
//! model, tiled when asked or when the image exceeds the memory budget.

use std::path::{Path, PathBuf};

use tdquant_host::tiling::TileChoice;

use super::model_or_default;

/// Options of `tdquant upscale`.
#[derive(clap::Args, Debug)]
pub struct UpscaleArgs {
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
}

impl UpscaleArgs {
    /// Whether the data root is read: only for the default model.
    pub fn uses_data_root(&self) -> bool {
        self.int.is_none() && self.model.is_none()
    }

    pub fn run(self, root: &Path) -> anyhow::Result<()> {
        let tiles = TileChoice {
            tile: self.tile,
            halo: self.halo,
            budget: self.mem_budget_mib.saturating_mul(1 << 20),
        };
        match self.int {
            Some(int) => tdquant_host::upscale::upscale_int(&int, &self.input, &self.output, tiles),
            None => tdquant_host::upscale::upscale_fp(
                &model_or_default(self.model, root),
                &self.input,
                &self.output,
                tiles,
            ),
        }
    }
}
