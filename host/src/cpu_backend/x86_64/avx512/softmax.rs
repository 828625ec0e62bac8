//! Softmax codes (core's `softmax_codes`) for one head: `q·k` on
//! `vpdpbusd`, an 8-lane `exp2_neg_q31`, the AttnProb codes by edge
//! comparisons (a 4-step binary search when the levels allow).

use std::arch::x86_64::*;

use tdquant_core::int::arith::ceil_shift_i128;
use tdquant_core::int::attention::{MASK_Z, PROB_FRAC};
use tdquant_core::int::{EMBED, HEAD_DIM, TOKENS};

use crate::cpu_backend::prepared_vnni::HeadQk;

/// `2^31·2^(−d/2^32)` in eight `u64` lanes, exactly [`exp2_neg_q31`]
/// (see its docs; each `_mm512_mul_epu32` operand is `< 2^32`: `r < 2^24`,
/// `LN2_Q32 < 2^32`, `v < 2^24`, `v2 < 2^15`, `y < 2^7`;
/// `⌊x/(3·2^32)⌋ = ⌊⌊x/2^32⌋/3⌋` and `⌊y/3⌋ = (171·y) >> 9` for `y < 2^7`;
/// `lut·p + 2^31 < 2^64` as in core, so `vpmullq`'s low 64 bits are exact).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
pub(crate) fn exp2_v(d: __m512i) -> __m512i {
    use tdquant_core::int::exp2::{EXP2_LUT, LN2_Q32};
    let n = _mm512_srli_epi64::<32>(d);
    let i = _mm512_and_si512(_mm512_srli_epi64::<24>(d), _mm512_set1_epi64(0xFF));
    let r = _mm512_and_si512(d, _mm512_set1_epi64(0x00FF_FFFF));
    let v = _mm512_srli_epi64::<32>(_mm512_add_epi64(
        _mm512_mul_epu32(r, _mm512_set1_epi64(LN2_Q32 as i64)),
        _mm512_set1_epi64(1 << 31),
    ));
    let v2 = _mm512_srli_epi64::<33>(_mm512_mul_epu32(v, v));
    let y = _mm512_srli_epi64::<32>(_mm512_mul_epu32(v2, v));
    let v3 = _mm512_srli_epi64::<9>(_mm512_mul_epu32(y, _mm512_set1_epi64(171)));
    let p = _mm512_sub_epi64(
        _mm512_add_epi64(_mm512_sub_epi64(_mm512_set1_epi64(1 << 32), v), v2),
        v3,
    );
    // SAFETY: every index is `< 256` (masked with 0xFF), the table has 256 entries.
    let lut32 = unsafe { _mm512_i64gather_epi32::<4>(i, EXP2_LUT.as_ptr().cast()) };
    let lut = _mm512_cvtepu32_epi64(lut32);
    // The low 64 bits of lut·p, which is below 2^64 − 2^31.
    let g = _mm512_srli_epi64::<32>(_mm512_add_epi64(
        _mm512_mullo_epi64(lut, p),
        _mm512_set1_epi64(1 << 31),
    ));
    let rnd = _mm512_srli_epi64::<1>(_mm512_sllv_epi64(_mm512_set1_epi64(1), n));
    let live = _mm512_cmplt_epu64_mask(n, _mm512_set1_epi64(32));
    _mm512_maskz_srlv_epi64(live, _mm512_add_epi64(g, rnd), n)
}

/// [`rsr`] in eight `i64` lanes (`k ≤ 63`).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
pub(crate) fn rsr_v(v: __m512i, k: u32) -> __m512i {
    if k == 0 {
        return v;
    }
    let hi = _mm512_sra_epi64(v, _mm_cvtsi64_si128(i64::from(k)));
    let half = _mm512_sra_epi64(v, _mm_cvtsi64_si128(i64::from(k - 1)));
    _mm512_add_epi64(hi, _mm512_and_si512(half, _mm512_set1_epi64(1)))
}

/// Core's `softmax_codes` for one head (`D = 10` columns at `col` of the
/// 60-wide `q`, `k`): `bias_h` is `R[h, rpi(i, j)] << rpb_shift` (64 × 64).
/// Requires `k` codes `≤ 127`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
pub(crate) fn softmax_head(head: &HeadQk<'_>, probs: &mut [u8]) {
    match head.labels {
        Some(l) => softmax_head_impl::<true>(head, l, probs),
        None => softmax_head_impl::<false>(head, &[0; TOKENS], probs),
    }
}

/// [`softmax_head`], compiled with and without the shift mask.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::needless_range_loop)] // ktv[g][v] and z[2v + h] pair index spaces
pub(crate) fn softmax_head_impl<const MASKED: bool>(
    head: &HeadQk<'_>,
    labels: &[u8; TOKENS],
    probs: &mut [u8],
) {
    head.check(probs);
    let HeadQk {
        q,
        k,
        col,
        sm,
        bias_h,
        ..
    } = *head;
    // Keys by groups of four dimensions (10 padded to 12): ktv[g][v] holds
    // the four codes of group g of keys 16v..16v + 16 (gathered: bytes
    // j·60 + col + 4g.., the last group read at +6 and shifted down so that
    // dimensions 10, 11 are zero and no byte past the window is read).
    let kp = k.as_ptr().cast::<i32>();
    let iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let ktv: [[__m512i; 4]; 3] = core::array::from_fn(|g| {
        core::array::from_fn(|v| {
            let rows = _mm512_mullo_epi32(
                _mm512_add_epi32(iota, _mm512_set1_epi32(16 * v as i32)),
                _mm512_set1_epi32(EMBED as i32),
            );
            let off = (col + if g == 2 { 6 } else { 4 * g }) as i32;
            // SAFETY: every index + 4 ≤ 63·60 + col + 10 ≤ k.len() (asserted).
            let words = unsafe {
                _mm512_i32gather_epi32::<1>(_mm512_add_epi32(rows, _mm512_set1_epi32(off)), kp)
            };
            if g == 2 {
                _mm512_srli_epi32::<16>(words)
            } else {
                words
            }
        })
    });
    // kb_j·B: Σ of the 12 (10 non-zero) codes via one `vpdpbusd` per group.
    let ones = _mm512_set1_epi8(1);
    let kbbv: [__m512i; 8] = core::array::from_fn(|h| {
        let v = h / 2;
        let mut kb = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, ktv[0][v]);
        kb = _mm512_dpbusd_epi32(kb, ones, ktv[1][v]);
        kb = _mm512_dpbusd_epi32(kb, ones, ktv[2][v]);
        let half = if h % 2 == 0 {
            _mm512_castsi512_si256(kb)
        } else {
            _mm512_extracti64x4_epi64::<1>(kb)
        };
        _mm512_mullo_epi64(_mm512_cvtepi32_epi64(half), _mm512_set1_epi64(sm.b))
    });
    // SAFETY: 64 bytes of labels.
    let labv = unsafe { _mm512_loadu_si512(labels.as_ptr().cast()) };
    let av = _mm512_set1_epi64(sm.a);
    let maskz = _mm512_set1_epi64(MASK_Z);
    let levels = sm.levels_t.len().min(255);
    let mut edges = [0i32; 255];
    let one = _mm512_set1_epi32(-1);
    // Four rows at a time, stage by stage: each row's horizontal reductions
    // (max, sum) overlap with the other row's vector work.
    const ROWS: usize = 4;
    for i0 in (0..TOKENS).step_by(ROWS) {
        let mut zr = [[_mm512_setzero_si512(); 8]; ROWS];
        let mut mvr = [_mm512_setzero_si512(); ROWS];
        for (r, (z, mv)) in zr.iter_mut().zip(mvr.iter_mut()).enumerate() {
            let i = i0 + r;
            let mut qb = [0u8; 12];
            qb[..HEAD_DIM].copy_from_slice(&q[i * EMBED + col..i * EMBED + col + HEAD_DIM]);
            let qg: [__m512i; 3] = core::array::from_fn(|g| {
                _mm512_set1_epi32(i32::from_le_bytes([
                    qb[4 * g],
                    qb[4 * g + 1],
                    qb[4 * g + 2],
                    qb[4 * g + 3],
                ]))
            });
            let mbits: u64 = if MASKED {
                _mm512_cmpneq_epi8_mask(labv, _mm512_set1_epi8(labels[i] as i8))
            } else {
                0
            };
            let brow = &bias_h[i * TOKENS..(i + 1) * TOKENS];
            for v in 0..4 {
                let mut acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), qg[0], ktv[0][v]);
                acc = _mm512_dpbusd_epi32(acc, qg[1], ktv[1][v]);
                acc = _mm512_dpbusd_epi32(acc, qg[2], ktv[2][v]);
                let halves = [
                    _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)),
                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(acc)),
                ];
                for (hh, part) in halves.into_iter().enumerate() {
                    let idx = 2 * v + hh;
                    // SAFETY: 8 i64 inside brow (64 entries).
                    let bv = unsafe { _mm512_loadu_si512(brow.as_ptr().add(8 * idx).cast()) };
                    let zz = _mm512_add_epi64(
                        _mm512_add_epi64(_mm512_mullo_epi64(part, av), kbbv[idx]),
                        bv,
                    );
                    z[idx] = if MASKED {
                        _mm512_mask_add_epi64(zz, (mbits >> (8 * idx)) as u8, zz, maskz)
                    } else {
                        zz
                    };
                }
            }
            let mut mx = z[0];
            for &zz in &z[1..] {
                mx = _mm512_max_epi64(mx, zz);
            }
            *mv = _mm512_set1_epi64(_mm512_reduce_max_epi64(mx));
        }
        let mut er = [[_mm512_setzero_si512(); 8]; ROWS];
        let mut sums = [0i64; ROWS];
        for (((e, sum), z), mv) in er.iter_mut().zip(sums.iter_mut()).zip(&zr).zip(&mvr) {
            let mut sumv = _mm512_setzero_si512();
            for (ev, &zz) in e.iter_mut().zip(z) {
                *ev = exp2_v(_mm512_sub_epi64(*mv, zz));
                sumv = _mm512_add_epi64(sumv, *ev);
            }
            *sum = _mm512_reduce_add_epi64(sumv);
        }
        for (r, (e, &sum)) in er.iter().zip(&sums).enumerate() {
            let i = i0 + r;
            // E_k = ⌈S·T_k/2^30⌉ clamped to [0, 2^31 + 1] (e ∈ [0, 2^31], so the
            // comparisons keep their outcome), then moved to i32 by flipping the
            // sign bit (an order-preserving map of [0, 2^32)).
            let search_table = if sm.search {
                // ⌈S·T/2^30⌉ in i64 lanes: T = T_h·2^20 + T_l, A = S·T_h, B = S·T_l
                // (|A|, B < 2^58 for S ≤ 2^37, |T| ≤ 2^40), and
                // S·T = ⌊A/2^10⌋·2^30 + ((A mod 2^10)·2^20 + B), the last term in
                // [0, 2^59): E = ⌊A/2^10⌋ + ⌊(that + 2^30 − 1)/2^30⌋.
                let sv = _mm512_set1_epi64(sum);
                let half = |h: usize| {
                    // SAFETY: 8 i64 inside th / tl.
                    let (th, tl) = unsafe {
                        (
                            _mm512_loadu_si512(sm.th.as_ptr().add(8 * h).cast()),
                            _mm512_loadu_si512(sm.tl.as_ptr().add(8 * h).cast()),
                        )
                    };
                    let a = _mm512_mullo_epi64(sv, th);
                    let b = _mm512_mullo_epi64(sv, tl);
                    let low = _mm512_add_epi64(
                        _mm512_add_epi64(
                            _mm512_slli_epi64::<20>(_mm512_and_si512(a, _mm512_set1_epi64(1023))),
                            b,
                        ),
                        _mm512_set1_epi64((1 << 30) - 1),
                    );
                    let e =
                        _mm512_add_epi64(_mm512_srai_epi64::<10>(a), _mm512_srli_epi64::<30>(low));
                    let e = _mm512_min_epi64(
                        _mm512_max_epi64(e, _mm512_setzero_si512()),
                        _mm512_set1_epi64((1 << 31) + 1),
                    );
                    _mm256_xor_si256(_mm512_cvtepi64_epi32(e), _mm256_set1_epi32(i32::MIN))
                };
                let table = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(half(0)), half(1));
                // Lanes ≥ levels: i32::MAX, above every e'.
                let unused = !((1u32 << levels) - 1) as u16;
                _mm512_mask_mov_epi32(table, unused, _mm512_set1_epi32(i32::MAX))
            } else {
                for (edge, &level) in edges.iter_mut().zip(&sm.levels_t[..levels]) {
                    let needed =
                        ceil_shift_i128(i128::from(sum) * i128::from(level), PROB_FRAC) as i64;
                    *edge = (needed.clamp(0, (1 << 31) + 1) as u32 ^ 0x8000_0000) as i32;
                }
                _mm512_setzero_si512()
            };
            let flip = _mm512_set1_epi32(i32::MIN);
            let ev: [__m512i; 4] = core::array::from_fn(|v| {
                let lo = _mm512_cvtepi64_epi32(e[2 * v]);
                let hi = _mm512_cvtepi64_epi32(e[2 * v + 1]);
                _mm512_xor_si512(
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi),
                    flip,
                )
            });
            let mut cnt = [_mm512_setzero_si512(); 4];
            if sm.search {
                // code = #{k : E'_k ≤ e'} = the largest c ≤ 15 with E'_{c−1} ≤ e'
                // (E' sorted; entry 15 and unused ones are i32::MAX, above every e').
                // Step s compares with E'[c + s − 1]: tables shifted by s − 1
                // (`shifted[c] = table[c + s − 1]`; the lanes that wrap are
                // never indexed: c is a multiple of 2s below 16 − s).
                let table = search_table;
                let iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
                let t7 = _mm512_permutexvar_epi32(_mm512_set1_epi32(7), table);
                let t3 =
                    _mm512_permutexvar_epi32(_mm512_add_epi32(iota, _mm512_set1_epi32(3)), table);
                let t1 =
                    _mm512_permutexvar_epi32(_mm512_add_epi32(iota, _mm512_set1_epi32(1)), table);
                for (c, &x) in cnt.iter_mut().zip(&ev) {
                    *c = _mm512_maskz_mov_epi32(
                        _mm512_cmpge_epi32_mask(x, t7),
                        _mm512_set1_epi32(8),
                    );
                    for (step, t) in [(4, t3), (2, t1), (1, table)] {
                        let m = _mm512_cmpge_epi32_mask(x, _mm512_permutexvar_epi32(*c, t));
                        *c = _mm512_mask_add_epi32(*c, m, *c, _mm512_set1_epi32(step));
                    }
                }
            } else {
                for &edge in &edges[..levels] {
                    let eb = _mm512_set1_epi32(edge);
                    for (c, &x) in cnt.iter_mut().zip(&ev) {
                        let m = _mm512_cmpge_epi32_mask(x, eb);
                        *c = _mm512_mask_sub_epi32(*c, m, *c, one);
                    }
                }
            }
            for (v, &c) in cnt.iter().enumerate() {
                // SAFETY: 16 bytes inside probs' row i.
                unsafe {
                    _mm_storeu_si128(
                        probs.as_mut_ptr().add(i * TOKENS + 16 * v).cast(),
                        _mm512_cvtepi32_epi8(c),
                    )
                };
            }
        }
    }
}
