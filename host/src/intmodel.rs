//! Host wrapper of the integer-only SwinIR-light in `tdquant_core::int`:
//! owns the `.tdq` bytes and the scratch, turns images into the `u8` RGB
//! buffers the core runner takes and back, and evaluates the integer path
//! on the benchmark sets (BasicSR protocol, like the FP and fake-quant paths).

use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;
use tdquant_core::int::{self, IntModel, Tiling};

use crate::cpu_backend::FastIntModel;
use crate::eval::{self, EvalReport, RgbImageF32};
use crate::tiling::TileChoice;

/// A loaded, validated integer model.
#[derive(Clone, Debug)]
pub struct IntSr {
    bytes: Vec<u8>,
    scale: usize,
}

impl IntSr {
    /// Validates `bytes` as an integer SwinIR-light.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let scale = IntModel::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("invalid integer model: {e}"))?
            .scale();
        Ok(Self { bytes, scale })
    }

    /// Reads and validates a `.tdq` file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_bytes(bytes).with_context(|| format!("loading {}", path.display()))
    }

    /// The file bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The upscaling factor.
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// The parsed model (parsing is cheap and allocation-free).
    pub fn model(&self) -> IntModel<'_> {
        // Validated in from_bytes; the bytes are immutable since.
        IntModel::parse(&self.bytes).expect("validated at construction")
    }

    /// Upscales an interleaved RGB buffer (`h·w·3` bytes) as one region.
    pub fn upscale_raw(&self, img: &[u8], h: usize, w: usize) -> Result<Vec<u8>> {
        let need = int::scratch_len(h, w).context("image size")?;
        let mut words = vec![0i32; need.words];
        let mut bytes = vec![0u8; need.bytes];
        let s = self.scale;
        let mut out = vec![0u8; h * w * 3 * s * s];
        int::upscale(
            &mut int::ScalarKernels,
            &self.model(),
            img,
            h,
            w,
            &mut out,
            &mut words,
            &mut bytes,
        )
        .map_err(|e| anyhow::anyhow!("integer upscale: {e}"))?;
        Ok(out)
    }

    /// Upscales tile by tile (see `tdquant_core::int::runner` for the rule).
    pub fn upscale_raw_tiled(
        &self,
        img: &[u8],
        h: usize,
        w: usize,
        tiling: Tiling,
    ) -> Result<Vec<u8>> {
        let need = tiling.scratch_len().context("tile size")?;
        let mut words = vec![0i32; need.words];
        let mut bytes = vec![0u8; need.bytes];
        let s = self.scale;
        let mut out = vec![0u8; h * w * 3 * s * s];
        int::upscale_tiled(
            &self.model(),
            img,
            h,
            w,
            tiling,
            &mut out,
            &mut words,
            &mut bytes,
        )
        .map_err(|e| anyhow::anyhow!("integer upscale: {e}"))?;
        Ok(out)
    }

    /// Upscales an RGB8 image.
    pub fn upscale_rgb8(&self, img: &RgbImage, tiling: Option<Tiling>) -> Result<RgbImage> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let out = match tiling {
            Some(t) => self.upscale_raw_tiled(img.as_raw(), h, w, t)?,
            // The fast path: byte-identical to `upscale_raw` (tests/int_fast.rs).
            None => FastIntModel::new(&self.model())?.upscale(img.as_raw(), h, w)?,
        };
        let s = self.scale as u32;
        RgbImage::from_raw(img.width() * s, img.height() * s, out).context("output size")
    }

    /// The evaluation interface: LR as CHW `u8/255` floats → SR floats
    /// (`u8/255`, so BasicSR's `tensor2img` recovers the integer pixels).
    pub fn upscale_f32(&self, lr: &RgbImageF32, tiling: Option<Tiling>) -> Result<RgbImageF32> {
        let img = f32_to_rgb8(lr);
        let out = self.upscale_rgb8(&img, tiling)?;
        Ok(eval::rgb8_to_f32(&out))
    }
}

/// CHW floats holding `u8/255` values → RGB8 (exact inverse of `rgb8_to_f32`).
pub fn f32_to_rgb8(img: &RgbImageF32) -> RgbImage {
    let n = img.h * img.w;
    let mut raw = Vec::with_capacity(3 * n);
    for k in 0..n {
        for c in 0..3 {
            let v = (img.data[c * n + k] * 255.0).round().clamp(0.0, 255.0);
            raw.push(v as u8);
        }
    }
    RgbImage::from_raw(img.w as u32, img.h as u32, raw).expect("sized for the image")
}

/// BasicSR-exact evaluation of the integer model on `sets` under `root`.
///
/// Whole images run on the fast CPU path ([`FastIntModel`], byte-identical
/// to the scalar oracle: `tests/int_fast.rs`); tiled runs use the oracle's
/// tiled runner.
pub fn eval_int(
    model: &IntSr,
    root: &Path,
    sets: &[&str],
    tiles: Option<TileChoice>,
) -> Result<EvalReport> {
    let m = model.model();
    let fast = FastIntModel::new(&m)?;
    let scale = model.scale();
    let s = scale as u32;
    eval::evaluate_sets(root, sets, scale, &mut |lr| {
        let img = f32_to_rgb8(lr);
        let mut run = |x: &[u8], ch: usize, cw: usize| fast.upscale(x, ch, cw);
        let plan = match tiles {
            Some(t) => t.plan(
                lr.h,
                lr.w,
                crate::tiling::EXACT_HALO,
                crate::tiling::INT_BYTES_PER_LR_PIXEL,
            )?,
            None => None,
        };
        let out = match plan {
            None => run(img.as_raw(), lr.h, lr.w)?,
            Some(p) => {
                let mut out = Vec::with_capacity(lr.h * lr.w * 3 * scale * scale);
                crate::tiling::upscale_bands(
                    img.as_raw(),
                    lr.h,
                    lr.w,
                    scale,
                    p,
                    &mut run,
                    &mut |b| {
                        out.extend_from_slice(b);
                        Ok(())
                    },
                )?;
                out
            }
        };
        let out =
            RgbImage::from_raw(img.width() * s, img.height() * s, out).context("output size")?;
        Ok(eval::rgb8_to_f32(&out))
    })
}

/// `tdquant eval --int model.tdq`: BasicSR-exact PSNR/SSIM-Y of the integer
/// path; prints the table and writes `eval.json` / `eval.md` to `out_dir`.
pub fn cli_eval(
    model_path: &Path,
    root: &Path,
    sets: &[String],
    out_dir: &Path,
    tiles: Option<TileChoice>,
) -> Result<EvalReport> {
    let sr = IntSr::load(model_path)?;
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    crate::eval::check_sets_exist(root, &sets)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    eprintln!(
        "integer W{b}A{b} evaluation of {}",
        model_path.display(),
        b = sr.model().bits().bits()
    );
    let report = eval_int(&sr, root, &sets, tiles)?;
    report.print_table();
    crate::output::write_atomic(&out_dir.join("eval.json"), report.to_json().as_bytes())?;
    crate::output::write_atomic(&out_dir.join("eval.md"), report.to_markdown().as_bytes())?;
    eprintln!("wrote {}/eval.json and eval.md", out_dir.display());
    let mut int = |lr: &RgbImageF32| sr.upscale_f32(lr, None);
    eval::compare::write_comparison(
        root,
        sets[0],
        sr.scale(),
        &mut [(
            format!("integer W{b}A{b}", b = sr.model().bits().bits()),
            &mut int,
        )],
        &out_dir.join("compare.png"),
    )?;
    Ok(report)
}
