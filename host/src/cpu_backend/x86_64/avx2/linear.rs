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

use super::Avx2Lanes;
use crate::cpu_backend::prepared_vnni::LinV;
use crate::cpu_backend::x86_64::dot::lin_dot;

/// The accumulators of `T` tokens for every row, 32 rows at a time.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn lin_rows<const T: usize>(x: &[u8], lin: &LinV, acc: &mut [i32]) {
    let rp = lin.rows_pad;
    let mut r0 = 0;
    while r0 + 32 <= rp {
        // SAFETY: the features are enabled on this function.
        unsafe { lin_dot::<Avx2Lanes, 4, T>(x, lin, r0, acc) };
        r0 += 32;
    }
    if r0 < rp {
        // SAFETY: as above; rows_pad is a multiple of 16.
        unsafe { lin_dot::<Avx2Lanes, 2, T>(x, lin, r0, acc) };
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
