//! Convolutions on `vpmaddwd` (the `ConvV` layout: `vpmaddwd` then an `i32`
//! add is `vpdpwssd`, and `ConvV` explains why every `i32` sum is exact),
//! with the requantization in scalar `i64` (AVX2 has no 64-bit multiply
//! or arithmetic shift; it is `cout` operations per `9·cin·cout` products).

use std::arch::x86_64::*;

use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::ConvV;

/// `PX` output pixels from `x0` of row `y`, outputs `o0..o0 + 8·NV`:
/// `acc[p·cout_pad + o]`.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn conv_px<const NV: usize, const PX: usize>(
    cv: &ConvV,
    cin: usize,
    padded: &[i16],
    w: usize,
    y: usize,
    x0: usize,
    o0: usize,
    acc: &mut [i32],
) {
    let wp = w + 2;
    let pairs = cin / 2;
    let cp = cv.cout_pad;
    assert!(
        o0 + 8 * NV <= cp
            && cv.w.len() >= 9 * pairs * cp
            && acc.len() >= PX * cp
            && x0 + PX <= w
            && padded.len() >= (y + 3) * wp * cin
    );
    let (pp, wv) = (padded.as_ptr(), cv.w.as_ptr());
    let mut a = [[_mm256_setzero_si256(); NV]; PX];
    for s in 0..9 {
        let (dy, dx) = (s / 3, s % 3);
        let base = ((y + dy) * wp + x0 + dx) * cin;
        for c in 0..pairs {
            let wts: [__m256i; NV] = core::array::from_fn(|v| {
                // SAFETY: (s·pairs + c)·cp + o0 + 8v + 8 ≤ 9·pairs·cp (asserted).
                unsafe { _mm256_loadu_si256(wv.add((s * pairs + c) * cp + o0 + 8 * v).cast()) }
            });
            for (p, ap) in a.iter_mut().enumerate() {
                // SAFETY: pixel (y + dy, x0 + p + dx) of the padded image, channels 2c, 2c + 1.
                let word = unsafe {
                    pp.add(base + p * cin + 2 * c)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let xb = _mm256_set1_epi32(word);
                for (av, &wt) in ap.iter_mut().zip(&wts) {
                    *av = _mm256_add_epi32(*av, _mm256_madd_epi16(xb, wt));
                }
            }
        }
    }
    for (p, ap) in a.iter().enumerate() {
        for (v, &av) in ap.iter().enumerate() {
            // SAFETY: p·cp + o0 + 8v + 8 ≤ PX·cp ≤ acc.len() (asserted).
            unsafe { _mm256_storeu_si256(acc.as_mut_ptr().add(p * cp + o0 + 8 * v).cast(), av) };
        }
    }
}

/// The accumulators of `PX` pixels for every output, 32 at a time.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn conv_pixels<const PX: usize>(
    cv: &ConvV,
    padded: &[i16],
    w: usize,
    y: usize,
    x0: usize,
    acc: &mut [i32],
) {
    let (cin, cp) = (cv.cin_pad, cv.cout_pad);
    let mut o0 = 0;
    while o0 + 32 <= cp {
        // SAFETY: the features are enabled on this function.
        unsafe { conv_px::<4, PX>(cv, cin, padded, w, y, x0, o0, acc) };
        o0 += 32;
    }
    if o0 < cp {
        // SAFETY: as above; cout_pad is a multiple of 16.
        unsafe { conv_px::<2, PX>(cv, cin, padded, w, y, x0, o0, acc) };
    }
}

/// Output row `y` of `conv` on the zero-bordered `i16` input (AVX2).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn conv_row(
    conv: &FastConv,
    cv: &ConvV,
    padded: &[i16],
    w: usize,
    y: usize,
    orow: &mut [i64],
) {
    const PX: usize = 2;
    let (cout, cp) = (conv.cout, cv.cout_pad);
    assert!(cp <= 64);
    let mut acc = [0i32; PX * 64];
    let mut x0 = 0;
    while x0 < w {
        let m = if w - x0 >= PX { PX } else { 1 };
        // SAFETY: the features are enabled on this function.
        unsafe {
            if m == PX {
                conv_pixels::<PX>(cv, padded, w, y, x0, &mut acc);
            } else {
                conv_pixels::<1>(cv, padded, w, y, x0, &mut acc);
            }
        }
        for p in 0..m {
            let dst = &mut orow[(x0 + p) * cout..(x0 + p + 1) * cout];
            for (o, d) in dst.iter_mut().enumerate() {
                let a = i64::from(acc[p * cp + o]);
                *d = conv.requant[o].apply_i64(a).saturating_add(conv.bias[o]);
            }
        }
        x0 += m;
    }
}
