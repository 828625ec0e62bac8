//! Softmax codes (core's `softmax_codes`) for one head: `q·k` on
//! `vpmaddubsw`, a 4-lane `exp2_neg_q31`, the AttnProb codes by counting
//! the edges below each value eight lanes at a time.

use std::arch::x86_64::*;

use tdquant_core::int::arith::ceil_shift_i128;
use tdquant_core::int::attention::{MASK_Z, PROB_FRAC};
use tdquant_core::int::{EMBED, HEAD_DIM, TOKENS};

use crate::cpu_backend::prepared_vnni::HeadQk;

/// `2^31·2^(−d/2^32)` in four `u64` lanes, exactly core's `exp2_neg_q31`
/// for every `d`: the same steps as the AVX-512 `exp2_v` (each
/// `_mm256_mul_epu32` operand is `< 2^32`: `r < 2^24`, `LN2_Q32 < 2^32`,
/// `v < 2^24`, `v2 < 2^15`, `y < 2^7`; `⌊y/3⌋ = (171·y) >> 9` for
/// `y < 2^7`), with the low 64 bits of `lut·p` (`lut < 2^32`,
/// `p ≤ 2^32`) as `lut·p_lo + (lut·p_hi) << 32`, `p_hi ∈ {0, 1}`
/// (AVX2 has no 64-bit multiply). `n = ⌊d/2^32⌋ < 2^32` compares as a
/// signed lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn exp2_avx2(d: __m256i) -> __m256i {
    use tdquant_core::int::exp2::{EXP2_LUT, LN2_Q32};
    let n = _mm256_srli_epi64::<32>(d);
    let i = _mm256_and_si256(_mm256_srli_epi64::<24>(d), _mm256_set1_epi64x(0xFF));
    let r = _mm256_and_si256(d, _mm256_set1_epi64x(0x00FF_FFFF));
    let v = _mm256_srli_epi64::<32>(_mm256_add_epi64(
        _mm256_mul_epu32(r, _mm256_set1_epi64x(LN2_Q32 as i64)),
        _mm256_set1_epi64x(1 << 31),
    ));
    let v2 = _mm256_srli_epi64::<33>(_mm256_mul_epu32(v, v));
    let y = _mm256_srli_epi64::<32>(_mm256_mul_epu32(v2, v));
    let v3 = _mm256_srli_epi64::<9>(_mm256_mul_epu32(y, _mm256_set1_epi64x(171)));
    let p = _mm256_sub_epi64(
        _mm256_add_epi64(_mm256_sub_epi64(_mm256_set1_epi64x(1 << 32), v), v2),
        v3,
    );
    // SAFETY: every index is `< 256` (masked with 0xFF), the table has 256 entries.
    let lut32 = unsafe { _mm256_i64gather_epi32::<4>(EXP2_LUT.as_ptr().cast(), i) };
    let lut = _mm256_cvtepu32_epi64(lut32);
    let lp = _mm256_add_epi64(
        _mm256_mul_epu32(lut, p),
        _mm256_slli_epi64::<32>(_mm256_mul_epu32(lut, _mm256_srli_epi64::<32>(p))),
    );
    let g = _mm256_srli_epi64::<32>(_mm256_add_epi64(lp, _mm256_set1_epi64x(1 << 31)));
    let rnd = _mm256_srli_epi64::<1>(_mm256_sllv_epi64(_mm256_set1_epi64x(1), n));
    let live = _mm256_cmpgt_epi64(_mm256_set1_epi64x(32), n);
    _mm256_and_si256(live, _mm256_srlv_epi64(_mm256_add_epi64(g, rnd), n))
}

/// Core's `softmax_codes` for one head (`D = 10` columns at `col` of the
/// 60-wide `q`, `k`): `bias_h` is `R[h, rpi(i, j)] << rpb_shift` (64 × 64).
/// Requires `k` codes `≤ 127`; `q` may be any `u8`.
///
/// `q·k` as in the linear kernel: `k` (unsigned operand, `≤ 127`) times
/// `q − 128` (signed), pairs `≤ 2·127·128 < 2^15` (no saturation), plus
/// `128·Σk`. Everything after the `i32` dot products is core's `i64`
/// expression (`acc·A + kb·B + bias + mask`), in 64-bit lanes.
#[target_feature(enable = "avx2")]
pub(crate) fn softmax_head(head: &HeadQk<'_>, probs: &mut [u8]) {
    head.check(probs);
    let HeadQk {
        q,
        k,
        col,
        sm,
        bias_h,
        labels,
    } = *head;
    // Keys by groups of four dimensions (10 padded with zeros to 12):
    // kw[g][j] holds the four codes of group g of key j.
    let mut kw = [[0i32; TOKENS]; 3];
    let mut kb = [0i64; TOKENS];
    for j in 0..TOKENS {
        let mut b = [0u8; 12];
        b[..HEAD_DIM].copy_from_slice(&k[j * EMBED + col..j * EMBED + col + HEAD_DIM]);
        for (g, w) in kw.iter_mut().enumerate() {
            w[j] = i32::from_le_bytes([b[4 * g], b[4 * g + 1], b[4 * g + 2], b[4 * g + 3]]);
        }
        kb[j] = b.iter().map(|&x| i64::from(x)).sum();
    }
    // `kb_j·B`, the same i64 product for every query row; `128·kb_j` undoes
    // the offset of q.
    let kbb: [i64; TOKENS] = core::array::from_fn(|j| kb[j] * sm.b);
    let back: [i32; TOKENS] = core::array::from_fn(|j| 128 * kb[j] as i32);
    // acc·A for 0 ≤ acc < 2^31 as acc·A_lo + (acc·A_hi)·2^32 (A_lo < 2^32
    // unsigned, A_hi = A >> 32 fits i32): equal modulo 2^64, hence equal
    // (core's product fits i64).
    let a_lo = _mm256_set1_epi64x(sm.a & 0xFFFF_FFFF);
    let a_hi = _mm256_set1_epi64x(sm.a >> 32);
    let lab: [i64; TOKENS] = core::array::from_fn(|j| labels.map_or(0, |l| i64::from(l[j])));
    let maskz = _mm256_set1_epi64x(MASK_Z);
    let levels = sm.levels_t.len().min(255);
    let ones = _mm256_set1_epi16(1);
    let flip = _mm256_set1_epi8(i8::MIN);
    let load = |p: &[i32], v: usize| {
        // SAFETY: 8 lanes at 8v inside the 64-entry array.
        unsafe { _mm256_loadu_si256(p.as_ptr().add(8 * v).cast()) }
    };
    let mut edges = [0i32; 255];
    for i in 0..TOKENS {
        let mut qb = [0u8; 12];
        qb[..HEAD_DIM].copy_from_slice(&q[i * EMBED + col..i * EMBED + col + HEAD_DIM]);
        let qg: [__m256i; 3] = core::array::from_fn(|g| {
            let word = i32::from_le_bytes([qb[4 * g], qb[4 * g + 1], qb[4 * g + 2], qb[4 * g + 3]]);
            _mm256_xor_si256(_mm256_set1_epi32(word), flip)
        });
        let mut acc = [0i32; TOKENS];
        for v in 0..TOKENS / 8 {
            let mut a = load(&back, v);
            for (g, &qv) in qg.iter().enumerate() {
                let pairs = _mm256_maddubs_epi16(load(&kw[g], v), qv);
                a = _mm256_add_epi32(a, _mm256_madd_epi16(pairs, ones));
            }
            // SAFETY: 8 lanes at 8v inside acc.
            unsafe { _mm256_storeu_si256(acc.as_mut_ptr().add(8 * v).cast(), a) };
        }
        let brow = &bias_h[i * TOKENS..(i + 1) * TOKENS];
        let me = _mm256_set1_epi64x(labels.map_or(0, |l| i64::from(l[i])));
        let mut z = [0i64; TOKENS];
        let mut mx = _mm256_set1_epi64x(i64::MIN);
        for c in 0..TOKENS / 4 {
            // SAFETY: 4 lanes at 4c inside acc (i32), kbb, brow, lab, z.
            unsafe {
                let a = _mm256_cvtepu32_epi64(_mm_loadu_si128(acc.as_ptr().add(4 * c).cast()));
                let prod = _mm256_add_epi64(
                    _mm256_mul_epu32(a, a_lo),
                    _mm256_slli_epi64::<32>(_mm256_mul_epi32(a, a_hi)),
                );
                let kv = _mm256_loadu_si256(kbb.as_ptr().add(4 * c).cast());
                let bv = _mm256_loadu_si256(brow.as_ptr().add(4 * c).cast());
                let mut zv = _mm256_add_epi64(_mm256_add_epi64(prod, kv), bv);
                if labels.is_some() {
                    let lv = _mm256_loadu_si256(lab.as_ptr().add(4 * c).cast());
                    let other = _mm256_andnot_si256(_mm256_cmpeq_epi64(lv, me), maskz);
                    zv = _mm256_add_epi64(zv, other);
                }
                mx = _mm256_blendv_epi8(mx, zv, _mm256_cmpgt_epi64(zv, mx));
                _mm256_storeu_si256(z.as_mut_ptr().add(4 * c).cast(), zv);
            }
        }
        let mut lanes = [0i64; 4];
        // SAFETY: 4 lanes into lanes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), mx) };
        let m = lanes.iter().copied().max().unwrap_or(0);
        let mv = _mm256_set1_epi64x(m);
        let mut e = [0u64; TOKENS];
        let mut sumv = _mm256_setzero_si256();
        for c in 0..TOKENS / 4 {
            // SAFETY: 4 lanes at 4c inside z and e.
            unsafe {
                let zv = _mm256_loadu_si256(z.as_ptr().add(4 * c).cast());
                let ev = exp2_avx2(_mm256_sub_epi64(mv, zv));
                sumv = _mm256_add_epi64(sumv, ev);
                _mm256_storeu_si256(e.as_mut_ptr().add(4 * c).cast(), ev);
            }
        }
        let mut lanes = [0u64; 4];
        // SAFETY: 4 lanes into lanes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sumv) };
        // 64 values ≤ 2^31: no overflow.
        let sum: u64 = lanes.iter().sum();
        // E_k = ⌈S·T_k/2^30⌉ clamped to [0, 2^31 + 1] (e ∈ [0, 2^31], so the
        // comparisons keep their outcome), then moved to i32 by flipping the
        // sign bit (an order-preserving map of [0, 2^32)).
        for (edge, &level) in edges.iter_mut().zip(&sm.levels_t[..levels]) {
            let needed = ceil_shift_i128(i128::from(sum) * i128::from(level), PROB_FRAC) as i64;
            *edge = (needed.clamp(0, (1 << 31) + 1) as u32 ^ 0x8000_0000) as i32;
        }
        let ef: [i32; TOKENS] = core::array::from_fn(|j| (e[j] as u32 ^ 0x8000_0000) as i32);
        // code = #{k : e ≥ E_k} = levels − #{k : E_k > e}.
        let mut cnt = [_mm256_set1_epi32(levels as i32); TOKENS / 8];
        let ev: [__m256i; TOKENS / 8] = core::array::from_fn(|v| load(&ef, v));
        for &edge in &edges[..levels] {
            let eb = _mm256_set1_epi32(edge);
            for (c, &x) in cnt.iter_mut().zip(&ev) {
                *c = _mm256_add_epi32(*c, _mm256_cmpgt_epi32(eb, x));
            }
        }
        let mut codes = [0i32; TOKENS];
        for (v, &c) in cnt.iter().enumerate() {
            // SAFETY: 8 lanes at 8v inside codes.
            unsafe { _mm256_storeu_si256(codes.as_mut_ptr().add(8 * v).cast(), c) };
        }
        for (p, &c) in probs[i * TOKENS..(i + 1) * TOKENS].iter_mut().zip(&codes) {
            // levels ≤ 255.
            *p = c as u8;
        }
    }
}
