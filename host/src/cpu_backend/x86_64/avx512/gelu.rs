//! The GELU codes (core's `gelu_code`) by two 4-step binary searches on
//! sorted thresholds (see `GeluSearch`).

use std::arch::x86_64::*;

use crate::cpu_backend::prepared_vnni::GeluSearch;

/// `out[j]` = core's `gelu_code(t[j])` for `t.len()` a multiple of 8.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
pub(crate) fn gelu_search(t: &[i64], gs: &GeluSearch, out: &mut [u8]) {
    assert!(t.len().is_multiple_of(8) && out.len() >= t.len());
    if let Some(nw) = &gs.narrow {
        // SAFETY: a 64-byte load of a 16-entry i32 table.
        let load = |a: &[i32; 16]| unsafe { _mm512_loadu_si512(a.as_ptr().cast()) };
        let (h, l) = (nw.h.map(|a| load(&a)), nw.l.map(|a| load(&a)));
        let [lo, lo1, hi1] = [nw.lo, nw.lo - 1, nw.hi + 1].map(|v| _mm512_set1_epi64(v));
        let narrow = |chunk: &[i64]| {
            // SAFETY: 8 i64 of the chunk.
            let x = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
            let x = _mm512_sub_epi64(_mm512_min_epi64(_mm512_max_epi64(x, lo1), hi1), lo);
            _mm512_cvtepi64_epi32(x)
        };
        for (p, pair) in t.chunks(16).enumerate() {
            let a = narrow(&pair[..8]);
            let b = if pair.len() == 16 {
                narrow(&pair[8..])
            } else {
                a
            };
            let x = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b);
            // #{k : H_k ≤ t'} and #{k : L_k ≥ t'}, 4-step searches.
            let eight = _mm512_set1_epi32(8);
            let mut ch = _mm512_maskz_mov_epi32(_mm512_cmpge_epi32_mask(x, h[0]), eight);
            let mut cl = _mm512_maskz_mov_epi32(_mm512_cmple_epi32_mask(x, l[0]), eight);
            for (s, step) in [(1, 4), (2, 2), (3, 1)] {
                let sv = _mm512_set1_epi32(step);
                let mh = _mm512_cmpge_epi32_mask(x, _mm512_permutexvar_epi32(ch, h[s]));
                ch = _mm512_mask_add_epi32(ch, mh, ch, sv);
                let ml = _mm512_cmple_epi32_mask(x, _mm512_permutexvar_epi32(cl, l[s]));
                cl = _mm512_mask_add_epi32(cl, ml, cl, sv);
            }
            let codes = _mm512_cvtepi32_epi8(_mm512_add_epi32(ch, cl));
            let mask = if pair.len() == 16 { 0xFFFF } else { 0x00FF };
            // SAFETY: pair.len() bytes at 16p inside out (asserted).
            unsafe { _mm_mask_storeu_epi8(out.as_mut_ptr().add(16 * p).cast(), mask, codes) };
        }
        return;
    }
    // The tables shifted for steps 4, 2, 1 (entry c is table[c + s − 1]; the
    // step-8 comparison is with table[7] in every lane, c = 0).
    let halves = |v: &[i64; 16]| -> (__m512i, __m512i) {
        // SAFETY: 8 i64 inside the 16-entry array.
        unsafe {
            (
                _mm512_loadu_si512(v.as_ptr().cast()),
                _mm512_loadu_si512(v.as_ptr().add(8).cast()),
            )
        }
    };
    let (h7, l7) = (_mm512_set1_epi64(gs.h[7]), _mm512_set1_epi64(gs.l[7]));
    let ht = [
        halves(&gs.h_shift[0]),
        halves(&gs.h_shift[1]),
        halves(&gs.h),
    ];
    let lt = [
        halves(&gs.l_shift[0]),
        halves(&gs.l_shift[1]),
        halves(&gs.l),
    ];
    let eight = _mm512_set1_epi64(8);
    for (v, chunk) in t.chunks_exact(8).enumerate() {
        // SAFETY: 8 i64 of the chunk.
        let x = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
        let mut ch = _mm512_maskz_mov_epi64(_mm512_cmpge_epi64_mask(x, h7), eight);
        let mut cl = _mm512_maskz_mov_epi64(_mm512_cmple_epi64_mask(x, l7), eight);
        for (k, step) in [4i64, 2, 1].into_iter().enumerate() {
            let sv = _mm512_set1_epi64(step);
            let hv = _mm512_permutex2var_epi64(ht[k].0, ch, ht[k].1);
            ch = _mm512_mask_add_epi64(ch, _mm512_cmpge_epi64_mask(x, hv), ch, sv);
            let lv = _mm512_permutex2var_epi64(lt[k].0, cl, lt[k].1);
            cl = _mm512_mask_add_epi64(cl, _mm512_cmple_epi64_mask(x, lv), cl, sv);
        }
        let codes = _mm512_cvtepi64_epi8(_mm512_add_epi64(ch, cl));
        // SAFETY: 8 bytes inside out (asserted).
        unsafe { _mm_storel_epi64(out.as_mut_ptr().add(8 * v).cast(), codes) };
    }
}
