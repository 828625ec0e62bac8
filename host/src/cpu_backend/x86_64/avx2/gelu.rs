//! The GELU codes (core's `gelu_code`) as `#{k : t ≥ H_k} + #{k : t ≤ L_k}`
//! (see `GeluSearch` for why the two counts equal core's), counted over
//! the thresholds in `i64` lanes, or in `i32` lanes where `GeluNarrow`
//! allows.

use std::arch::x86_64::*;

use crate::cpu_backend::prepared_vnni::GeluSearch;

/// `out[j]` = core's `gelu_code(t[j])` for `t.len()` a multiple of 8
/// (`|t| < 2^62`, as core's bounds give).
///
/// Padding entries (`H = i64::MAX`, `L = i64::MIN`) are skipped: no such
/// `t` reaches them.
#[target_feature(enable = "avx2")]
pub(crate) fn gelu_search(t: &[i64], gs: &GeluSearch, out: &mut [u8]) {
    assert!(t.len().is_multiple_of(8) && out.len() >= t.len());
    if let Some(nw) = &gs.narrow {
        // Entry c of the unshifted tables (`GeluNarrow`'s step 1).
        let (h, nh) = kept(&nw.h[3], i32::MAX);
        let (l, nl) = kept(&nw.l[3], i32::MIN);
        let (h, l) = (&h[..nh], &l[..nl]);
        let [lo, lo1, hi1] = [nw.lo, nw.lo - 1, nw.hi + 1].map(|v| _mm256_set1_epi64x(v));
        // clamp(x, lo − 1, hi + 1) − lo, in [−1, 2^30 + 1]: the low halves.
        let narrow = |chunk: &[i64]| {
            // SAFETY: 4 i64 of the chunk.
            let x = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) };
            let x = _mm256_blendv_epi8(x, lo1, _mm256_cmpgt_epi64(lo1, x));
            let x = _mm256_blendv_epi8(x, hi1, _mm256_cmpgt_epi64(x, hi1));
            let x = _mm256_sub_epi64(x, lo);
            _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7))
        };
        for (c, chunk) in t.chunks_exact(8).enumerate() {
            let (a, b) = (narrow(&chunk[..4]), narrow(&chunk[4..]));
            let x = _mm256_permute2x128_si256::<0x20>(a, b);
            let cnt = count_edges::<false, _>(h, l, x);
            let mut lanes = [0i32; 8];
            // SAFETY: 8 lanes into lanes.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), cnt) };
            for (o, &v) in out[8 * c..8 * c + 8].iter_mut().zip(&lanes) {
                // At most 30.
                *o = v as u8;
            }
        }
        return;
    }
    let (h, nh) = kept(&gs.h, i64::MAX);
    let (l, nl) = kept(&gs.l, i64::MIN);
    let (h, l) = (&h[..nh], &l[..nl]);
    for (c, chunk) in t.chunks_exact(4).enumerate() {
        // SAFETY: 4 i64 of the chunk.
        let x = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast()) };
        let cnt = count_edges::<true, _>(h, l, x);
        let mut lanes = [0i64; 4];
        // SAFETY: 4 lanes into lanes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), cnt) };
        for (o, &v) in out[4 * c..4 * c + 4].iter_mut().zip(&lanes) {
            *o = v as u8;
        }
    }
}

/// `#{H_k ≤ x} + #{L_k ≥ x}` per lane, as `|H| + |L| − #{H_k > x} −
/// #{x > L_k}` (a true lane comparison is −1), in 64-bit lanes (`WIDE`) or
/// 32-bit ones.
#[target_feature(enable = "avx2")]
#[inline]
fn count_edges<const WIDE: bool, T: Copy + Into<i64>>(h: &[T], l: &[T], x: __m256i) -> __m256i {
    let splat = |v: i64| {
        if WIDE {
            _mm256_set1_epi64x(v)
        } else {
            _mm256_set1_epi32(v as i32)
        }
    };
    let add_gt = |cnt, a, b| {
        if WIDE {
            _mm256_add_epi64(cnt, _mm256_cmpgt_epi64(a, b))
        } else {
            _mm256_add_epi32(cnt, _mm256_cmpgt_epi32(a, b))
        }
    };
    let mut cnt = splat((h.len() + l.len()) as i64);
    for &hk in h {
        cnt = add_gt(cnt, splat(hk.into()), x);
    }
    for &lk in l {
        cnt = add_gt(cnt, x, splat(lk.into()));
    }
    cnt
}

/// The entries of `table` other than `pad`, first, and their number.
#[inline(always)]
fn kept<T: Copy + PartialEq>(table: &[T; 16], pad: T) -> ([T; 16], usize) {
    let mut out = *table;
    let mut n = 0;
    for &x in table {
        if x != pad {
            out[n] = x;
            n += 1;
        }
    }
    (out, n)
}
