//! The AVX-512 (VNNI) kernels: the primitives of the shared attention and
//! MLP orchestration ([`super::blocks`]) and convolutions, on explicit
//! 512-bit intrinsics.
//!
//! Products of codes are formed with `vpdpbusd` (four `u8 × i8` products
//! added to an `i32` lane, no saturation): the unsigned operand is always an
//! activation/probability code (any `u8`), the signed one a weight, key or
//! value code, which is why the path requires those to be `≤ 127` (`VBlock`
//! is `None` otherwise and the portable path runs). Every `i32` sum is the
//! exact integer core computes (`< 2^23`, see core's bounds); everything
//! after it is the same `i64` expression as in core, evaluated lane-wise.
//! Sums of `i64` terms may be regrouped: core's bounds keep every partial sum
//! in range, and wrapping addition is associative anyway.
//!
//! Every function here is compiled for AVX-512 F, BW, DQ, VL and VNNI and
//! may only run on a CPU that has them: the dispatch table installs
//! `KERNELS` only after `cpu_features` found all five.

pub(crate) mod av;
pub(crate) mod conv;
pub(crate) mod gelu;
pub(crate) mod linear;
pub(crate) mod softmax;

use std::arch::x86_64::*;

/// Sixteen `i32` lanes; the code products are `vpdpbusd`'s (module docs),
/// with no offset to remove.
pub(crate) struct Avx512Lanes;

super::dot::dot_lanes! {
    Avx512Lanes: __m512i, 16, [_mm512_setzero_si512, _mm512_loadu_si512, _mm512_storeu_si512, _mm512_set1_epi32];
    fn dot_i16_pairs(acc: __m512i, x: __m512i, w: __m512i) -> __m512i = _mm512_dpwssd_epi32(acc, x, w);
    fn dot_codes(acc: __m512i, x: __m512i, w: __m512i) -> __m512i = _mm512_dpbusd_epi32(acc, x, w);
}

super::blocks::level_kernels!(
    "AVX-512 VNNI",
    Avx512Ops,
    Avx512Lanes,
    "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"
);
