//! PSNR-Y and SSIM-Y exactly as BasicSR's `basicsr/metrics/psnr_ssim.py`
//! computes them with `test_y_channel: true`.
//!
//! The BasicSR chain, for each of the SR output and the GT (both u8 images
//! from `tensor2img`, see [`crate::image_io::tensor2img`]):
//!
//! 1. crop `crop_border` pixels on every side (`img[c:-c, c:-c, ...]`; no crop
//!    when 0);
//! 2. `to_y_channel`: `img.astype(np.float32) / 255.` (f32), then
//!    `bgr2ycbcr(img, y_only=True)`: `np.dot(img, [24.966, 128.553, 65.481])`
//!    — the weight list is float64, so the dot runs in **f64** over
//!    `(B, G, R)` in that order — `+ 16.0`, `/= 255.` (f64), `.astype(f32)`;
//!    back in `to_y_channel` the result is multiplied by `255.` in **f32**.
//!    So Y is a float32 value in [16, 235], not rounded ([`y_value`]);
//! 3. `.astype(np.float64)`;
//! 4. PSNR: `mse = np.mean((img - img2) ** 2)`, `inf` if `mse == 0`, else
//!    `10 * log10(255 * 255 / mse)` (this form, not `20 log10(255/√mse)`);
//!    `np.mean` sums with numpy's pairwise summation
//!    ([`numpy_pairwise_sum`]) and divides by the count;
//! 5. SSIM (`_ssim`): window = outer product of `cv2.getGaussianKernel(11,
//!    1.5)` ([`GAUSSIAN_11_SIGMA_1_5`]); `mu = filter2D(img)[5:-5, 5:-5]`
//!    etc.; `c1 = (0.01·255)²`, `c2 = (0.03·255)²`; map mean (pairwise sum).
//!    Only the valid region is kept, so the border mode is irrelevant; this
//!    module correlates directly in f64 whereas OpenCV uses a DFT for an
//!    11×11 f64 kernel, so SSIM agrees with BasicSR to ~1e-13, not bit for
//!    bit. With one (Y) channel the per-channel average is that channel.
//!
//! The f64 Y sum is done without FMA; whether the BLAS `ddot` used by numpy
//! fuses or not makes no difference after the rounding to f32 (checked for
//! all 2^24 colours by a test).

use image::RgbImage;

pub use crate::bicubic::numpy_pairwise_sum;

/// `cv2.getGaussianKernel(11, 1.5)` (`CV_64F`), bit for bit (OpenCV
/// computes it in soft-float; values printed with
/// `python3 -c "import cv2,struct; [print(hex(struct.unpack('<Q',struct.pack('<d',x))[0])) for x in cv2.getGaussianKernel(11,1.5)[:,0]]"`
/// with opencv-python-headless 5.0.0). Symmetric around index 5.
pub const GAUSSIAN_11_SIGMA_1_5: [f64; 11] = {
    const H: [u64; 6] = [
        0x3f50d956b52a1d6e,
        0x3f7f1fe01ae5a5b5,
        0x3fa26eb175d83f66,
        0x3fbbff0fe8e98418,
        0x3fcb43c3f52b19f3,
        0x3fd106560aa892bf,
    ];
    [
        f64::from_bits(H[0]),
        f64::from_bits(H[1]),
        f64::from_bits(H[2]),
        f64::from_bits(H[3]),
        f64::from_bits(H[4]),
        f64::from_bits(H[5]),
        f64::from_bits(H[4]),
        f64::from_bits(H[3]),
        f64::from_bits(H[2]),
        f64::from_bits(H[1]),
        f64::from_bits(H[0]),
    ]
};

/// SSIM constant `c1 = (0.01 · 255)²`.
pub const SSIM_C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
/// SSIM constant `c2 = (0.03 · 255)²`.
pub const SSIM_C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// A normalised 1-D Gaussian, `exp(-(i - (n-1)/2)² / (2σ²))` divided by its
/// sum (what `cv2.getGaussianKernel` computes, up to its soft-float rounding;
/// within 1e-16 of [`GAUSSIAN_11_SIGMA_1_5`] for n = 11, σ = 1.5).
pub fn gaussian_kernel(n: usize, sigma: f64) -> Vec<f64> {
    let c = (n as f64 - 1.0) / 2.0;
    let k: Vec<f64> = (0..n)
        .map(|i| {
            let d = i as f64 - c;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let s: f64 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// The 11×11 SSIM window `np.outer(k, k)`, row-major.
pub fn ssim_window() -> [f64; 121] {
    let k = GAUSSIAN_11_SIGMA_1_5;
    let mut w = [0.0; 121];
    for i in 0..11 {
        for j in 0..11 {
            w[i * 11 + j] = k[i] * k[j];
        }
    }
    w
}

/// A single-channel f64 image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// `h * w` samples.
    pub data: Vec<f64>,
}

/// BasicSR's Y value of one u8 RGB pixel (`to_y_channel`, see the module
/// documentation): f32 in [16, 235], unrounded.
pub fn y_value(r: u8, g: u8, b: u8) -> f32 {
    let f = |v: u8| f64::from(f32::from(v) / 255.0_f32);
    let y = f(b) * 24.966 + f(g) * 128.553 + f(r) * 65.481 + 16.0;
    ((y / 255.0) as f32) * 255.0_f32
}

/// Crops `crop_border` pixels from each side of a u8 RGB image
/// (`img[c:-c, c:-c]`), returning the image unchanged when 0. An image too
/// small for the crop yields an empty image.
pub fn crop_border(img: &RgbImage, crop: usize) -> RgbImage {
    if crop == 0 {
        return img.clone();
    }
    let c = crop as u32;
    let (w, h) = (img.width(), img.height());
    let nw = w.saturating_sub(2 * c);
    let nh = h.saturating_sub(2 * c);
    if nw == 0 || nh == 0 {
        return RgbImage::new(0, 0);
    }
    image::imageops::crop_imm(img, c, c, nw, nh).to_image()
}

/// BasicSR `to_y_channel(img).astype(np.float64)` of a u8 RGB image.
pub fn y_plane(img: &RgbImage) -> Plane {
    let data = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| f64::from(y_value(p[0], p[1], p[2])))
        .collect();
    Plane {
        h: img.height() as usize,
        w: img.width() as usize,
        data,
    }
}

/// BasicSR `calculate_psnr` on two already-converted planes: `inf` when the
/// MSE is 0 (identical inputs), NaN for empty planes.
///
/// # Panics
/// If the plane sizes differ.
pub fn psnr_planes(a: &Plane, b: &Plane) -> f64 {
    assert_eq!((a.h, a.w), (b.h, b.w), "PSNR of planes of different sizes");
    let sq: Vec<f64> = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| {
            let d = x - y;
            d * d
        })
        .collect();
    let mse = numpy_pairwise_sum(&sq) / sq.len() as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// BasicSR `_ssim` on two planes (values in [0, 255]): mean of the SSIM map
/// over the valid region of the 11×11 Gaussian window. NaN when a side is
/// shorter than 11 (numpy's mean of an empty map).
///
/// # Panics
/// If the plane sizes differ.
pub fn ssim_planes(a: &Plane, b: &Plane) -> f64 {
    assert_eq!((a.h, a.w), (b.h, b.w), "SSIM of planes of different sizes");
    let (h, w) = (a.h, a.w);
    if h < 11 || w < 11 {
        return f64::NAN;
    }
    let win = ssim_window();
    let (oh, ow) = (h - 10, w - 10);
    let mut map = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        for x in 0..ow {
            let (mut m1, mut m2, mut s11, mut s22, mut s12) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for i in 0..11 {
                let row = (y + i) * w + x;
                let ra = &a.data[row..row + 11];
                let rb = &b.data[row..row + 11];
                let wr = &win[i * 11..i * 11 + 11];
                for j in 0..11 {
                    let (p, q, k) = (ra[j], rb[j], wr[j]);
                    m1 += k * p;
                    m2 += k * q;
                    s11 += k * (p * p);
                    s22 += k * (q * q);
                    s12 += k * (p * q);
                }
            }
            let mu1_sq = m1 * m1;
            let mu2_sq = m2 * m2;
            let mu1_mu2 = m1 * m2;
            let sigma1_sq = s11 - mu1_sq;
            let sigma2_sq = s22 - mu2_sq;
            let sigma12 = s12 - mu1_mu2;
            let num = (2.0 * mu1_mu2 + SSIM_C1) * (2.0 * sigma12 + SSIM_C2);
            let den = (mu1_sq + mu2_sq + SSIM_C1) * (sigma1_sq + sigma2_sq + SSIM_C2);
            map.push(num / den);
        }
    }
    numpy_pairwise_sum(&map) / map.len() as f64
}

/// PSNR-Y and SSIM-Y of one image pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YScores {
    /// PSNR on Y in dB (`inf` for identical images).
    pub psnr_y: f64,
    /// SSIM on Y.
    pub ssim_y: f64,
}

/// BasicSR `calculate_psnr` + `calculate_ssim` with `test_y_channel: true`
/// on two u8 RGB images of the same size, cropping `crop` pixels per side.
pub fn psnr_ssim_y(img: &RgbImage, img2: &RgbImage, crop: usize) -> anyhow::Result<YScores> {
    anyhow::ensure!(
        img.dimensions() == img2.dimensions(),
        "image shapes differ: {:?} vs {:?}",
        img.dimensions(),
        img2.dimensions()
    );
    let a = y_plane(&crop_border(img, crop));
    let b = y_plane(&crop_border(img2, crop));
    anyhow::ensure!(
        !a.data.is_empty(),
        "image {:?} is empty after cropping {crop} pixels per side",
        img.dimensions()
    );
    Ok(YScores {
        psnr_y: psnr_planes(&a, &b),
        ssim_y: ssim_planes(&a, &b),
    })
}

/// PSNR-Y only (see [`psnr_ssim_y`]).
pub fn psnr_y(img: &RgbImage, img2: &RgbImage, crop: usize) -> anyhow::Result<f64> {
    anyhow::ensure!(img.dimensions() == img2.dimensions(), "image shapes differ");
    Ok(psnr_planes(
        &y_plane(&crop_border(img, crop)),
        &y_plane(&crop_border(img2, crop)),
    ))
}

/// SSIM-Y only (see [`psnr_ssim_y`]).
pub fn ssim_y(img: &RgbImage, img2: &RgbImage, crop: usize) -> anyhow::Result<f64> {
    anyhow::ensure!(img.dimensions() == img2.dimensions(), "image shapes differ");
    Ok(ssim_planes(
        &y_plane(&crop_border(img, crop)),
        &y_plane(&crop_border(img2, crop)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_formula() {
        let k = gaussian_kernel(11, 1.5);
        for (a, b) in k.iter().zip(GAUSSIAN_11_SIGMA_1_5) {
            assert!((a - b).abs() < 1e-16, "{a} vs {b}");
        }
        let s: f64 = GAUSSIAN_11_SIGMA_1_5.iter().sum();
        assert!((s - 1.0).abs() < 1e-15);
        assert_eq!(GAUSSIAN_11_SIGMA_1_5[0], 0.0010283800844791097);
        assert_eq!(GAUSSIAN_11_SIGMA_1_5[5], 0.2660117248617943);
    }

    #[test]
    fn constants() {
        // python3 -c "print(repr((0.01*255)**2), repr((0.03*255)**2))"
        assert_eq!(SSIM_C1, 6.502500000000001);
        assert_eq!(SSIM_C2, 58.522499999999994);
    }

    #[test]
    fn y_fma_or_not_is_irrelevant() {
        // numpy's dot may go through a BLAS ddot that fuses multiply-adds;
        // after rounding Y/255 to f32 that cannot matter for any colour.
        let f = |v: u32| f64::from(v as f32 / 255.0_f32);
        for r in 0..256u32 {
            for g in 0..256u32 {
                for b in 0..256u32 {
                    let plain = f(b) * 24.966 + f(g) * 128.553 + f(r) * 65.481 + 16.0;
                    let fused = f(r).mul_add(65.481, f(g).mul_add(128.553, f(b) * 24.966)) + 16.0;
                    assert_eq!(
                        (plain / 255.0) as f32,
                        (fused / 255.0) as f32,
                        "rgb {r} {g} {b}"
                    );
                }
            }
        }
    }
}
