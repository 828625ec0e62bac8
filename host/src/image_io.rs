//! Image file I/O and the pixel conversions used around the model.
//!
//! * [`read_rgb8`] decodes a PNG or JPEG of any bit depth and colour type and
//!   converts it to 8-bit RGB:
//!   - gray (and gray+alpha) is replicated into R = G = B;
//!   - alpha is **dropped**, not premultiplied or composited (an RGBA pixel
//!     `(r, g, b, a)` becomes `(r, g, b)` whatever `a` is) — the same as
//!     OpenCV's `IMREAD_COLOR`, which BasicSR uses;
//!   - 16-bit samples become 8-bit by rounding `v / 257` to the nearest
//!     integer (computed exactly as `(v + 128) / 257` in integers; `v / 257`
//!     is never exactly halfway);
//!   - palette and 1/2/4-bit PNGs are expanded by the decoder (palette → RGB,
//!     tRNS → alpha, low bit depths scaled to 0..=255), then treated as above;
//!   - float images (not produced by PNG/JPEG, handled for completeness) are
//!     clamped to [0, 1], scaled by 255 and rounded half to even; NaN → 0.
//! * [`save_png_atomic`] writes a PNG through a temporary file in the target
//!   directory and renames it into place, so a failed write never leaves a
//!   partial (or any) file at the target path.
//! * [`RgbImageF32`] is the float image the model consumes and produces:
//!   RGB, channel-first (CHW), nominally in [0, 1]. [`rgb8_to_f32`] is
//!   BasicSR's `img.astype(np.float32) / 255.` and [`tensor2img`] is BasicSR's
//!   `tensor2img` (clamp to [0, 1], `× 255` in f32, round half to even, u8).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::png::PngEncoder;
use image::{DynamicImage, ExtendedColorType, ImageEncoder, ImageReader, RgbImage};

/// Errors of image reading and writing; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageIoError {
    /// The file could not be opened or read.
    #[error("cannot read image file {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a decodable PNG/JPEG (corrupt,
    /// truncated, or an unknown format).
    #[error("cannot decode image {}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// The image decoded to a pixel layout this module does not convert.
    #[error("unsupported image {}: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        what: String,
    },
    /// Encoding or writing the output file failed.
    #[error("cannot write image {}", path.display())]
    Write {
        /// The target file (not the temporary one).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The PNG encoder rejected the image (for example a zero-sized image).
    #[error("cannot encode PNG {}", path.display())]
    Encode {
        /// The target file.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
}

/// A float RGB image, channel-first: `data[c * h * w + y * w + x]`, channels
/// in R, G, B order. Values are nominally in [0, 1] (model outputs may leave
/// that range; [`tensor2img`] clamps).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImageF32 {
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// `3 * h * w` samples, CHW.
    pub data: Vec<f32>,
}

impl RgbImageF32 {
    /// Wraps CHW data; fails unless `data.len() == 3 * h * w`.
    pub fn new(h: usize, w: usize, data: Vec<f32>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            data.len() == 3 * h * w,
            "RgbImageF32 {h}x{w} needs {} samples, got {}",
            3 * h * w,
            data.len()
        );
        Ok(Self { h, w, data })
    }

    /// An all-zero image.
    pub fn zeros(h: usize, w: usize) -> Self {
        Self {
            h,
            w,
            data: vec![0.0; 3 * h * w],
        }
    }

    /// The sample of channel `c` (0 = R) at row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }

    /// One channel plane (`h * w` samples, row-major).
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.h * self.w;
        &self.data[c * n..(c + 1) * n]
    }
}

/// Reads a PNG or JPEG file and converts it to 8-bit RGB (see the module
/// documentation for the exact conversion of each colour type).
pub fn read_rgb8(path: &Path) -> Result<RgbImage, ImageIoError> {
    let open_err = |source| ImageIoError::Open {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path)
        .map_err(open_err)?
        .with_guessed_format()
        .map_err(open_err)?;
    let img = reader.decode().map_err(|source| ImageIoError::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    dynamic_to_rgb8(img).map_err(|what| ImageIoError::Unsupported {
        path: path.to_path_buf(),
        what,
    })
}

/// 16-bit sample → 8-bit: `v / 257` rounded to nearest (never a tie).
pub fn u16_to_u8(v: u16) -> u8 {
    ((u32::from(v) + 128) / 257) as u8
}

/// f32 sample in nominal [0, 1] → u8 as BasicSR's `tensor2img` does: clamp to
/// [0, 1], multiply by 255 in f32, round half to even (numpy `round` on a
/// float32 array), convert. NaN maps to 0.
pub fn f32_to_u8_basicsr(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    let c = v.clamp(0.0, 1.0);
    (c * 255.0_f32).round_ties_even() as u8
}

/// Converts a decoded image to 8-bit RGB; `Err` describes an unsupported
/// layout.
pub fn dynamic_to_rgb8(img: DynamicImage) -> Result<RgbImage, String> {
    let (w, h) = (img.width(), img.height());
    // Interleaved samples with `channels` per pixel (gray, gray + alpha,
    // RGB, RGBA) → RGB8: gray is replicated, alpha dropped.
    fn rgb<T: Copy>(w: u32, h: u32, s: &[T], channels: usize, to8: fn(T) -> u8) -> RgbImage {
        let out = s
            .chunks_exact(channels)
            .flat_map(|px| match channels {
                1 | 2 => [to8(px[0]); 3],
                _ => [to8(px[0]), to8(px[1]), to8(px[2])],
            })
            .collect();
        RgbImage::from_raw(w, h, out).expect("buffer sized for the image")
    }
    let same = |v: u8| v;
    Ok(match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageLuma8(i) => rgb(w, h, i.as_raw(), 1, same),
        DynamicImage::ImageLumaA8(i) => rgb(w, h, i.as_raw(), 2, same),
        DynamicImage::ImageRgba8(i) => rgb(w, h, i.as_raw(), 4, same),
        DynamicImage::ImageLuma16(i) => rgb(w, h, i.as_raw(), 1, u16_to_u8),
        DynamicImage::ImageLumaA16(i) => rgb(w, h, i.as_raw(), 2, u16_to_u8),
        DynamicImage::ImageRgb16(i) => rgb(w, h, i.as_raw(), 3, u16_to_u8),
        DynamicImage::ImageRgba16(i) => rgb(w, h, i.as_raw(), 4, u16_to_u8),
        DynamicImage::ImageRgb32F(i) => rgb(w, h, i.as_raw(), 3, f32_to_u8_basicsr),
        DynamicImage::ImageRgba32F(i) => rgb(w, h, i.as_raw(), 4, f32_to_u8_basicsr),
        other => return Err(format!("pixel layout {:?}", other.color())),
    })
}

/// u8 RGB → float CHW in [0, 1], as BasicSR loads images:
/// `img.astype(np.float32) / 255.` (an f32 division, correctly rounded).
pub fn rgb8_to_f32(img: &RgbImage) -> RgbImageF32 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let n = h * w;
    let mut data = vec![0.0_f32; 3 * n];
    for (k, px) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * n + k] = f32::from(px[c]) / 255.0_f32;
        }
    }
    RgbImageF32 { h, w, data }
}

/// BasicSR `tensor2img`: float CHW → u8 RGB, each sample clamped to [0, 1],
/// multiplied by 255 in f32 and rounded half to even (see
/// [`f32_to_u8_basicsr`]).
pub fn tensor2img(img: &RgbImageF32) -> RgbImage {
    let n = img.h * img.w;
    let mut out = Vec::with_capacity(3 * n);
    for k in 0..n {
        for c in 0..3 {
            out.push(f32_to_u8_basicsr(img.data[c * n + k]));
        }
    }
    RgbImage::from_raw(img.w as u32, img.h as u32, out).expect("buffer sized for the image")
}

/// Writes `img` as a PNG to `path` atomically: the PNG is written and synced
/// to a hidden temporary file in the same directory, which is then renamed
/// onto `path` (replacing an existing file). On any failure the temporary
/// file is removed and `path` is left untouched (not created if it did not
/// exist).
pub fn save_png_atomic(path: &Path, img: &RgbImage) -> Result<(), ImageIoError> {
    let write_err = |source| ImageIoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = crate::output::temp_path_for(path).map_err(|e| {
        write_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            e.to_string(),
        ))
    })?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(write_err)?;
    let result =
        write_png(file, img, path).and_then(|()| fs::rename(&tmp, path).map_err(write_err));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_png(file: File, img: &RgbImage, path: &Path) -> Result<(), ImageIoError> {
    let write_err = |source| ImageIoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut w = BufWriter::new(file);
    PngEncoder::new(&mut w)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|source| match source {
            image::ImageError::IoError(e) => write_err(e),
            source => ImageIoError::Encode {
                path: path.to_path_buf(),
                source,
            },
        })?;
    w.flush().map_err(write_err)?;
    let file = w.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u16_rounding() {
        assert_eq!(u16_to_u8(0), 0);
        assert_eq!(u16_to_u8(65535), 255);
        assert_eq!(u16_to_u8(257 * 100), 100);
        assert_eq!(u16_to_u8(257 * 100 + 128), 100);
        assert_eq!(u16_to_u8(257 * 100 + 129), 101);
        for v in 0..=u16::MAX {
            assert_eq!(u16_to_u8(v), (f64::from(v) / 257.0).round() as u8);
        }
    }

    #[test]
    fn basicsr_u8_round_trip_is_identity() {
        // GT goes through `astype(float32)/255.` then `tensor2img`; that must
        // give the original u8 back for every value.
        for v in 0..=255u8 {
            assert_eq!(f32_to_u8_basicsr(f32::from(v) / 255.0), v);
        }
    }

    #[test]
    fn tensor2img_rounds_half_to_even_in_f32() {
        // 0.5/255 → ×255 in f32 is exactly 0.5 → ties to even → 0.
        let half = 0.5_f32 / 255.0;
        assert_eq!(half * 255.0, 0.5);
        assert_eq!(f32_to_u8_basicsr(half), 0);
        let one_half = 1.5_f32 / 255.0;
        assert_eq!(one_half * 255.0, 1.5);
        assert_eq!(f32_to_u8_basicsr(one_half), 2);
        assert_eq!(f32_to_u8_basicsr(-3.0), 0);
        assert_eq!(f32_to_u8_basicsr(7.0), 255);
        assert_eq!(f32_to_u8_basicsr(f32::NAN), 0);
    }
}
