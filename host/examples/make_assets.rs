//! Builds the derived files of the embedded data bundle (`assets/`) from the
//! shared data folder; `scripts/make-assets.sh` runs it and copies the rest.
//!
//! ```text
//! cargo run --release -p tdquant-host --example make_assets -- <shared data> <assets> <crops>
//! ```
//!
//! * `models/swinir_light_x4_local.safetensors`: the learnable tensors of the
//!   stand-in `.pth`, f32, in `expected_shapes` order (the buffers the model
//!   recomputes are dropped): the same tensors bit for bit.
//! * `calib/<folder>/<stem>.png`: `<crops>` images picked evenly from the
//!   sorted calibration pool, each its central 256×256 crop (LR 64×64 at ×4,
//!   the quick preset's observation patch), written as PNG.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tdquant_host::calib::data::list_calib_images;
use tdquant_host::image_io::{read_rgb8, save_png_atomic};
use tdquant_host::weights::{self, expected_shapes};

/// HR side of each calibration crop.
const CROP: u32 = 256;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shared, assets, crops] = args.as_slice() else {
        bail!("usage: make_assets <shared data> <assets> <calibration crops>");
    };
    let (shared, assets) = (PathBuf::from(shared), PathBuf::from(assets));
    let crops: usize = crops.parse().context("number of calibration crops")?;
    convert_weights(
        &shared.join("models/swinir_light_x4_local.pth"),
        &assets.join("models/swinir_light_x4_local.safetensors"),
    )?;
    crop_pool(&shared.join("calib"), &assets.join("calib"), crops)
}

fn convert_weights(pth: &Path, out: &Path) -> Result<()> {
    let w = weights::load(pth)?;
    let mut data = Vec::new();
    for (key, _) in expected_shapes(w.scale) {
        let t = w.get(&key)?;
        let bytes: Vec<u8> = t
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        data.push((key, t.dims().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(k, dims, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, dims.clone(), b)
                .map(|v| (k.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = std::collections::HashMap::from([(
        "source".to_string(),
        "learnable tensors of models/swinir_light_x4_local.pth (stand-in SwinIR-light x4), f32, \
         made by scripts/make-assets.sh"
            .to_string(),
    )]);
    let bytes = safetensors::tensor::serialize(views, Some(meta))?;
    std::fs::create_dir_all(out.parent().context("output folder")?)?;
    tdquant_host::output::write_atomic(out, &bytes)?;
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}

fn crop_pool(pool: &Path, out: &Path, n: usize) -> Result<()> {
    let all = list_calib_images(pool)?;
    if n == 0 || n > all.len() {
        bail!("{n} crops asked of a pool of {} images", all.len());
    }
    for i in 0..n {
        let src = &all[i * all.len() / n];
        let img = read_rgb8(src)?;
        let (w, h) = img.dimensions();
        if w < CROP || h < CROP {
            bail!("{} is smaller than {CROP}x{CROP}", src.display());
        }
        let crop =
            image::imageops::crop_imm(&img, (w - CROP) / 2, (h - CROP) / 2, CROP, CROP).to_image();
        let rel = src.strip_prefix(pool)?.with_extension("png");
        let dst = out.join(rel);
        std::fs::create_dir_all(dst.parent().context("output folder")?)?;
        save_png_atomic(&dst, &crop)?;
    }
    eprintln!("wrote {n} calibration crops under {}", out.display());
    Ok(())
}
