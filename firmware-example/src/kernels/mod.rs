//! [`DspKernels`]: the runner's hot operators for the Cortex-M4 DSP
//! extension, each returning exactly the integers (and, for bad arguments,
//! the same errors) as the scalar oracle in `tdquant_core::int`.
//!
//! | operator | oracle | here |
//! |---|---|---|
//! | packed linear + correction | `linear::linear`, `linear_codes`, `linear_stream`, `IntKernels::linear_gelu` | [`linear`]: a block's input codes `UXTB16`-unpacked once, 4 weight rows expanded to 16-bit pairs, [`crate::dsp::dot4_block`]: `LDRD` + `SMLAD`, fully unrolled for the network's depths (60 and 120 inputs), each token's four sums stored beside its `Σa·B` in one [`crate::dsp::TokenSums`] record; code and stream epilogues on the high word when `frac ≥ 33` |
//! | `q·kᵀ` → softmax → codes | `attention::SoftmaxCall::run` | [`attention::softmax_codes`]: `SMLAD` `q·k`, then per row the assembly loops of [`softmax_row`]: 64-bit logits and their maximum, the 32-bit `exp2`, codes by an `ADC` binary-search descent over sorted decision edges |
//! | `P·v` → codes | `attention::AvCall::run` | [`attention::av_codes`]: `UXTB16` probabilities × paired `v`, `SMLAD`; the probability row sums by `USADA8` |
//! | 3×3 conv (int8 weights) | `conv::Conv::run` | [`conv::run`]: `SSAT`-clamped 16-bit patch pairs × `SXTB16` weights, `SMLALD` (i64, exact for any input); a sum that fits `i32` requantized by the 64-bit `Requantizer::apply_i32` |
//! | LayerNorm `x̂` | `layernorm::normalize` | [`layernorm::normalize`]: 64-bit sums, the reciprocal from one `UDIV` and a Newton step (`recip63`), the `x̂` products without `i128` |
//!
//! Accumulator bounds are the oracle's (docs/integer-semantics.md): `SMLAD`
//! sums of u8 × u8 codes stay below `2^23` for `K ≤ 128`; conv sums use the
//! 64-bit `SMLALD`, so no bound on the weights is needed.

pub mod attention;
pub mod conv;
pub mod layernorm;
pub mod linear;
pub mod softmax_row;

/// The DSP kernels, with the working buffers of the linear layers (19 KiB,
/// most of it a block's unpacked codes) and of attention (9 KiB), kept
/// between calls so that no call clears them; the other kernels' buffers
/// are on the stack, each under 2 KiB.
#[derive(Default)]
pub struct DspKernels {
    linear: linear::LinearScratch,
    attention: attention::AttentionScratch,
}

impl DspKernels {
    pub const fn new() -> Self {
        Self {
            linear: linear::LinearScratch::new(),
            attention: attention::AttentionScratch::new(),
        }
    }
}

impl_int_kernels!([] DspKernels {
    linear(self, call, emit) => linear::linear(&mut self.linear, call, emit);
    linear_gelu(self, call, gelu, out) => linear::linear_gelu(&mut self.linear, call, gelu, out);
    linear_codes(self, call, levels, out) => {
        linear::linear_codes(&mut self.linear, call, levels, out)
    };
    linear_stream(self, call, pos, stride, r) => {
        linear::linear_stream(&mut self.linear, call, pos, stride, r)
    };
    softmax_codes(self, call, probs) => {
        attention::softmax_codes(&mut self.attention, call, probs)
    };
    av_codes(self, call, out) => attention::av_codes(&mut self.attention, call, out);
    conv(self, conv, input, h, w, emit) => conv::run(conv, input, h, w, emit);
    normalize(self, x, eps_t, xhat) => layernorm::normalize(x, eps_t, xhat);
});
