//! The AVX2 kernels: the primitives of the shared attention and MLP
//! orchestration ([`super::blocks`]) and convolutions on explicit 256-bit
//! intrinsics, on the layouts of the VNNI kernels (`prepared_vnni`); and
//! the portable kernels compiled for AVX2 ([`portable`]) where a model or
//! a convolution does not fit those layouts.
//!
//! AVX2 has no `vpdpbusd`. Products of codes use `vpmaddubsw` (unsigned ×
//! signed bytes, pairs added with `i16` saturation) with the operand that is
//! `≤ 127` (weight, key or value code) unsigned and the other one offset by
//! −128: every pair is at most `2·127·128 < 2^15` in magnitude, so nothing
//! saturates, `vpmaddwd` by ones widens to exact `i32` sums, and
//! `128·Σ(unsigned operand)` restores core's sum. The `i64` arithmetic after
//! the dot products is core's expression (scalar or in 64-bit lanes where
//! AVX2 has the instructions).
//!
//! Every function here is compiled for AVX2 and may only run on a CPU that
//! has it: the dispatch table installs `KERNELS` only after
//! `cpu_features` found it.

pub(crate) mod av;
pub(crate) mod conv;
pub(crate) mod gelu;
pub(crate) mod linear;
pub(crate) mod portable;
pub(crate) mod softmax;

pub(crate) use portable::{conv_row, mlp_chunk, window};

use std::arch::x86_64::*;

use crate::cpu_backend::prepared_vnni::LinV;

/// Eight `i32` lanes. The code products (module docs): the weight code is
/// the unsigned operand of `vpmaddubsw` and the input code is offset by
/// −128 (`x ⊕ 0x80`), so that `vpmaddwd` by ones widens exact pair sums,
/// and `finish_codes` adds back `128·Σ_i w_ji` (`LinV::wsum128`).
pub(crate) struct Avx2Lanes;

super::dot::dot_lanes! {
    Avx2Lanes: __m256i, 8, [_mm256_setzero_si256, _mm256_loadu_si256, _mm256_storeu_si256, _mm256_set1_epi32];
    fn dot_i16_pairs(acc: __m256i, x: __m256i, w: __m256i) -> __m256i = _mm256_add_epi32(acc, _mm256_madd_epi16(x, w));
    fn splat_codes(word: i32) -> __m256i = _mm256_xor_si256(_mm256_set1_epi32(word), _mm256_set1_epi8(i8::MIN));
    fn dot_codes(acc: __m256i, x: __m256i, w: __m256i) -> __m256i =
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
    fn finish_codes(acc: __m256i, lin: &LinV, r: usize) -> __m256i =
        _mm256_add_epi32(acc, _mm256_loadu_si256(lin.wsum128.as_ptr().add(r).cast()));
}

super::blocks::level_kernels!("AVX2", Avx2Ops, Avx2Lanes, "avx2");
