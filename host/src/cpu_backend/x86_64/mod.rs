//! The x86-64 kernels: AVX2 builds of the portable kernels, and explicit
//! AVX-512 VNNI kernels.

pub(crate) mod avx2;
pub(crate) mod avx512;
