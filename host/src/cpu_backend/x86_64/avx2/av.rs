//! `P·v` (core's `av_codes`) for one head: value codes × probability codes
//! on `vpmaddubsw`.

use std::arch::x86_64::*;

use tdquant_core::int::arith::{clamp_code, rshift_round};
use tdquant_core::int::{EMBED, HEAD_DIM, TOKENS};

use crate::cpu_backend::prepared_vnni::HeadAv;

/// Core's `av_codes` for one head (60-wide `v` and `out`). Requires `v`
/// codes `≤ 127`; `probs` may be any `u8`.
///
/// As in the linear kernel, `v` (unsigned operand, `≤ 127`) multiplies
/// `p − 128` (signed): pairs `≤ 2·127·128 < 2^15`, no saturation; the
/// exact `i32` sums are restored by adding `128·Σ_j v_jd`. Lane 10 of the
/// value groups holds ones, so that it accumulates `cs_i = Σ_j p_ij`. The
/// epilogue is core's expression.
#[target_feature(enable = "avx2")]
pub(crate) fn av_head(probs: &[u8], head: &HeadAv<'_>, out: &mut [u8]) {
    let (vb, vs) = head.value_groups(probs, out);
    let (col, av, levels) = (head.col, head.av, head.levels);
    let mut back = [0i32; 16];
    for (d, b) in back.iter_mut().enumerate().take(HEAD_DIM) {
        *b = 128 * vs[d] as i32;
    }
    back[HEAD_DIM] = 128 * TOKENS as i32;
    // SAFETY: 8 lanes at 0 or 8 inside a 16-entry array.
    let load =
        |a: &[i32; 16], h: usize| unsafe { _mm256_loadu_si256(a.as_ptr().add(8 * h).cast()) };
    let vbv: [[__m256i; 2]; 16] = core::array::from_fn(|g| [load(&vb[g], 0), load(&vb[g], 1)]);
    let pp = probs.as_ptr();
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(i8::MIN);
    const ROWS: usize = 4;
    for i0 in (0..TOKENS).step_by(ROWS) {
        let mut acc = [[load(&back, 0), load(&back, 1)]; ROWS];
        for (g, vg) in vbv.iter().enumerate() {
            for (u, a) in acc.iter_mut().enumerate() {
                // SAFETY: (i0 + u)·64 + 4g + 4 ≤ 4096 ≤ probs.len() (asserted).
                let word = unsafe {
                    pp.add((i0 + u) * TOKENS + 4 * g)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let pb = _mm256_xor_si256(_mm256_set1_epi32(word), flip);
                for (ah, &vh) in a.iter_mut().zip(vg) {
                    let pairs = _mm256_maddubs_epi16(vh, pb);
                    *ah = _mm256_add_epi32(*ah, _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        for (u, a) in acc.iter().enumerate() {
            let mut lanes = [0i32; 16];
            // SAFETY: 2 × 8 lanes inside lanes.
            unsafe {
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), a[0]);
                _mm256_storeu_si256(lanes.as_mut_ptr().add(8).cast(), a[1]);
            }
            let cs = i64::from(lanes[HEAD_DIM]);
            let i = i0 + u;
            let row = &mut out[i * EMBED + col..i * EMBED + col + HEAD_DIM];
            for (d, o) in row.iter_mut().enumerate() {
                let t = i64::from(lanes[d]) * av.a + cs * av.b + vs[d] * av.c + av.d;
                *o = clamp_code(rshift_round(t, av.frac), levels);
            }
        }
    }
}
