//! Convolutions on `vpdpwssd` (see `ConvV` for why the `i32` sums are
//! exact), with the requantization epilogue in `i64` lanes where allowed.

use std::arch::x86_64::*;

use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::{ConvEpi, ConvV};

/// Output pixels per pass of the shared row loop (`dot::conv_row`).
pub(crate) const PX: usize = 4;

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

/// One pixel's outputs from its `i32` sums: in `i64` lanes where the
/// layout has the vector epilogue.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
pub(crate) fn requantize(conv: &FastConv, cv: &ConvV, sums: &[i32], out: &mut [i64]) {
    match &cv.epi {
        Some(epi) => conv_epilogue_v(sums, epi, out),
        None => conv.requantize_i32(sums, out),
    }
}
