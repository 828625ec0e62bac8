//! Convolutions on `vpdpwssd` (see `ConvV` for why the `i32` sums are
//! exact), with the requantization epilogue in `i64` lanes where allowed.

use std::arch::x86_64::*;

use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::{ConvEpi, ConvV};

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

/// `PX` output pixels from `x0` of row `y`: `acc[p·cout_pad + o]`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
unsafe fn conv_px<const NV: usize, const PX: usize>(
    cv: &ConvV,
    cin: usize,
    padded: &[i16],
    w: usize,
    y: usize,
    x0: usize,
    acc: &mut [i32],
) {
    let wp = w + 2;
    let pairs = cin / 2;
    assert!(
        cv.cout_pad == NV * 16
            && cv.w.len() >= 9 * pairs * NV * 16
            && acc.len() >= PX * NV * 16
            && x0 + PX <= w
            && padded.len() >= (y + 3) * wp * cin
    );
    let (pp, wv) = (padded.as_ptr(), cv.w.as_ptr());
    let mut a = [[_mm512_setzero_si512(); NV]; PX];
    for s in 0..9 {
        let (dy, dx) = (s / 3, s % 3);
        let base = ((y + dy) * wp + x0 + dx) * cin;
        for c in 0..pairs {
            let wts: [__m512i; NV] = core::array::from_fn(|v| {
                // SAFETY: inside cv.w (asserted).
                unsafe { _mm512_loadu_si512(wv.add(((s * pairs + c) * NV + v) * 16).cast()) }
            });
            for (p, ap) in a.iter_mut().enumerate() {
                // SAFETY: pixel (y + dy, x0 + p + dx) of the padded image, channels 2c, 2c + 1.
                let word = unsafe {
                    pp.add(base + p * cin + 2 * c)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let xb = _mm512_set1_epi32(word);
                for (av, &wt) in ap.iter_mut().zip(&wts) {
                    *av = _mm512_dpwssd_epi32(*av, xb, wt);
                }
            }
        }
    }
    for (p, ap) in a.iter().enumerate() {
        for (v, &av) in ap.iter().enumerate() {
            // SAFETY: inside acc (asserted).
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add((p * NV + v) * 16).cast(), av) };
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
                (16, PX) => conv_px::<1, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (16, _) => conv_px::<1, 1>(cv, cin, padded, w, y, x0, &mut acc),
                (32, PX) => conv_px::<2, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (32, _) => conv_px::<2, 1>(cv, cin, padded, w, y, x0, &mut acc),
                (48, PX) => conv_px::<3, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (48, _) => conv_px::<3, 1>(cv, cin, padded, w, y, x0, &mut acc),
                (64, PX) => conv_px::<4, PX>(cv, cin, padded, w, y, x0, &mut acc),
                (64, _) => conv_px::<4, 1>(cv, cin, padded, w, y, x0, &mut acc),
                _ => unreachable!("cout_pad is 16, 32, 48 or 64"),
            }
        }
        for p in 0..m {
            let dst = &mut orow[(x0 + p) * cout..(x0 + p + 1) * cout];
            if let Some(epi) = &cv.epi {
                conv_epilogue_v(&acc[p * cp..(p + 1) * cp], epi, dst);
                continue;
            }
            for (o, d) in dst.iter_mut().enumerate() {
                let a = i64::from(acc[p * cp + o]);
                *d = conv.requant[o].apply_i64(a).saturating_add(conv.bias[o]);
            }
        }
        x0 += m;
    }
}
