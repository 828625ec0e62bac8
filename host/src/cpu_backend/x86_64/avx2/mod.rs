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

super::blocks::level_kernels!("AVX2", Avx2Ops, "avx2");
