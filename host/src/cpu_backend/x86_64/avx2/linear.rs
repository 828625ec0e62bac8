//! Linear layers (core's `linear`) on `vpmaddubsw`: weight codes four by
//! four (the `LinV` layout of the VNNI kernels) against broadcast input
//! codes.
//!
//! Exactness: `vpmaddubsw` multiplies unsigned by signed bytes and adds
//! pairs with `i16` saturation, which `u8` codes times weights could reach
//! (`2·255·127 > 2^15`). So the weight code (`≤ 127`, the unsigned operand)
//! is multiplied by `x − 128 ∈ [−128, 127]` (the signed operand, `x ⊕ 0x80`):
//! a pair is at most `2·127·128 = 32512 < 2^15` in magnitude, never
//! saturated; `vpmaddwd` by ones adds pairs into exact `i32` lanes, and
//! `Σ_i w_ji·x_i = Σ_i w_ji·(x_i − 128) + 128·Σ_i w_ji` (`LinV::wsum128`),
//! every partial sum below `k·255·127 < 2^23` in magnitude.

use std::arch::x86_64::*;

use crate::cpu_backend::prepared_vnni::LinV;

/// `acc[t·rows_pad + r0 + j] = Σ_i x[t·k + i]·w_{r0+j, i}` for `j < 8·NV`
/// and `T` tokens.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::needless_range_loop)] // a[t][v] pairs two index spaces
unsafe fn lin_dot<const NV: usize, const T: usize>(
    x: &[u8],
    lin: &LinV,
    r0: usize,
    acc: &mut [i32],
) {
    let (k, rp) = (lin.k, lin.rows_pad);
    assert!(
        x.len() >= T * k
            && r0 + 8 * NV <= rp
            && acc.len() >= T * rp
            && lin.w.len() >= k / 4 * rp
            && lin.wsum128.len() >= rp
    );
    let (xp, wp) = (x.as_ptr(), lin.w.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(i8::MIN);
    let mut a = [[_mm256_setzero_si256(); NV]; T];
    for g in 0..k / 4 {
        let mut xb = [_mm256_setzero_si256(); T];
        for (t, xb) in xb.iter_mut().enumerate() {
            // SAFETY: t·k + 4g + 4 ≤ T·k ≤ x.len() (asserted).
            let word = unsafe { xp.add(t * k + 4 * g).cast::<i32>().read_unaligned() };
            *xb = _mm256_xor_si256(_mm256_set1_epi32(word), flip);
        }
        for v in 0..NV {
            // SAFETY: g·rp + r0 + 8v + 8 ≤ k/4·rp ≤ w.len() (asserted).
            let wv = unsafe { _mm256_loadu_si256(wp.add(g * rp + r0 + 8 * v).cast()) };
            for t in 0..T {
                let pairs = _mm256_maddubs_epi16(wv, xb[t]);
                a[t][v] = _mm256_add_epi32(a[t][v], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    for v in 0..NV {
        // SAFETY: r0 + 8v + 8 ≤ rp ≤ wsum128.len() (asserted).
        let back = unsafe { _mm256_loadu_si256(lin.wsum128.as_ptr().add(r0 + 8 * v).cast()) };
        for t in 0..T {
            let sum = _mm256_add_epi32(a[t][v], back);
            // SAFETY: t·rp + r0 + 8v + 8 ≤ T·rp ≤ acc.len() (asserted).
            unsafe { _mm256_storeu_si256(acc.as_mut_ptr().add(t * rp + r0 + 8 * v).cast(), sum) };
        }
    }
}

/// The accumulators of `T` tokens for every row, 32 rows at a time.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn lin_rows<const T: usize>(x: &[u8], lin: &LinV, acc: &mut [i32]) {
    let rp = lin.rows_pad;
    let mut r0 = 0;
    while r0 + 32 <= rp {
        // SAFETY: the features are enabled on this function.
        unsafe { lin_dot::<4, T>(x, lin, r0, acc) };
        r0 += 32;
    }
    if r0 < rp {
        // SAFETY: as above; rows_pad is a multiple of 16.
        unsafe { lin_dot::<2, T>(x, lin, r0, acc) };
    }
}

/// Core's `linear` on `n` tokens: `emit(token, t)` with `t[j]` for the
/// `rows_pad` rows (the padding rows are zeros·A + Σa·B).
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn linear<F: FnMut(usize, &[i64])>(input: &[u8], lin: &LinV, mut emit: F) {
    const T: usize = 2;
    let k = lin.k;
    let n = input.len() / k;
    let rp = lin.rows_pad;
    assert!(rp <= 128 && rp.is_multiple_of(16));
    let mut acc = [0i32; T * 128];
    let mut trow = [0i64; 128];
    let mut t0 = 0;
    while t0 < n {
        let m = if n - t0 >= T { T } else { 1 };
        let x = &input[t0 * k..(t0 + m) * k];
        // SAFETY: the features are enabled on this function.
        unsafe {
            if m == T {
                lin_rows::<T>(x, lin, &mut acc);
            } else {
                lin_rows::<1>(x, lin, &mut acc);
            }
        }
        lin.emit_tokens(x, &acc, t0, &mut trow, &mut emit);
        t0 += m;
    }
}
