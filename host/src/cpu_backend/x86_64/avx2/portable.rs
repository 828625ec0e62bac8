//! The portable kernels compiled with AVX2 enabled: the same code (each is
//! `#[inline(always)]`), auto-vectorised for 256-bit registers. Integer
//! arithmetic gives the same bytes whatever the vector width. They run
//! where a model or a convolution does not fit the explicit kernels (codes
//! above 127, wide weights).

use anyhow::Result;

use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared::FastConv;
use crate::cpu_backend::scalar;

/// [`scalar::conv::conv_row`] for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn conv_row(
    conv: &FastConv,
    input: &[i32],
    h: usize,
    w: usize,
    y: usize,
    orow: &mut [i64],
) {
    scalar::conv::conv_row(conv, input, h, w, y, orow);
}

/// [`scalar::attention::window`] for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn window(
    m: &FastIntModel<'_>,
    index: usize,
    r: &[i32],
    hp: usize,
    wp: usize,
    win: usize,
    delta: &mut [i64],
) -> Result<()> {
    scalar::attention::window(m, index, r, hp, wp, win, delta)
}

/// [`scalar::mlp::mlp_chunk`] for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn mlp_chunk(
    m: &FastIntModel<'_>,
    index: usize,
    chunk: &mut [i32],
) -> Result<()> {
    scalar::mlp::mlp_chunk(m, index, chunk)
}
