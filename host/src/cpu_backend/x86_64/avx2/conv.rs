//! Convolutions on `vpmaddwd` (the `ConvV` layout: `vpmaddwd` then an `i32`
//! add is `vpdpwssd`, and `ConvV` explains why every `i32` sum is exact),
//! with the requantization in scalar `i64` (AVX2 has no 64-bit multiply
//! or arithmetic shift; it is `cout` operations per `9·cin·cout` products).

use super::Avx2Lanes;
use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::ConvV;
use crate::cpu_backend::x86_64::dot::conv_px;

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
        unsafe { conv_px::<Avx2Lanes, 4, PX>(cv, cin, padded, w, y, x0, o0, acc) };
        o0 += 32;
    }
    if o0 < cp {
        // SAFETY: as above; cout_pad is a multiple of 16.
        unsafe { conv_px::<Avx2Lanes, 2, PX>(cv, cin, padded, w, y, x0, o0, acc) };
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
            conv.requantize_i32(&acc[p * cp..(p + 1) * cp], dst);
        }
        x0 += m;
    }
}
