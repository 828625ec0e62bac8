//! Fused CPU kernels for the hot element-wise parts of the forward pass, as candle custom ops
//! **with a backward**, so the model stays differentiable:
//!
//! - [`attention_softmax`]: `softmax(logits + rel_pos_bias (+ mask))` over the last dim;
//! - [`layer_norm`]: LayerNorm over the last dim (biased variance, eps 1e-5);
//! - [`gelu_erf`]: exact-form GELU, `x/2·(1 + erf(x/√2))`;
//! - [`im2col3x3`]: the 3×3 / padding-1 patch matrix of a token map, so a conv is one matmul.
//!
//! candle's own `softmax` / `layer_norm_slow` are chains of 5–9 single-threaded passes that
//! each allocate; these run in one parallel pass (rayon) with an AVX2+FMA code path chosen at run
//! time. `exp` is a Cephes-style polynomial (≈1 ulp) and `erf` is the Abramowitz–Stegun 7.1.26
//! form PyTorch's vectorized CPU `erf` uses (|error| ≤ 1.5e-7); both keep the FP model within
//! ~1e-6 of PyTorch. Backward passes are written with candle tensor ops (or a fused
//! forward-only op for col2im and the GELU derivative).
//!
//! Each operator runs its fused kernel on a CPU tensor and, on any other candle device (CUDA),
//! its composition of candle ops in [`portable`].
//!
//! One file per operator family: `softmax` (attention softmax and the fused attention
//! probabilities), `layer_norm`, `gelu`, `im2col` (conv as a matmul), `matmul` (fused linear,
//! batched matmul), `residual` (residual adds); this file holds what they share.

use candle_core::{CpuStorage, Layout, Result};
use rayon::prelude::*;

/// Tokens per window (64) = attention row length.
const N: usize = 64;

/// The `f32` data of a contiguous CPU storage (`what` names the op in the error).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

fn has_avx2_fma() -> bool {
    crate::cpu_features::cpu_features().avx2_fma
}

/// Runs `$body` (a generic `#[inline(always)]` kernel call) compiled for AVX2+FMA when the CPU
/// has them, else for the baseline target.
macro_rules! dispatch {
    ($name:ident, ($($arg:ident : $ty:ty),*), $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fast($($arg: $ty),*) { $body }
        fn base($($arg: $ty),*) { $body }
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
                unsafe { fast($($arg),*) }
            } else {
                base($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            base($($arg),*)
        }
    }};
}

/// candle's `name` and `cpu_fwd` of a custom op (`CustomOp1`/`2`/`3` by the number of
/// inputs): `cpu_fwd!("tdq-op", |op, (x, l1), (w, l2)| { … })` names the op, binds `op` to
/// `self` and each input to its contiguous `f32` data and layout, then runs the block, which
/// returns the `Result<(CpuStorage, Shape)>`.
macro_rules! cpu_fwd {
    ($name:literal, |$op:ident, $(($x:ident, $l:ident)),+| $body:block) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn cpu_fwd(&self, $($x: &CpuStorage, $l: &Layout),+) -> Result<(CpuStorage, Shape)> {
            let $op = self;
            $(let $x = $crate::model::kernels::f32_slice($x, $l, $op.name())?;)+
            $body
        }
    };
}
pub(crate) use cpu_fwd;

/// [`fast_exp`] is 0 below this (no denormals); the portable softmax zeroes the same entries.
pub const EXP_ZERO_BELOW: f32 = -87.3;

/// `e^x` for f32, ≈1 ulp on [−87, 88]; 0 below [`EXP_ZERO_BELOW`] (no denormals), clamped above.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let xc = x.clamp(EXP_ZERO_BELOW, 88.3);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let scale = f32::from_bits(((ni + 127) << 23) as u32);
    if x < EXP_ZERO_BELOW {
        0.0
    } else {
        e * scale
    }
}

/// erf, Abramowitz–Stegun 7.1.26 (as PyTorch's vectorized CPU erf), |error| ≤ 1.5e-7.
#[inline(always)]
pub fn fast_erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (0.327_591_1 * a + 1.0);
    let r =
        (((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6;
    let y = 1.0 - r * t * fast_exp(-(x * x));
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// Elements per parallel task of the element-wise kernels.
const CHUNK: usize = 16 * 1024;

/// `f(a_piece, b_piece, out_piece)` over matching `CHUNK`-element pieces of
/// two same-length inputs and a new output, pieces in parallel.
fn zip2_par(
    a: &[f32],
    b: &[f32],
    what: &str,
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync + Send,
) -> Result<Vec<f32>> {
    if a.len() != b.len() {
        candle_core::bail!("{what}: size mismatch");
    }
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (x, y))| f(x, y, o));
    Ok(out)
}

mod gelu;
mod im2col;
mod layer_norm;
mod matmul;
pub mod portable;
mod residual;
mod softmax;

pub use gelu::gelu_erf;
pub use im2col::im2col3x3;
pub use layer_norm::layer_norm;
pub use matmul::{bmm, bmm_nt, linear, linear_scaled};
pub use residual::{add, window_reverse_add};
pub use softmax::{attention_probs, attention_softmax, WindowTerms};
