//! `P·v` (core's `av_codes`) for one head: probability codes × value codes
//! on `vpdpbusd`.

use std::arch::x86_64::*;

use tdquant_core::int::{EMBED, HEAD_DIM, TOKENS};

use super::softmax::rsr_v;
use crate::cpu_backend::prepared_vnni::HeadAv;

/// Core's `av_codes` for one head (60-wide `v` and `out`). Requires `v`
/// codes `≤ 127`. Lane 10 of the value groups holds ones, so that it
/// accumulates `cs_i = Σ_j c_ij`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
pub(crate) fn av_head(probs: &[u8], head: &HeadAv<'_>, out: &mut [u8]) {
    let (vb, vs) = head.value_groups(probs, out);
    let (col, av, levels) = (head.col, head.av, head.levels);
    let vsc: [i64; 16] = core::array::from_fn(|d| vs[d] * av.c + av.d);
    // SAFETY: 64 bytes inside vb[g].
    let vbv: [__m512i; 16] =
        core::array::from_fn(|g| unsafe { _mm512_loadu_si512(vb[g].as_ptr().cast()) });
    let pp = probs.as_ptr();
    let mut accs = [[0i32; 16]; 4];
    let av_a = _mm512_set1_epi64(av.a);
    let (zero, lev) = (_mm512_setzero_si512(), _mm512_set1_epi64(i64::from(levels)));
    // SAFETY: 8 i64 inside vsc.
    let (vsc_lo, vsc_hi) = unsafe {
        (
            _mm512_loadu_si512(vsc.as_ptr().cast()),
            _mm512_loadu_si512(vsc.as_ptr().add(8).cast()),
        )
    };
    for i0 in (0..TOKENS).step_by(4) {
        let mut acc = [_mm512_setzero_si512(); 4];
        for (g, &vg) in vbv.iter().enumerate() {
            for (u, a) in acc.iter_mut().enumerate() {
                // SAFETY: (i0 + u)·64 + 4g + 4 ≤ 4096 ≤ probs.len().
                let word = unsafe {
                    pp.add((i0 + u) * TOKENS + 4 * g)
                        .cast::<i32>()
                        .read_unaligned()
                };
                *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(word), vg);
            }
        }
        for (dst, &a) in accs.iter_mut().zip(&acc) {
            // SAFETY: 64 bytes into dst.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().cast(), a) };
        }
        for (u, (arr, &a)) in accs.iter().zip(&acc).enumerate() {
            let csb = _mm512_set1_epi64(i64::from(arr[HEAD_DIM]) * av.b);
            let t = |part: __m256i, vs: __m512i| {
                let t = _mm512_add_epi64(
                    _mm512_add_epi64(_mm512_mullo_epi64(_mm512_cvtepi32_epi64(part), av_a), csb),
                    vs,
                );
                let c = _mm512_min_epi64(_mm512_max_epi64(rsr_v(t, av.frac), zero), lev);
                _mm512_cvtepi64_epi8(c)
            };
            let lo = t(_mm512_castsi512_si256(a), vsc_lo);
            let hi = t(_mm512_extracti64x4_epi64::<1>(a), vsc_hi);
            let row = &mut out[(i0 + u) * EMBED + col..(i0 + u) * EMBED + col + HEAD_DIM];
            // SAFETY: 10 bytes (mask 0x3FF) inside `row`.
            unsafe {
                _mm_mask_storeu_epi8(row.as_mut_ptr().cast(), 0x3FF, _mm_unpacklo_epi64(lo, hi))
            };
        }
    }
}
