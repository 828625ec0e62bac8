//! Benchmark sets in the BasicSR layout:
//! `<root>/benchmark/<Set>/HR/<name>.png` and
//! `<root>/benchmark/<Set>/LR_bicubic/X<s>/<name>x<s>.png` (Manga109's
//! `<name>_LRBI_x<s>.png` is accepted too).
//!
//! Images are listed from the HR folder (PNG/JPEG files, by file stem) and
//! sorted by name. The GT is the HR image cropped to LR size × s (BasicSR's
//! `img_gt[0:h_lq * s, 0:w_lq * s]`). If the set has no `LR_bicubic/X<s>`
//! folder at all, the LR images are made from the HR images with the
//! MATLAB-exact bicubic downscaler ([`crate::bicubic::downscale`]),
//! which reproduces the stored LR files byte for byte; a present folder with
//! a missing file is an error.

use std::path::{Path, PathBuf};

use anyhow::Context;
use image::RgbImage;

use crate::bicubic::downscale;
use crate::image_io::read_rgb8;

/// One image of a benchmark set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkEntry {
    /// The HR file stem, e.g. `baby`.
    pub name: String,
    /// The HR file.
    pub hr_path: PathBuf,
    /// The LR file, `None` when the LR is generated from the HR.
    pub lr_path: Option<PathBuf>,
}

/// A benchmark set at one scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkSet {
    /// Set name, e.g. `Set5`.
    pub name: String,
    /// Upscaling factor.
    pub scale: usize,
    /// True when the set has no LR folder for this scale and the LR images
    /// are generated with the bicubic downscaler.
    pub generated_lr: bool,
    /// The images, sorted by name.
    pub entries: Vec<BenchmarkEntry>,
}

/// A loaded LR/GT pair.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkPair {
    /// Image name.
    pub name: String,
    /// The LR input.
    pub lr: RgbImage,
    /// The GT: HR cropped to `lr` size × scale.
    pub gt: RgbImage,
}

/// `<root>/benchmark/<set>`.
pub fn set_dir(root: &Path, set: &str) -> PathBuf {
    root.join("benchmark").join(set)
}

/// `<root>/benchmark/<set>/LR_bicubic/X<scale>`.
pub fn lr_dir(root: &Path, set: &str, scale: usize) -> PathBuf {
    set_dir(root, set)
        .join("LR_bicubic")
        .join(format!("X{scale}"))
}

fn is_image_file(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// The image files of a folder as `(stem, path)`, sorted by stem.
pub fn list_images(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let rd = std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut out = Vec::new();
    for e in rd {
        let p = e
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if !is_image_file(&p) {
            continue;
        }
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("non-UTF-8 file name {}", p.display()))?
            .to_string();
        out.push((stem, p));
    }
    out.sort();
    anyhow::ensure!(
        out.windows(2).all(|w| w[0].0 != w[1].0),
        "{} has two images with the same name",
        dir.display()
    );
    Ok(out)
}

/// Finds the LR file of `name` in `dir`: `<name>x<s>.<ext>` or
/// `<name>_LRBI_x<s>.<ext>` for ext png/jpg/jpeg.
pub fn find_lr_file(dir: &Path, name: &str, scale: usize) -> Option<PathBuf> {
    for stem in [format!("{name}x{scale}"), format!("{name}_LRBI_x{scale}")] {
        for ext in ["png", "PNG", "jpg", "jpeg"] {
            let p = dir.join(format!("{stem}.{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

impl BenchmarkSet {
    /// Lists a set; logs to stderr when the LR images will be generated.
    pub fn open(root: &Path, set: &str, scale: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(scale >= 1, "scale must be at least 1");
        let hr_dir = set_dir(root, set).join("HR");
        anyhow::ensure!(
            hr_dir.is_dir(),
            "benchmark set {set}: no HR folder {}",
            hr_dir.display()
        );
        let hr = list_images(&hr_dir)?;
        anyhow::ensure!(
            !hr.is_empty(),
            "benchmark set {set}: no images in {}",
            hr_dir.display()
        );
        let lr_dir = lr_dir(root, set, scale);
        let generated_lr = !lr_dir.is_dir();
        if generated_lr {
            eprintln!(
                "{set}: no {}, generating x{scale} LR images with MATLAB-exact bicubic",
                lr_dir.display()
            );
        }
        let mut entries = Vec::with_capacity(hr.len());
        for (name, hr_path) in hr {
            let lr_path = if generated_lr {
                None
            } else {
                Some(find_lr_file(&lr_dir, &name, scale).with_context(|| {
                    format!(
                        "benchmark set {set}: no LR file {name}x{scale}.png in {}",
                        lr_dir.display()
                    )
                })?)
            };
            entries.push(BenchmarkEntry {
                name,
                hr_path,
                lr_path,
            });
        }
        Ok(Self {
            name: set.to_string(),
            scale,
            generated_lr,
            entries,
        })
    }

    /// Loads one pair (LR read or generated, GT cropped to LR size × scale).
    pub fn load(&self, entry: &BenchmarkEntry) -> anyhow::Result<BenchmarkPair> {
        let hr = read_rgb8(&entry.hr_path)?;
        let lr = match &entry.lr_path {
            Some(p) => read_rgb8(p)?,
            None => downscale(&hr, self.scale)
                .with_context(|| format!("downscaling {}", entry.hr_path.display()))?,
        };
        let gt = crop_gt(&hr, &lr, self.scale)
            .with_context(|| format!("{}/{}", self.name, entry.name))?;
        Ok(BenchmarkPair {
            name: entry.name.clone(),
            lr,
            gt,
        })
    }
}

/// The HR image cropped to the LR size × `scale` (top-left), as BasicSR's
/// paired dataset does for validation.
pub fn crop_gt(hr: &RgbImage, lr: &RgbImage, scale: usize) -> anyhow::Result<RgbImage> {
    let (tw, th) = (lr.width() as usize * scale, lr.height() as usize * scale);
    anyhow::ensure!(
        hr.width() as usize >= tw && hr.height() as usize >= th,
        "HR {}x{} is smaller than LR {}x{} times {scale}",
        hr.width(),
        hr.height(),
        lr.width(),
        lr.height()
    );
    Ok(image::imageops::crop_imm(hr, 0, 0, tw as u32, th as u32).to_image())
}

/// Fails early, naming the folder, when a benchmark set is missing.
pub fn check_sets_exist(data_root: &Path, sets: &[&str]) -> anyhow::Result<()> {
    if sets.is_empty() {
        anyhow::bail!("no benchmark sets named");
    }
    for set in sets {
        let dir = data_root.join("benchmark").join(set).join("HR");
        if !dir.is_dir() {
            anyhow::bail!(
                "benchmark set {set:?} not found: {} is not a directory (data root {})",
                dir.display(),
                data_root.display()
            );
        }
    }
    Ok(())
}
