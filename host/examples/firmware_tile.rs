//! Host half of the firmware check: cuts an LR tile out of an image, writes it
//! as raw RGB8 for the firmware to embed, and prints the line the firmware
//! must print for it, computed by the CPU oracle (`tdquant_core::int`).
//!
//! ```text
//! cargo run --release -p tdquant-host --example firmware_tile -- \
//!     <model.tdq> <lr.png> <tile side> <out tile.rgb>
//! ```

use anyhow::{bail, Context, Result};
use tdquant_core::int::{runner, IntModel, ScalarKernels};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, image_path, side, out_path] = args.as_slice() else {
        bail!("usage: firmware_tile <model.tdq> <lr.png> <tile side> <out tile.rgb>");
    };
    let side: usize = side.parse().context("tile side")?;
    let bytes = std::fs::read(model_path).with_context(|| format!("reading {model_path}"))?;
    let model = IntModel::parse(&bytes).map_err(|e| anyhow::anyhow!("{model_path}: {e}"))?;
    let img = tdquant_host::image_io::read_rgb8(std::path::Path::new(image_path))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if side == 0 || side > w || side > h {
        bail!("tile {side}x{side} does not fit in {w}x{h}");
    }
    // The top-left tile: deterministic and documented.
    let mut tile = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            tile.extend_from_slice(&img.get_pixel(x as u32, y as u32).0);
        }
    }
    let s = model.scale();
    let mut out = vec![0u8; side * side * 3 * s * s];
    let need = runner::scratch_len(side, side).context("tile too large")?;
    let mut words = vec![0i32; need.words];
    let mut work = vec![0u8; need.bytes];
    runner::upscale(
        &mut ScalarKernels,
        &model,
        &tile,
        side,
        side,
        &mut out,
        &mut words,
        &mut work,
    )
    .map_err(|e| anyhow::anyhow!("integer oracle: {e}"))?;
    std::fs::write(out_path, &tile).with_context(|| format!("writing {out_path}"))?;
    let hex = tdquant_host::weights::sha256_hex(&out);
    println!("TDQ tile h={side} w={side} scale={s} sha256={hex}");
    Ok(())
}
