//! `tdquant eval`: BasicSR-exact PSNR/SSIM-Y of the FP model, of the
//! fake-quant model of a bounds file, or of an integer `.tdq` model.

use std::path::{Path, PathBuf};

use tdquant_host::compute_device::ComputeDevice;
use tdquant_host::tiling::TileChoice;

use super::{bits_parser, model_or_default};

/// Options of `tdquant eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
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
    /// Where the FP or fake-quant model runs (cuda: needs a build with
    /// `--features cuda`).
    #[arg(long, value_enum, default_value_t = ComputeDevice::Cpu)]
    device: ComputeDevice,
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
}

impl EvalArgs {
    pub fn run(self, root: &Path) -> anyhow::Result<()> {
        let Self {
            model,
            sets,
            out,
            bounds,
            bits,
            device,
            int,
            tile,
            halo,
        } = self;
        if let Some(int) = int {
            if device != ComputeDevice::Cpu {
                anyhow::bail!(
                    "--int runs the integer model on the CPU (`tdquant parity --b cuda-fused` runs it on a GPU); drop --device"
                );
            }
            let tiles = tile.map(|t| TileChoice {
                tile: Some(t),
                halo,
                ..Default::default()
            });
            return tdquant_host::intmodel::cli_eval(&int, root, &sets, &out, tiles).map(|_| ());
        }
        let model = model_or_default(model, root);
        match (bounds, bits) {
            (None, None) => {
                tdquant_host::app::eval_fp(&model, device, root, &sets, &out).map(|_| ())
            }
            (None, Some(_)) => {
                anyhow::bail!("--bits needs --bounds (the FP model has no bit width)")
            }
            (Some(bounds), bits) => {
                tdquant_host::app::eval_quant(&model, device, &bounds, bits, root, &sets, &out)
                    .map(|_| ())
            }
        }
    }
}
