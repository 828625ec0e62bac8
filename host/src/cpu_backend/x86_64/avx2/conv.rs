//! Convolutions on `vpmaddwd` (the `ConvV` layout: `vpmaddwd` then an `i32`
//! add is `vpdpwssd`, and `ConvV` explains why every `i32` sum is exact),
//! with the requantization in scalar `i64` (AVX2 has no 64-bit multiply
//! or arithmetic shift; it is `cout` operations per `9·cin·cout` products).

use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::prepared_vnni::ConvV;

/// Output pixels per pass of the shared row loop (`dot::conv_row`).
pub(crate) const PX: usize = 2;

/// One pixel's outputs from its `i32` sums.
#[inline(always)]
pub(crate) fn requantize(conv: &FastConv, _cv: &ConvV, sums: &[i32], out: &mut [i64]) {
    conv.requantize_i32(sums, out);
}
