//! Calibration data: LR patches cropped from the images under
//! `$TDQUANT_DATA/calib` (subfolders `kodak24`, `mcmaster`, `skimage`,
//! `sun_hays80`; PNG / JPEG), and the deterministic RNG that picks them.
//!
//! # Pipeline
//!
//! 1. [`CalibPool::open`] lists every `.png` / `.jpg` / `.jpeg` file under the
//!    folder (recursively, sorted by path, so the order never depends on the
//!    file system), reads it as RGB8 and makes its LR with the MATLAB-exact
//!    bicubic `imresize(·, 1/s)` of the mod-cropped HR
//!    ([`crate::bicubic::downscale`]), exactly as the released data
//!    (`DF2K/LR_bicubic/X{s}`) was made. It fails — before any long work —
//!    on a missing or empty folder and on an image whose LR is smaller than
//!    the patch, naming the file.
//! 2. [`CalibPool::sample_batch`] draws `B` patches `P×P` from the LR images:
//!    per patch, in this order, image `i = below(n_images)`, top
//!    `y = below(h − P + 1)`, left `x = below(w − P + 1)`, then three coin
//!    flips (`next_u64() >> 63`) for horizontal flip, vertical flip and
//!    transpose (BasicSR `augment`: `hflip`, `vflip`, `rot90` = transpose,
//!    applied in that order, each with p = 0.5). Pixels are `u8 / 255` in
//!    f32 as BasicSR loads them.
//!
//! # RNG
//!
//! [`SplitMix64`] (Steele, Lea & Flood 2014; the generator Java's
//! `SplittableRandom` uses): state `s += 0x9E3779B97F4A7C15`, output
//! `z = s; z = (z ^ z>>30)·0xBF58476D1CE4E5B9; z = (z ^ z>>27)·0x94D049BB133111EB;
//! z ^ z>>31`. Its whole state is one `u64`, saved in DQC checkpoints.
//! `below(n)` is Lemire's unbiased multiply-shift with rejection. The seed
//! is the initial state.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::bicubic::downscale;
use crate::image_io::read_rgb8;

/// Sub-folder of the data root holding the calibration images.
pub const CALIB_DIR: &str = "calib";

/// The SplitMix64 generator (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    /// The state (the seed before the first draw).
    pub state: u64,
}

impl SplitMix64 {
    /// Generator with state `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n` (`n ≥ 1`), unbiased (Lemire 2019).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

/// Errors of the calibration data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The folder does not exist.
    #[error("calibration folder {0} does not exist (give --calib-dir, or a data root with a calib/ folder of PNG/JPEG images)")]
    Missing(PathBuf),
    /// No image in the folder.
    #[error("calibration folder {0} contains no PNG/JPEG images")]
    Empty(PathBuf),
    /// An image whose LR is smaller than the patch.
    #[error("calibration image {path} is too small: its x{scale} LR is {w}x{h}, smaller than the {patch}x{patch} patch")]
    TooSmall {
        /// The image.
        path: PathBuf,
        /// Model scale.
        scale: usize,
        /// LR width.
        w: usize,
        /// LR height.
        h: usize,
        /// Patch size.
        patch: usize,
    },
    /// The patch size is unusable.
    #[error("patch size {0} must be a positive multiple of 8 (the window size)")]
    Patch(usize),
    /// Reading or downscaling an image failed.
    #[error("calibration image {path}: {source}")]
    Image {
        /// The image.
        path: PathBuf,
        /// The cause.
        source: anyhow::Error,
    },
}

/// One LR calibration image.
#[derive(Debug, Clone)]
pub struct CalibImage {
    /// Source file.
    pub path: PathBuf,
    /// The LR image (u8 RGB).
    pub lr: RgbImage,
}

/// The LR calibration images of one scale.
#[derive(Debug, Clone)]
pub struct CalibPool {
    /// The folder.
    pub dir: PathBuf,
    /// Model scale used for the LR.
    pub scale: usize,
    /// Images, sorted by path.
    pub images: Vec<CalibImage>,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// Every PNG/JPEG under `dir` (recursively), sorted.
pub fn list_calib_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing(dir.to_path_buf()));
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| DataError::Image {
            path: d.clone(),
            source: e.into(),
        })?;
        for e in rd {
            let p = e
                .map_err(|e| DataError::Image {
                    path: d.clone(),
                    source: e.into(),
                })?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(DataError::Empty(dir.to_path_buf()));
    }
    Ok(out)
}

/// `Err` unless `patch` is a positive multiple of 8.
pub fn check_patch(patch: usize) -> Result<(), DataError> {
    if patch == 0 || !patch.is_multiple_of(8) {
        return Err(DataError::Patch(patch));
    }
    Ok(())
}

impl CalibPool {
    /// Read and downscale every image under `dir`; every LR must hold a
    /// `min_patch × min_patch` crop. Images are decoded and resized in
    /// parallel (results in path order).
    pub fn open(dir: &Path, scale: usize, min_patch: usize) -> Result<Self, DataError> {
        check_patch(min_patch)?;
        let paths = list_calib_images(dir)?;
        let results: Vec<Result<CalibImage, DataError>> = {
            use rayon::prelude::*;
            paths
                .par_iter()
                .map(|path| {
                    let img_err = |source: anyhow::Error| DataError::Image {
                        path: path.clone(),
                        source,
                    };
                    let hr = read_rgb8(path).map_err(|e| img_err(e.into()))?;
                    let lr = downscale(&hr, scale).map_err(img_err)?;
                    let (w, h) = (lr.width() as usize, lr.height() as usize);
                    if w < min_patch || h < min_patch {
                        return Err(DataError::TooSmall {
                            path: path.clone(),
                            scale,
                            w,
                            h,
                            patch: min_patch,
                        });
                    }
                    Ok(CalibImage {
                        path: path.clone(),
                        lr,
                    })
                })
                .collect()
        };
        let images = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            scale,
            images,
        })
    }

    /// Draw `batch` augmented `patch × patch` crops → `[batch, 3, patch, patch]`
    /// in [0, 1] (see the module docs for the exact RNG use).
    pub fn sample_batch(
        &self,
        rng: &mut SplitMix64,
        batch: usize,
        patch: usize,
        device: &Device,
    ) -> anyhow::Result<Tensor> {
        check_patch(patch)?;
        anyhow::ensure!(batch > 0, "batch size must be at least 1");
        let n = patch * patch;
        let mut data = vec![0f32; batch * 3 * n];
        for b in 0..batch {
            let img = &self.images[rng.below(self.images.len() as u64) as usize];
            let (w, h) = (img.lr.width() as usize, img.lr.height() as usize);
            anyhow::ensure!(
                w >= patch && h >= patch,
                "calibration image {} (LR {w}x{h}) is smaller than the {patch}x{patch} patch",
                img.path.display()
            );
            let y0 = rng.below((h - patch + 1) as u64) as usize;
            let x0 = rng.below((w - patch + 1) as u64) as usize;
            let hflip = rng.coin();
            let vflip = rng.coin();
            let transpose = rng.coin();
            let raw = img.lr.as_raw();
            let out = &mut data[b * 3 * n..(b + 1) * 3 * n];
            for oy in 0..patch {
                for ox in 0..patch {
                    // Output (oy, ox) after hflip → vflip → transpose reads the crop at:
                    let (mut cy, mut cx) = if transpose { (ox, oy) } else { (oy, ox) };
                    if vflip {
                        cy = patch - 1 - cy;
                    }
                    if hflip {
                        cx = patch - 1 - cx;
                    }
                    let src = ((y0 + cy) * w + (x0 + cx)) * 3;
                    for c in 0..3 {
                        out[c * n + oy * patch + ox] = f32::from(raw[src + c]) / 255.0;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(data, (batch, 3, patch, patch), device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference: Vigna's splitmix64.c with x = 1234567.
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        let mut r = SplitMix64::new(7);
        for n in [1u64, 2, 3, 10, 1000] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
    }
}
