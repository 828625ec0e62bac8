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
//! [`VNNI_KERNELS`] only after `cpu_features` found all five.

pub(crate) mod av;
pub(crate) mod conv;
pub(crate) mod gelu;
pub(crate) mod linear;
pub(crate) mod softmax;

use tdquant_core::int::attention::AvParams;
use tdquant_core::int::{EMBED, MLP, TOKENS};

use super::blocks::{self, BlockKernels, CodeOps, SharedStream, WinScratch};
use crate::cpu_backend::model::FastIntModel;
use crate::cpu_backend::prepared_vnni::{GeluSearch, LinV, SoftmaxV, VBlock};

/// The table entries.
pub(crate) const VNNI_KERNELS: BlockKernels = BlockKernels {
    conv_rows: conv::conv_rows,
    attention,
    mlp_chunk: mlp_chunk_v,
};

/// The AVX-512 VNNI primitives of the shared block orchestration.
pub(crate) struct Avx512Ops;

impl CodeOps for Avx512Ops {
    #[inline(always)]
    unsafe fn linear<F: FnMut(usize, &[i64])>(input: &[u8], lin: &LinV, emit: F) {
        // SAFETY: the caller's CPU has the features.
        unsafe { linear::linear_v(input, lin, emit) }
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
        // SAFETY: the caller's CPU has the features.
        unsafe { softmax::softmax_head_v(q, k, col, sm, bias_h, labels, probs) }
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
        // SAFETY: the caller's CPU has the features.
        unsafe { av::av_head_v(probs, v, col, av, levels, out) }
    }

    #[inline(always)]
    unsafe fn gelu_search(t: &[i64], gs: &GeluSearch, out: &mut [u8]) {
        // SAFETY: the caller's CPU has the features.
        unsafe { gelu::gelu_search_v(t, gs, out) }
    }
}

/// The attention branch of block `index` (see [`blocks::attention`]).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ, VL and VNNI.
unsafe fn attention(
    m: &FastIntModel<'_>,
    index: usize,
    vb: &VBlock,
    r: &mut [i32],
    hp: usize,
    wp: usize,
) {
    // SAFETY: the caller's CPU has the features `window_v` needs.
    unsafe { blocks::attention(m, index, vb, r, hp, wp, window_v) }
}

/// One attention window, compiled for AVX-512 VNNI.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ, VL and VNNI; `stream` as in
/// [`blocks::attention`].
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn window_v(
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
    unsafe { blocks::window::<Avx512Ops>(m, index, vb, stream, hp, wp, win, scratch) }
}

/// The MLP on a chunk of tokens, compiled for AVX-512 VNNI.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
unsafe fn mlp_chunk_v(
    vb: &VBlock,
    chunk: &mut [i32],
    fc1in: &mut [u8; TOKENS * EMBED],
    hidden: &mut [u8; TOKENS * MLP],
) {
    // SAFETY: the features are enabled on this function.
    unsafe { blocks::mlp_chunk::<Avx512Ops>(vb, chunk, fc1in, hidden) }
}
