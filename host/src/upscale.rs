//! `tdquant upscale`: one image, FP or integer, in bounded memory. An image
//! whose working set would exceed the memory budget is upscaled tile by tile
//! ([`crate::tiling`]) and written to the PNG band by band, so neither the
//! model's working set nor the output is ever held whole.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::cpu_backend::FastIntModel;
use crate::image_io::{read_rgb8, rgb8_to_f32, tensor2img};
use crate::input_file::PathContext;
use crate::intmodel::IntSr;
use crate::model::SwinIR;
use crate::output::{check_output_path, PngRows};
use crate::progress::Progress;
use crate::tiling::{
    upscale_bands, TileChoice, TilePlan, EXACT_HALO, FP_BYTES_PER_LR_PIXEL, INT_BYTES_PER_LR_PIXEL,
};

/// Halo of the FP model's tiles when none is given: its output is then
/// within the tolerance `tests/tiling_exact.rs` states of the untiled one.
pub const FP_HALO: usize = 32;

/// Upscales an RGB8 image with `run` (a whole-image upscaler), tiled by
/// `plan`, streaming rows into the PNG at `output`; reports the time under
/// `label` (the model).
fn upscale_to_png(
    img: &image::RgbImage,
    scale: usize,
    plan: Option<TilePlan>,
    output: &Path,
    label: &str,
    run: &mut crate::tiling::Upscaler<'_>,
) -> Result<()> {
    let t0 = Instant::now();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let out_w = u32::try_from(w * scale).context("output width exceeds a PNG's")?;
    let out_h = u32::try_from(h * scale).context("output height exceeds a PNG's")?;
    let mut png = PngRows::create(output, out_w, out_h)?;
    match plan {
        None => png.write_rows(&run(img.as_raw(), h, w)?)?,
        Some(p) => {
            eprintln!(
                "tiled: cores of {t}x{t} LR pixels, halo {}, {} bands",
                p.halo,
                h.div_ceil(p.tile),
                t = p.tile
            );
            let mut bar = Progress::new("upscale", h.div_ceil(p.tile) as u64, true);
            upscale_bands(img.as_raw(), h, w, scale, p, run, &mut |band| {
                bar.inc(|| "bands".to_string());
                png.write_rows(band)
            })?;
            bar.finish();
        }
    }
    png.finish()?;
    eprintln!(
        "{label}: {w}x{h} -> {}x{} in {:.2} s, wrote {}",
        w * scale,
        h * scale,
        t0.elapsed().as_secs_f64(),
        output.display()
    );
    Ok(())
}

/// `tdquant upscale --int model.tdq`: the fast integer path; tiled output is
/// byte-identical to untiled output with the default (exact) halo.
pub fn upscale_int(
    model_path: &Path,
    input: &Path,
    output: &Path,
    tiles: TileChoice,
) -> Result<()> {
    check_output_path(output, &["png"], &[input, model_path])?;
    let sr = IntSr::load(model_path)?;
    let img = read_rgb8(input)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plan = tiles.plan(h, w, EXACT_HALO, INT_BYTES_PER_LR_PIXEL)?;
    let model = sr.model();
    let fast = FastIntModel::new(&model)?;
    let label = format!("integer W{b}A{b}", b = model.bits().bits());
    upscale_to_png(&img, sr.scale(), plan, output, &label, &mut |x, ch, cw| {
        fast.upscale(x, ch, cw)
    })
}

/// `tdquant upscale`: the FP model (candle), with the evaluation padding.
pub fn upscale_fp(model_path: &Path, input: &Path, output: &Path, tiles: TileChoice) -> Result<()> {
    check_output_path(output, &["png"], &[input, model_path])?;
    let img = read_rgb8(input)?;
    let model = SwinIR::load(model_path).path_context("loading model", model_path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plan = tiles.plan(h, w, FP_HALO, FP_BYTES_PER_LR_PIXEL)?;
    upscale_to_png(&img, model.scale(), plan, output, "fp", &mut |x, ch, cw| {
        fp_upscale_raw(&model, x, ch, cw)
    })
}

/// The FP model on an interleaved RGB8 buffer, BasicSR's `tensor2img` on the
/// output (what `eval` scores).
pub fn fp_upscale_raw(model: &SwinIR, x: &[u8], h: usize, w: usize) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(w as u32, h as u32, x.to_vec()).context("input size")?;
    let lr = rgb8_to_f32(&img);
    let y = model.upscale_image(&lr, &crate::model::FpHook)?;
    Ok(tensor2img(&y).into_raw())
}
