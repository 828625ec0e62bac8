//! The x86-64 kernels: explicit AVX2 and AVX-512 VNNI kernels on shared
//! layouts and a shared orchestration ([`blocks`]), and AVX2 builds of the
//! portable kernels for what the explicit ones do not cover.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod blocks;
pub(crate) mod dot;
