//! The portable kernels, one module per operator: the reference shape of
//! every fast kernel (each states which core function it restates), and what
//! the AVX2 level compiles again with wider vectors.

pub(crate) mod attention;
pub(crate) mod conv;
pub(crate) mod layernorm;
pub(crate) mod linear;
pub(crate) mod mlp;
pub(crate) mod stream;
