//! Host half of the whole-image firmware check: writes an LR image as raw
//! RGB8 for the firmware to embed, and prints the line the firmware must
//! print for it: the SHA-256 of the ×s output of the CPU oracle's tiled run
//! (`tdquant_core::int::upscale_tiled`, the same cores and halos).
//!
//! ```text
//! cargo run --release -p tdquant-host --example firmware_image -- \
//!     <model.tdq> <lr.png> <tile> <halo> <out image.rgb>
//! ```

use anyhow::{bail, Context, Result};
use tdquant_core::int::{upscale_tiled, IntModel, Tiling};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, image_path, tile, halo, out_path] = args.as_slice() else {
        bail!("usage: firmware_image <model.tdq> <lr.png> <tile> <halo> <out image.rgb>");
    };
    let tiling = Tiling {
        tile: tile.parse().context("tile")?,
        halo: halo.parse().context("halo")?,
    };
    let bytes = std::fs::read(model_path).with_context(|| format!("reading {model_path}"))?;
    let model = IntModel::parse(&bytes).map_err(|e| anyhow::anyhow!("{model_path}: {e}"))?;
    let img = tdquant_host::image_io::read_rgb8(std::path::Path::new(image_path))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.into_raw();
    let s = model.scale();
    let mut out = vec![0u8; h * w * 3 * s * s];
    let need = tiling.scratch_len().context("tile too large")?;
    let mut words = vec![0i32; need.words];
    let mut work = vec![0u8; need.bytes];
    upscale_tiled(&model, &rgb, h, w, tiling, &mut out, &mut words, &mut work)
        .map_err(|e| anyhow::anyhow!("integer oracle: {e}"))?;
    std::fs::write(out_path, &rgb).with_context(|| format!("writing {out_path}"))?;
    let hex = tdquant_host::weights::sha256_hex(&out);
    println!(
        "TDQ image h={h} w={w} scale={s} tile={} halo={} sha256={hex}",
        tiling.tile, tiling.halo
    );
    Ok(())
}
