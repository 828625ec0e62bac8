//! MATLAB-exact bicubic downscaling (`imresize(img, 1/s, 'bicubic')` on
//! uint8 images), as used to make the benchmark LR images.
//!
//! This is a transcription of `shared/tools/matlab_resize.py`, which
//! reproduces MATLAB's output byte for byte:
//!
//! * cubic kernel with a = −0.5; for a scale < 1 the kernel is stretched
//!   (antialiasing): width `4 / scale`, weight `scale · cubic(scale · d)`;
//! * for output position `x = 1..=out_len`: `u = x / scale + 0.5 (1 − 1/scale)`,
//!   `left = floor(u − width / 2)`, taps `left + 0..p` with
//!   `p = ceil(width) + 2`; weights are divided by their row sum (summed as
//!   numpy does, see [`numpy_pairwise_sum`]);
//! * a tap column is dropped only if its weight is zero for **every** output
//!   position (as `np.any(w != 0, axis=0)`);
//! * taps outside the input are mirrored symmetrically (index table
//!   `[1..n, n..1]`, period 2n);
//! * dimension 0 (rows / height) is resized first, then dimension 1; after
//!   each pass values are rounded with `floor(v + 0.5)` and clipped to
//!   [0, 255] (MATLAB keeps the uint8 class between passes);
//! * each output sample is accumulated in f64 in tap order starting from 0,
//!   which is bit-identical to numpy's `einsum` over the tap axis (checked
//!   against numpy 2.4 on random data).
//!
//! One detail is not portable in the oracle itself: numpy computes `|x|**3`
//! with its SIMD `power` kernel, whose last bit depends on the CPU. Here it is
//! libm `pow` ([`f64::powf`]). For scales 1/2 and 1/4 every cubed argument is
//! a short dyadic fraction, so all variants agree exactly; for 1/3 weights may
//! differ from a given numpy build in the last bit, which does not change any
//! pixel of the Set5/Set14/B100 LR files (tested byte for byte).

use image::{ImageBuffer, Pixel};

/// numpy's pairwise summation (`pairwise_sum_DOUBLE`), which `np.sum`,
/// `np.mean` and `ndarray.sum(axis)` use along a contiguous reduction axis:
/// below 8 elements a plain loop from 0; up to 128 elements eight interleaved
/// partial sums combined as `((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`, then the
/// remainder in order; above that, recursion on halves split at a multiple
/// of 8.
pub fn numpy_pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0_f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_pairwise_sum(&a[..n2]) + numpy_pairwise_sum(&a[n2..])
    }
}

/// MATLAB's cubic kernel (a = −0.5), evaluated term by term as
/// `matlab_resize.py` does.
pub fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let ax2 = ax * ax;
    let ax3 = ax.powf(3.0);
    let inner = 1.5 * ax3 - 2.5 * ax2 + 1.0;
    let outer = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0;
    // numpy: inner * (ax <= 1) + outer * ((ax > 1) & (ax <= 2)); the masked
    // term is an exact zero, so adding it changes nothing but the sign of 0.
    if ax <= 1.0 {
        inner
    } else if ax <= 2.0 {
        outer
    } else {
        0.0
    }
}

/// The resampling matrix of one dimension: output position `i` is
/// `sum_j weights[i * taps + j] * input[indices[i * taps + j]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResizeWeights {
    /// Input length.
    pub in_len: usize,
    /// Output length.
    pub out_len: usize,
    /// Taps per output position (after dropping all-zero columns).
    pub taps: usize,
    /// `out_len * taps` normalised weights, row-major.
    pub weights: Vec<f64>,
    /// `out_len * taps` 0-based input indices (mirrored into range).
    pub indices: Vec<usize>,
}

impl ResizeWeights {
    /// MATLAB `imresize` bicubic weights for resizing `in_len` samples to
    /// `out_len` with scale factor `scale` (e.g. `1.0 / 3.0`), exactly as
    /// `_weights_indices` in `matlab_resize.py`.
    ///
    /// # Panics
    /// If `in_len` or `out_len` is 0 or `scale` is not finite and positive.
    pub fn new(in_len: usize, out_len: usize, scale: f64) -> Self {
        assert!(
            in_len > 0 && out_len > 0,
            "empty resize {in_len} -> {out_len}"
        );
        assert!(scale.is_finite() && scale > 0.0, "bad scale {scale}");
        let kernel_width = if scale < 1.0 { 4.0 / scale } else { 4.0 };
        let p = kernel_width.ceil() as usize + 2;
        let mut w = vec![0.0_f64; out_len * p];
        let mut ind = vec![0_i64; out_len * p];
        for i in 0..out_len {
            let x = (i + 1) as f64;
            let u = x / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - kernel_width / 2.0).floor();
            let row = &mut w[i * p..(i + 1) * p];
            for (j, wj) in row.iter_mut().enumerate() {
                let idx = left + j as f64;
                ind[i * p + j] = idx as i64;
                *wj = if scale < 1.0 {
                    scale * cubic(scale * (u - idx))
                } else {
                    cubic(u - idx)
                };
            }
            let sum = numpy_pairwise_sum(row);
            for wj in row.iter_mut() {
                *wj /= sum;
            }
        }
        let keep: Vec<usize> = (0..p)
            .filter(|&j| (0..out_len).any(|i| w[i * p + j] != 0.0))
            .collect();
        let taps = keep.len();
        let period = 2 * in_len as i64;
        let mirror = |k: i64| -> usize {
            // aux = [1..n, n..1]; ind = aux[(k - 1) mod 2n] - 1, k 1-based.
            let m = (k - 1).rem_euclid(period) as usize;
            if m < in_len {
                m
            } else {
                2 * in_len - 1 - m
            }
        };
        let mut weights = Vec::with_capacity(out_len * taps);
        let mut indices = Vec::with_capacity(out_len * taps);
        for i in 0..out_len {
            for &j in &keep {
                weights.push(w[i * p + j]);
                indices.push(mirror(ind[i * p + j]));
            }
        }
        Self {
            in_len,
            out_len,
            taps,
            weights,
            indices,
        }
    }
}

/// MATLAB's uint8 conversion of a pass result: `floor(v + 0.5)` clipped to
/// [0, 255].
fn round_u8(v: f64) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

/// Output length for an input length and scale: `ceil(len * scale)`.
pub fn output_len(in_len: usize, scale: f64) -> usize {
    (in_len as f64 * scale).ceil() as usize
}

/// Bicubic `imresize` of interleaved u8 samples (`h × w × channels`,
/// row-major) by `scale`; returns `(data, out_h, out_w)`. No mod-crop is done
/// here.
///
/// # Panics
/// If `data.len() != h * w * channels` or any size is 0.
pub fn imresize_u8(
    data: &[u8],
    h: usize,
    w: usize,
    channels: usize,
    scale: f64,
) -> (Vec<u8>, usize, usize) {
    assert_eq!(data.len(), h * w * channels, "buffer size mismatch");
    assert!(channels > 0, "no channels");
    let oh = output_len(h, scale);
    let ow = output_len(w, scale);
    // Pass 1: dimension 0 (rows).
    let rw = ResizeWeights::new(h, oh, scale);
    let row_len = w * channels;
    let mut mid = vec![0_u8; oh * row_len];
    let mut acc = vec![0.0_f64; row_len];
    for i in 0..oh {
        acc.fill(0.0);
        for j in 0..rw.taps {
            let wt = rw.weights[i * rw.taps + j];
            let src = &data[rw.indices[i * rw.taps + j] * row_len..][..row_len];
            for (a, &s) in acc.iter_mut().zip(src) {
                *a += wt * f64::from(s);
            }
        }
        for (m, &a) in mid[i * row_len..(i + 1) * row_len].iter_mut().zip(&acc) {
            *m = round_u8(a);
        }
    }
    // Pass 2: dimension 1 (columns).
    let cw = ResizeWeights::new(w, ow, scale);
    let mut out = vec![0_u8; oh * ow * channels];
    for y in 0..oh {
        let src_row = &mid[y * row_len..(y + 1) * row_len];
        for i in 0..ow {
            for c in 0..channels {
                let mut a = 0.0_f64;
                for j in 0..cw.taps {
                    let wt = cw.weights[i * cw.taps + j];
                    a += wt * f64::from(src_row[cw.indices[i * cw.taps + j] * channels + c]);
                }
                out[(y * ow + i) * channels + c] = round_u8(a);
            }
        }
    }
    (out, oh, ow)
}

/// Crops an 8-bit image (RGB, gray, …) to the largest multiple of `s` in
/// each dimension, keeping the top-left corner (`hr[:h - h % s, :w - w % s]`).
///
/// # Panics
/// If `s == 0`.
pub fn mod_crop<P: Pixel<Subpixel = u8> + 'static>(img: &Image8<P>, s: usize) -> Image8<P> {
    assert!(s > 0, "mod_crop by 0");
    let s = s as u32;
    let (w, h) = (img.width(), img.height());
    image::imageops::crop_imm(img, 0, 0, w - w % s, h - h % s).to_image()
}

fn check_factor(w: u32, h: u32, s: usize) -> anyhow::Result<()> {
    anyhow::ensure!(s >= 1, "downscale factor must be at least 1, got {s}");
    anyhow::ensure!(
        w as usize >= s && h as usize >= s,
        "image {w}x{h} is smaller than the downscale factor {s}"
    );
    Ok(())
}

/// The benchmark LR image of an 8-bit HR image (RGB, gray, …): mod-crop to
/// a multiple of `s`, then MATLAB bicubic `imresize` by `1/s` (scale
/// computed as `1.0 / s`).
pub fn downscale<P: Pixel<Subpixel = u8> + 'static>(
    hr: &Image8<P>,
    s: usize,
) -> anyhow::Result<Image8<P>> {
    check_factor(hr.width(), hr.height(), s)?;
    let hr = mod_crop(hr, s);
    let (data, oh, ow) = imresize_u8(
        hr.as_raw(),
        hr.height() as usize,
        hr.width() as usize,
        usize::from(P::CHANNEL_COUNT),
        1.0 / s as f64,
    );
    Ok(Image8::from_raw(ow as u32, oh as u32, data).expect("buffer sized for the image"))
}

/// An 8-bit image with pixels `P`.
pub type Image8<P> = ImageBuffer<P, Vec<u8>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_small_and_blocked() {
        assert_eq!(numpy_pairwise_sum(&[]), 0.0);
        assert_eq!(numpy_pairwise_sum(&[1.0, 2.0, 3.0]), 6.0);
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(numpy_pairwise_sum(&v), 499500.0);
        // Order matters: 1e16 + 1 + 1 ... differs between plain and pairwise.
        let mut v = vec![1.0_f64; 16];
        v[0] = 1e16;
        // python3 -c "import numpy as np; v=np.ones(16); v[0]=1e16; print(np.sum(v)-1e16)" → 14.0
        assert_eq!(numpy_pairwise_sum(&v) - 1e16, 14.0);
        // v=np.ones(300)*0.1; v[::7]=1e15; np.sum(v) → 4.300000000000003e+16
        // (a plain left-to-right loop gives 4.3e+16).
        let v: Vec<f64> = (0..300)
            .map(|i| if i % 7 == 0 { 1e15 } else { 0.1 })
            .collect();
        assert_eq!(numpy_pairwise_sum(&v), 4.300000000000003e16);
    }

    #[test]
    fn identity_at_scale_one() {
        let rw = ResizeWeights::new(5, 5, 1.0);
        for i in 0..5 {
            let row = &rw.weights[i * rw.taps..(i + 1) * rw.taps];
            let idx = &rw.indices[i * rw.taps..(i + 1) * rw.taps];
            let s: f64 = row
                .iter()
                .zip(idx)
                .filter(|(_, &k)| k == i)
                .map(|(w, _)| w)
                .sum();
            assert_eq!(s, 1.0);
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let data = vec![77_u8; 12 * 9 * 3];
        for s in 2..=4 {
            let (out, oh, ow) = imresize_u8(&data, 12, 9, 3, 1.0 / s as f64);
            assert_eq!((oh, ow), (12 / s, 9_usize.div_ceil(s)));
            assert!(out.iter().all(|&v| v == 77));
        }
    }
}
