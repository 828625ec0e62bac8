//! BasicSR-exact evaluation of a super-resolver on the benchmark sets.
//!
//! * [`metrics`]: PSNR-Y / SSIM-Y exactly as `basicsr/metrics/psnr_ssim.py`;
//! * [`dataset`]: the BasicSR benchmark layout, GT cropping, LR generation;
//! * [`report`]: per-image / per-set results and their JSON / Markdown forms;
//! * [`compare`]: the labelled side-by-side crop of HR, bicubic and outputs;
//! * [`evaluate_sets`]: the runner. The super-resolver is any closure from an
//!   LR [`RgbImageF32`] (CHW, RGB, `u8 / 255` in f32 — what BasicSR feeds the
//!   network) to an SR [`RgbImageF32`] of exactly `scale ×` the size, not
//!   clamped (the runner applies BasicSR's `tensor2img`: clamp to [0, 1],
//!   `× 255` in f32, round half to even).
//!
//! Per image: LR → SR → `tensor2img` → crop `scale` pixels per side → Y →
//! PSNR / SSIM against the GT (HR cropped to LR size × scale; the GT's own
//! round trip through `/255` and `tensor2img` is the identity, so the u8 GT
//! is used directly). Set means are plain averages over images.

pub mod compare;
pub mod dataset;
pub mod metrics;
pub mod report;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

pub use crate::image_io::{rgb8_to_f32, tensor2img, RgbImageF32};
pub use dataset::{check_sets_exist, BenchmarkEntry, BenchmarkPair, BenchmarkSet};
pub use metrics::{psnr_ssim_y, YScores};
pub use report::{EvalReport, ImageScore, SetReport};

/// Scores one SR output against its GT: `tensor2img(sr)`, then PSNR-Y and
/// SSIM-Y with `crop_border = scale`. Fails if `sr` is not `gt`'s size.
pub fn score_sr(sr: &RgbImageF32, gt: &image::RgbImage, scale: usize) -> anyhow::Result<YScores> {
    anyhow::ensure!(
        (sr.w, sr.h) == (gt.width() as usize, gt.height() as usize),
        "SR output is {}x{}, GT is {}x{}",
        sr.w,
        sr.h,
        gt.width(),
        gt.height()
    );
    psnr_ssim_y(&tensor2img(sr), gt, scale)
}

/// Runs `sr` over every image of each set in `sets` (under
/// `<root>/benchmark/`) at `scale` and scores it BasicSR-exactly. Progress
/// goes to stderr, one line per image. `sr` receives the LR image (CHW f32
/// in [0, 1]) and must return an image of exactly `scale` × its size.
pub fn evaluate_sets(
    root: &Path,
    sets: &[&str],
    scale: usize,
    sr: &mut dyn FnMut(&RgbImageF32) -> anyhow::Result<RgbImageF32>,
) -> anyhow::Result<EvalReport> {
    let t_all = Instant::now();
    let mut set_reports = Vec::with_capacity(sets.len());
    for &set_name in sets {
        let t_set = Instant::now();
        let set = BenchmarkSet::open(root, set_name, scale)?;
        let n = set.entries.len();
        let mut images = Vec::with_capacity(n);
        for (k, entry) in set.entries.iter().enumerate() {
            let pair = set.load(entry)?;
            let lr = rgb8_to_f32(&pair.lr);
            let t_sr = Instant::now();
            let out =
                sr(&lr).with_context(|| format!("super-resolving {set_name}/{}", entry.name))?;
            let sr_seconds = t_sr.elapsed().as_secs_f64();
            anyhow::ensure!(
                (out.h, out.w) == (lr.h * scale, lr.w * scale),
                "{set_name}/{}: SR output is {}x{}, expected {}x{} (LR {}x{} times {scale})",
                entry.name,
                out.w,
                out.h,
                lr.w * scale,
                lr.h * scale,
                lr.w,
                lr.h
            );
            let s = score_sr(&out, &pair.gt, scale)
                .with_context(|| format!("scoring {set_name}/{}", entry.name))?;
            eprintln!(
                "[{set_name} {}/{n}] {:<16} PSNR-Y {:>8.4} dB  SSIM-Y {:.4}  ({sr_seconds:.2} s)",
                k + 1,
                entry.name,
                s.psnr_y,
                s.ssim_y
            );
            images.push(ImageScore {
                name: entry.name.clone(),
                psnr_y: s.psnr_y,
                ssim_y: s.ssim_y,
                lr_h: lr.h,
                lr_w: lr.w,
                sr_seconds,
            });
        }
        set_reports.push(SetReport::from_images(
            set_name,
            images,
            t_set.elapsed().as_secs_f64(),
            set.generated_lr,
        ));
    }
    Ok(EvalReport {
        scale,
        crop_border: scale,
        protocol: report::PROTOCOL.to_string(),
        sets: set_reports,
        seconds: t_all.elapsed().as_secs_f64(),
    })
}
