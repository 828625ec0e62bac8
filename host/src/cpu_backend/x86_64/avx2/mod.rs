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
//! has it: the dispatch table installs [`AVX2_KERNELS`] only after
//! `cpu_features` found it.

pub(crate) mod av;
pub(crate) mod conv;
pub(crate) mod gelu;
pub(crate) mod linear;
pub(crate) mod portable;
pub(crate) mod softmax;

pub(crate) use portable::{conv_row, mlp_chunk, window};

use tdquant_core::int::attention::AvParams;
use tdquant_core::int::{EMBED, MLP, TOKENS};

use super::blocks::{self, BlockKernels, CodeOps, SharedStream, WinScratch};
use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared_vnni::{GeluSearch, LinV, SoftmaxV, VBlock};

/// The table entries.
pub(crate) const AVX2_KERNELS: BlockKernels = BlockKernels {
    conv_rows: conv::conv_rows,
    attention,
    mlp_chunk: mlp_chunk_avx2,
};

/// The AVX2 primitives of the shared block orchestration.
pub(crate) struct Avx2Ops;

impl CodeOps for Avx2Ops {
    #[inline(always)]
    unsafe fn linear<F: FnMut(usize, &[i64])>(input: &[u8], lin: &LinV, emit: F) {
        // SAFETY: the caller's CPU has AVX2.
        unsafe { linear::linear_avx2(input, lin, emit) }
    }

    #[inline(always)]
    unsafe fn softmax_head(
        q: &[u8],
        k: &[u8],
        col: usize,
        sm: &SoftmaxV<'_>,
        bias_h: &[i64],
        labels: Option<&[u8; TOKENS]>,
        probs: &mut [u8],
    ) {
        // SAFETY: the caller's CPU has AVX2.
        unsafe { softmax::softmax_head_avx2(q, k, col, sm, bias_h, labels, probs) }
    }

    #[inline(always)]
    unsafe fn av_head(
        probs: &[u8],
        v: &[u8],
        col: usize,
        av: &AvParams,
        levels: u8,
        out: &mut [u8],
    ) {
        // SAFETY: the caller's CPU has AVX2.
        unsafe { av::av_head_avx2(probs, v, col, av, levels, out) }
    }

    #[inline(always)]
    unsafe fn gelu_search(t: &[i64], gs: &GeluSearch, out: &mut [u8]) {
        // SAFETY: the caller's CPU has AVX2.
        unsafe { gelu::gelu_search_avx2(t, gs, out) }
    }
}

/// The attention branch of block `index` (see [`blocks::attention`]).
///
/// # Safety
/// The CPU must have AVX2.
unsafe fn attention(
    m: &FastIntModel<'_>,
    index: usize,
    vb: &VBlock,
    r: &mut [i32],
    hp: usize,
    wp: usize,
) {
    // SAFETY: the caller's CPU has the features `window_avx2` needs.
    unsafe { blocks::attention(m, index, vb, r, hp, wp, window_avx2) }
}

/// One attention window, compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2; `stream` as in [`blocks::attention`].
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn window_avx2(
    m: &FastIntModel<'_>,
    index: usize,
    vb: &VBlock,
    stream: &SharedStream,
    hp: usize,
    wp: usize,
    win: usize,
    scratch: &mut WinScratch,
) {
    // SAFETY: the features are enabled on this function.
    unsafe { blocks::window::<Avx2Ops>(m, index, vb, stream, hp, wp, win, scratch) }
}

/// The MLP on a chunk of tokens, compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn mlp_chunk_avx2(
    vb: &VBlock,
    chunk: &mut [i32],
    fc1in: &mut [u8; TOKENS * EMBED],
    hidden: &mut [u8; TOKENS * MLP],
) {
    // SAFETY: the features are enabled on this function.
    unsafe { blocks::mlp_chunk::<Avx2Ops>(vb, chunk, fc1in, hidden) }
}
