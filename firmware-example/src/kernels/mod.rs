//! [`DspKernels`]: the runner's hot operators for the Cortex-M4 DSP
//! extension, each returning exactly the integers (and, for bad arguments,
//! the same errors) as the scalar oracle in `tdquant_core::int`.
//!
//! | operator | oracle | here |
//! |---|---|---|
//! | packed linear + correction | `linear::linear`, `linear_codes`, `linear_stream`, `IntKernels::linear_gelu` | [`linear`]: a block's input codes `UXTB16`-unpacked once, 4 weight rows expanded to 16-bit pairs, `LDRD` + `SMLAD` (one asm loop, two groups per iteration); code and stream epilogues on the high word when `frac ≥ 33` |
//! | `q·kᵀ` → softmax → codes | `attention::softmax_codes` | [`attention::softmax_codes`]: `SMLAD` logits, 32-bit `exp2`, sorted decision edges, binary search |
//! | `P·v` → codes | `attention::av_codes` | [`attention::av_codes`]: `UXTB16` probabilities × paired `v`, `SMLAD` |
//! | 3×3 conv (int8 weights) | `conv::Conv::run` | [`conv::run`]: `SSAT`-clamped 16-bit patch pairs × `SXTB16` weights, `SMLALD` (i64, exact for any input) |
//! | LayerNorm `x̂` | `layernorm::normalize` | [`layernorm::normalize`]: 64-bit sums, the `x̂` products without `i128` |
//!
//! Accumulator bounds are the oracle's (docs/integer-semantics.md): `SMLAD`
//! sums of u8 × u8 codes stay below `2^23` for `K ≤ 128`; conv sums use the
//! 64-bit `SMLALD`, so no bound on the weights is needed.

pub mod attention;
pub mod conv;
pub mod layernorm;
pub mod linear;

use tdquant_core::int::attention::{AvCall, SoftmaxCall};
use tdquant_core::int::conv::Conv;
use tdquant_core::int::linear::LinearCall;
use tdquant_core::int::{I32Src, IntKernels, OpError};

/// The DSP kernels (stateless: every buffer is on the stack, ≤ 4 KiB).
#[derive(Clone, Copy, Debug, Default)]
pub struct DspKernels;

impl IntKernels for DspKernels {
    fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
        &mut self,
        call: &LinearCall<'_, W>,
        emit: F,
    ) -> Result<(), OpError> {
        linear::linear(call, emit)
    }

    fn linear_gelu<W: I32Src + ?Sized, G: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        gelu: &G,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        linear::linear_gelu(call, gelu, out)
    }

    fn linear_codes<W: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        levels: u8,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        linear::linear_codes(call, levels, out)
    }

    fn linear_stream<W: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        pos: &[usize],
        stride: usize,
        r: &mut [i32],
    ) -> Result<(), OpError> {
        linear::linear_stream(call, pos, stride, r)
    }

    fn softmax_codes<W: I32Src + ?Sized>(
        &mut self,
        call: &SoftmaxCall<'_, W>,
        probs: &mut [u8],
    ) -> Result<(), OpError> {
        attention::softmax_codes(call, probs)
    }

    fn av_codes(&mut self, call: &AvCall<'_>, out: &mut [u8]) -> Result<(), OpError> {
        attention::av_codes(call, out)
    }

    fn conv<W: I32Src, F: FnMut(usize, usize, i64)>(
        &mut self,
        conv: &Conv<'_, W>,
        input: &[i32],
        h: usize,
        w: usize,
        emit: F,
    ) -> Result<(), OpError> {
        conv::run(conv, input, h, w, emit)
    }

    fn normalize(&mut self, x: &[i32], eps_t: i64, xhat: &mut [i32]) -> Result<(), OpError> {
        layernorm::normalize(x, eps_t, xhat)
    }
}
