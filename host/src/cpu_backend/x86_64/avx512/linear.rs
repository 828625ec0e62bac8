//! Linear layers (core's `linear`) on `vpdpbusd`: weight codes four by
//! four against broadcast input codes.

use std::arch::x86_64::*;

use crate::cpu_backend::prepared_vnni::LinV;

/// `acc[t·rows_pad + j] = Σ_i x[t·k + i]·w_ji` for `T` tokens (`NV·16 = rows_pad`).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)] // a[t][v] pairs two index spaces
pub(crate) unsafe fn lin_dot<const NV: usize, const T: usize>(
    x: &[u8],
    lin: &LinV,
    acc: &mut [i32],
) {
    let k = lin.k;
    assert!(x.len() >= T * k && acc.len() >= T * NV * 16 && lin.w.len() >= k / 4 * NV * 16);
    let (xp, wp) = (x.as_ptr(), lin.w.as_ptr());
    let mut a = [[_mm512_setzero_si512(); NV]; T];
    for g in 0..k / 4 {
        let mut xb = [_mm512_setzero_si512(); T];
        for (t, xb) in xb.iter_mut().enumerate() {
            // SAFETY: t·k + 4g + 4 ≤ T·k ≤ x.len() (asserted).
            let word = unsafe { xp.add(t * k + 4 * g).cast::<i32>().read_unaligned() };
            *xb = _mm512_set1_epi32(word);
        }
        for v in 0..NV {
            // SAFETY: (g·NV + v)·16 + 16 ≤ k/4·NV·16 ≤ w.len() (asserted).
            let wv = unsafe { _mm512_loadu_si512(wp.add((g * NV + v) * 16).cast()) };
            for t in 0..T {
                a[t][v] = _mm512_dpbusd_epi32(a[t][v], xb[t], wv);
            }
        }
    }
    for (t, at) in a.iter().enumerate() {
        for (v, &av) in at.iter().enumerate() {
            // SAFETY: in bounds of acc (asserted).
            unsafe { _mm512_storeu_si512(acc.as_mut_ptr().add((t * NV + v) * 16).cast(), av) };
        }
    }
}

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
                (64, 4) => lin_dot::<4, 4>(x, lin, &mut acc),
                (64, _) => lin_dot::<4, 1>(x, lin, &mut acc),
                (128, 2) => lin_dot::<8, 2>(x, lin, &mut acc),
                (128, _) => lin_dot::<8, 1>(x, lin, &mut acc),
                _ => unreachable!("rows_pad is 64 or 128"),
            }
        }
        lin.emit_tokens(x, &acc, t0, &mut trow, &mut emit);
        t0 += m;
    }
}
