//! Integer-only SwinIR-light: the scalar reference ("oracle") that every
//! backend (CPU SIMD, CUDA, Cortex-M) must reproduce bit for bit.
//!
//! Nothing on the inference path touches floating point (this module is
//! `#![deny(clippy::float_arithmetic)]`): every real-valued constant (scales,
//! bounds, LayerNorm γ/β, biases, thresholds) was turned into an integer on
//! the host by `tdquant-host`'s `export` and is read from the `.tdq` file.
//! The complete contract (number formats, the exact arithmetic, rounding,
//! saturation and the accumulator bounds) is `docs/integer-semantics.md`;
//! each operator's docs repeat the part that concerns it.
//!
//! | module | operator |
//! |---|---|
//! | [`arith`] | rounding shifts, integer square root, clamps |
//! | [`exp2`] | `2^−x` in Q31 (LUT + cubic), the softmax exponential |
//! | [`layernorm`] | integer LayerNorm, and the quantizer on its fixed-point output |
//! | [`ln_codes`] | that quantizer on a LayerNorm's output as exact thresholds on `x̂` |
//! | [`linear`] | b-bit × b-bit linear layers with the asymmetric-grid correction |
//! | [`attention`] | `q·kᵀ` + relative-position bias + shift mask → softmax → codes; `P·v` |
//! | [`gelu`] | GELU → fc2-input quantizer as exact thresholds on the fc1 output |
//! | [`conv`] | 3×3 convolutions (int16 activations × int8/int16 per-channel weights) |
//! | [`model`] | [`IntModel`]: the parsed, validated `.tdq` model |
//! | [`runner`] | whole-image and tiled execution with caller-provided scratch |
//!
//! Every function is total: bad shapes or parameters give an error, never a
//! panic, and every intermediate has a proven bound (stated where it is
//! computed) that keeps it inside its integer type.
#![deny(clippy::float_arithmetic)]

pub mod arith;
pub mod attention;
pub mod conv;
pub mod exp2;
pub mod gelu;
pub mod kernels;
pub mod layernorm;
pub mod linear;
pub mod ln_codes;
pub mod model;
pub mod runner;
pub mod section_layout;
pub mod tiling;
mod view;

use core::fmt;

pub use kernels::{IntKernels, ScalarKernels};
pub use model::{IntModel, IntModelError};
pub use runner::{
    check_io, scratch_len, upscale, upscale_tiled, upscale_tiled_with, PixelSink, RunError,
    ScratchLen, Tiling,
};
pub use section_layout::{SectionKind, SectionLayout};
pub use view::{I32Src, LeI16, LeI32};

/// Embedding width of SwinIR-light.
pub const EMBED: usize = 60;
/// Attention heads per block.
pub const HEADS: usize = 6;
/// Channels per head.
pub const HEAD_DIM: usize = EMBED / HEADS;
/// Window side.
pub const WINDOW: usize = 8;
/// Tokens per window.
pub const TOKENS: usize = WINDOW * WINDOW;
/// Cyclic shift of the odd blocks.
pub const SHIFT: usize = WINDOW / 2;
/// MLP hidden width.
pub const MLP: usize = 2 * EMBED;
/// RSTBs.
pub const LAYERS: usize = 4;
/// Swin blocks per RSTB.
pub const DEPTH: usize = 6;
/// Swin blocks in all.
pub const BLOCKS: usize = LAYERS * DEPTH;
/// Rows of a relative-position bias table, `(2·8 − 1)²`.
pub const RPB_ROWS: usize = (2 * WINDOW - 1) * (2 * WINDOW - 1);

/// The residual stream is `i32` fixed point, saturated to `±STREAM_LIMIT`
/// (2^24) wherever it is written; the fractional bits are per model
/// ([`IntModel::stream_frac`]).
pub const STREAM_LIMIT: i32 = 1 << 24;

/// Why an operator refused its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// Slice lengths do not match the documented shapes.
    Shape {
        /// Which operand.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
    /// A constant is outside the range the operator's bound proof assumes.
    Param {
        /// Which constant.
        what: &'static str,
    },
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OpError::Shape {
                what,
                expected,
                actual,
            } => write!(f, "{what}: expected {expected} elements, got {actual}"),
            OpError::Param { what } => write!(f, "integer constant {what} is out of range"),
        }
    }
}

impl core::error::Error for OpError {}

/// `Err(Shape)` unless `actual == expected` (the operators' shape check; a
/// backend reuses it to fail with the oracle's errors).
pub fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), OpError> {
    if expected == actual {
        Ok(())
    } else {
        Err(OpError::Shape {
            what,
            expected,
            actual,
        })
    }
}

/// `Err(Param)` unless `ok` (the operators' parameter check).
pub fn check_param(what: &'static str, ok: bool) -> Result<(), OpError> {
    if ok {
        Ok(())
    } else {
        Err(OpError::Param { what })
    }
}
