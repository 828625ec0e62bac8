//! Convolutions on `vpdpwssd` (see `ConvV` for why the `i32` sums are
//! exact), with the requantization epilogue in `i64` lanes where allowed.

use std::arch::x86_64::*;

use super::Avx512Lanes;
use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::{ConvEpi, ConvV};
use crate::cpu_backend::x86_64::dot::conv_px;

/// `out[o] = requant_o.apply_i64(acc[o]) + bias_o` for `o < out.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
fn conv_epilogue_v(acc: &[i32], epi: &ConvEpi, out: &mut [i64]) {
    let n = out.len();
    assert!(acc.len() >= n.div_ceil(8) * 8 && epi.mult.len() >= n.div_ceil(8) * 8);
    for c in 0..n.div_ceil(8) {
        let at = 8 * c;
        // SAFETY: 8 lanes inside acc and the epilogue vectors (asserted);
        // the store is masked to the lanes below n.
        unsafe {
            let a = _mm512_cvtepi32_epi64(_mm256_loadu_si256(acc.as_ptr().add(at).cast()));
            let m = _mm512_loadu_si512(epi.mult.as_ptr().add(at).cast());
            let r = _mm512_loadu_si512(epi.round.as_ptr().add(at).cast());
            let k = _mm512_loadu_si512(epi.shift.as_ptr().add(at).cast());
            let b = _mm512_loadu_si512(epi.bias.as_ptr().add(at).cast());
            let v = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mullo_epi64(a, m), r), k);
            let lanes = if n - at >= 8 {
                0xFF
            } else {
                (1u8 << (n - at)) - 1
            };
            _mm512_mask_storeu_epi64(
                out.as_mut_ptr().add(at).cast(),
                lanes,
                _mm512_add_epi64(v, b),
            );
        }
    }
}

/// Output row `y` of `conv` on the zero-bordered `i16` input (AVX-512).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
pub(crate) unsafe fn conv_row(
    conv: &FastConv,
    cv: &ConvV,
    padded: &[i16],
    w: usize,
    y: usize,
    orow: &mut [i64],
) {
    const PX: usize = 4;
    let (cin, cout, cp) = (cv.cin_pad, conv.cout, cv.cout_pad);
    let mut acc = [0i32; PX * 64];
    let mut x0 = 0;
    while x0 < w {
        let m = if w - x0 >= PX { PX } else { 1 };
        // SAFETY: the features are enabled on this function.
        unsafe {
            match (cp, m) {
                (16, PX) => conv_px::<Avx512Lanes, 1, PX>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (16, _) => conv_px::<Avx512Lanes, 1, 1>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (32, PX) => conv_px::<Avx512Lanes, 2, PX>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (32, _) => conv_px::<Avx512Lanes, 2, 1>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (48, PX) => conv_px::<Avx512Lanes, 3, PX>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (48, _) => conv_px::<Avx512Lanes, 3, 1>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (64, PX) => conv_px::<Avx512Lanes, 4, PX>(cv, cin, padded, w, y, x0, 0, &mut acc),
                (64, _) => conv_px::<Avx512Lanes, 4, 1>(cv, cin, padded, w, y, x0, 0, &mut acc),
                _ => unreachable!("cout_pad is 16, 32, 48 or 64"),
            }
        }
        for p in 0..m {
            let (dst, sums) = (
                &mut orow[(x0 + p) * cout..(x0 + p + 1) * cout],
                &acc[p * cp..(p + 1) * cp],
            );
            match &cv.epi {
                Some(epi) => conv_epilogue_v(sums, epi, dst),
                None => conv.requantize_i32(sums, dst),
            }
        }
        x0 += m;
    }
}
