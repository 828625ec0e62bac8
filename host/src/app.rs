//! The `tdquant` subcommands, as library functions so tests can drive them.
//!
//! `main.rs` only parses arguments; everything that touches files lives here
//! and reports failures as errors naming the offending path or value.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

use crate::eval::{self, EvalReport, RgbImageF32};
use crate::image_io;
use crate::model::hook::{FeatureTap, SiteHook, SiteId};
use crate::model::{self, SwinIR};

/// The benchmark sets `eval` runs when none are named.
pub const DEFAULT_SETS: &[&str] = &["Set5", "Set14", "B100"];

/// Converts an LR image (CHW f32) into a `[1, 3, h, w]` tensor.
pub fn image_to_tensor(img: &RgbImageF32, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(&img.data, (1, 3, img.h, img.w), device)?)
}

/// Converts a `[1, 3, H, W]` model output back into a CHW image.
pub fn tensor_to_image(t: &Tensor) -> Result<RgbImageF32> {
    let (b, c, h, w) = t.dims4()?;
    if b != 1 || c != 3 {
        bail!("expected a [1, 3, H, W] output, got {:?}", t.dims());
    }
    let data = t.flatten_all()?.to_vec1::<f32>()?;
    RgbImageF32::new(h, w, data)
}

/// A [`SiteHook`] that leaves the model in full precision and reports
/// progress (one tick per RSTB, four in all) on long inputs.
struct ProgressHook {
    bar: indicatif::ProgressBar,
}

impl SiteHook for ProgressHook {
    fn weight(&self, _: SiteId, w: &Tensor) -> candle_core::Result<Tensor> {
        Ok(w.clone())
    }
    fn act(&self, _: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
    fn feature(&self, tap: FeatureTap, _: &Tensor) -> candle_core::Result<()> {
        if matches!(tap, FeatureTap::Layer(_)) {
            self.bar.inc(1);
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, then a rename, so no reader ever sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// `tdquant eval`: BasicSR-exact PSNR/SSIM-Y of the FP model on `sets`;
/// prints the table and writes `eval.json` and `eval.md` into `out_dir`.
pub fn eval_fp(
    model_path: &Path,
    data_root: &Path,
    sets: &[String],
    out_dir: &Path,
) -> Result<EvalReport> {
    let model = SwinIR::load(model_path)
        .with_context(|| format!("loading model {}", model_path.display()))?;
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    check_sets_exist(data_root, &sets)?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let device = model.device().clone();
    let report = eval::evaluate_sets(data_root, &sets, model.scale(), &mut |lr| {
        let x = image_to_tensor(lr, &device)?;
        tensor_to_image(&model.upscale(&x)?)
    })?;
    report.print_table();
    write_atomic(&out_dir.join("eval.json"), report.to_json().as_bytes())?;
    write_atomic(&out_dir.join("eval.md"), report.to_markdown().as_bytes())?;
    eprintln!("wrote {}/eval.json and eval.md", out_dir.display());
    Ok(report)
}

/// Fails early, naming the folder, when a benchmark set is missing.
pub fn check_sets_exist(data_root: &Path, sets: &[&str]) -> Result<()> {
    if sets.is_empty() {
        bail!("no benchmark sets named");
    }
    for set in sets {
        let dir = data_root.join("benchmark").join(set).join("HR");
        if !dir.is_dir() {
            bail!(
                "benchmark set {set:?} not found: {} is not a directory (data root {})",
                dir.display(),
                data_root.display()
            );
        }
    }
    Ok(())
}

/// `tdquant upscale`: reads any PNG/JPEG (converted to RGB8, see
/// [`image_io::read_rgb8`]), runs the FP model with the evaluation padding,
/// writes the PNG atomically.
pub fn upscale_fp(input: &Path, output: &Path, model_path: &Path) -> Result<()> {
    let lr = image_io::read_rgb8(input)?;
    let model = SwinIR::load(model_path)
        .with_context(|| format!("loading model {}", model_path.display()))?;
    let img = image_io::rgb8_to_f32(&lr);
    let x = image_to_tensor(&img, model.device())?;
    let big = img.h * img.w >= 128 * 128;
    let bar = if big {
        let bar = indicatif::ProgressBar::new(4);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] RSTB {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("upscaling {}x{} x{}", img.w, img.h, model.scale()));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let t0 = Instant::now();
    let y = model.upscale_with(&x, &ProgressHook { bar: bar.clone() })?;
    bar.finish_and_clear();
    let sr = image_io::tensor2img(&tensor_to_image(&y)?);
    image_io::save_png_atomic(output, &sr)?;
    eprintln!(
        "{} ({}x{}) -> {} ({}x{}) in {:.2} s",
        input.display(),
        img.w,
        img.h,
        output.display(),
        sr.width(),
        sr.height(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `tdquant bench fp`: median FP forward time for an `h × w` LR image.
pub fn bench_fp(model_path: &Path, h: usize, w: usize, iters: usize) -> Result<f64> {
    let model = SwinIR::load(model_path)
        .with_context(|| format!("loading model {}", model_path.display()))?;
    let t = model::bench_fp_forward(&model, h, w, iters)?;
    let secs = t.as_secs_f64();
    println!(
        "fp forward  x{}  LR {h}x{w}  median of {iters}: {:.3} s  ({:.3} images/s, {} threads)",
        model.scale(),
        secs,
        1.0 / secs,
        candle_core::utils::get_num_threads()
    );
    Ok(secs)
}

/// The default model: the stand-in ×4 SwinIR-light under the data root.
pub fn default_model(data_root: &Path) -> PathBuf {
    data_root.join("models").join("swinir_light_x4_local.pth")
}
