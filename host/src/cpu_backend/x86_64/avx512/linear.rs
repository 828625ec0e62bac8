//! Linear layers (core's `linear`) on `vpdpbusd`: weight codes four by
//! four against broadcast input codes.

use super::Avx512Lanes;
use crate::cpu_backend::prepared_vnni::LinV;
use crate::cpu_backend::x86_64::dot::lin_dot;

/// Core's `linear` on `n` tokens: `emit(token, t)` with `t[j]` for the
/// `rows_pad` rows (the padding rows are garbage-free zeros·A + Σa·B).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
pub(crate) unsafe fn linear<F: FnMut(usize, &[i64])>(input: &[u8], lin: &LinV, mut emit: F) {
    let k = lin.k;
    let n = input.len() / k;
    let mut acc = [0i32; 4 * 128];
    let mut trow = [0i64; 128];
    let rp = lin.rows_pad;
    let group = if rp <= 64 { 4 } else { 2 };
    let mut t0 = 0;
    while t0 < n {
        let m = if n - t0 >= group { group } else { 1 };
        let x = &input[t0 * k..(t0 + m) * k];
        // SAFETY: the features are enabled on this function.
        unsafe {
            match (rp, m) {
                (64, 4) => lin_dot::<Avx512Lanes, 4, 4>(x, lin, 0, &mut acc),
                (64, _) => lin_dot::<Avx512Lanes, 4, 1>(x, lin, 0, &mut acc),
                (128, 2) => lin_dot::<Avx512Lanes, 8, 2>(x, lin, 0, &mut acc),
                (128, _) => lin_dot::<Avx512Lanes, 8, 1>(x, lin, 0, &mut acc),
                _ => unreachable!("rows_pad is 64 or 128"),
            }
        }
        lin.emit_tokens(x, &acc, t0, &mut trow, &mut emit);
        t0 += m;
    }
}
