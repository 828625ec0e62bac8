//! 3×3 convolutions, padding 1 (zeros), stride 1: int16 activations × int8
//! (or int16) per-output-channel weights, `i64` accumulation, one
//! [`Requantizer`] per output channel.
//!
//! ```text
//! a_p,c   = input value, read clamped to i16           (HWC layout, p = y·W + x)
//! acc_p,o = Σ_{ky,kx ∈ 0..3} Σ_c a_(y+ky−1, x+kx−1),c · w_o,(ky·3+kx)·Cin+c     (i64; taps outside the map are 0)
//! v_p,o   = Requantizer(M_o, shift_o, HalfUp).apply_i64(acc) + bias_o         (saturating, i64)
//! ```
//!
//! `|acc| ≤ 9·64·2^15·2^15 < 2^40`, so the accumulator cannot overflow for any
//! input. The requantizer is core's [`Requantizer`]: `round(acc·M·2^−(31+shift))`,
//! ties up. What `v` means (stream value, pixel in Q8) depends on the layer
//! and is applied by the caller ([`super::runner`]).
//!
//! Quantization (host): `w_o,i = round(w/δ_o)` with `δ_o = max_i |w_o,i| / 127`
//! (int8) or `/ 32767` (int16), `M_o/2^(31+shift_o) ≈ δ_o·(input scale)/(output scale)`,
//! and `bias_o` already in output units.

use crate::requant::{Requantizer, RoundingMode};

use super::arith::clamp_i16;
use super::view::{I32Src, LeI16};
use super::{check_len, check_param, OpError};

/// Most input channels.
pub const MAX_CIN: usize = 64;
/// Most output channels.
pub const MAX_COUT: usize = 64;
/// Words per output channel in the requantization table: multiplier, shift, bias.
pub const QUANT_WORDS: usize = 3;

/// Weights of a 3×3 convolution, `[Cout, 9·Cin]` row-major, `(ky, kx, c_in)` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvWeights<'a> {
    /// int8 (a `.tdq` I8 section).
    I8(&'a [u8]),
    /// int16 (a `.tdq` I16 section).
    I16(LeI16<'a>),
}

impl ConvWeights<'_> {
    /// Number of weights.
    pub fn len(&self) -> usize {
        match self {
            ConvWeights::I8(bytes) => bytes.len(),
            ConvWeights::I16(v) => v.len(),
        }
    }

    /// `len() == 0`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Weight `i` (0 when out of range).
    pub fn at(&self, i: usize) -> i32 {
        match self {
            ConvWeights::I8(bytes) => bytes.get(i).map_or(0, |&b| i32::from(b as i8)),
            ConvWeights::I16(v) => i32::from(v.at(i)),
        }
    }
}

/// Gathers the 3×3 neighbourhood of pixel `(y, x)` of the `h × w × cin`
/// map `input` into `patch`, tap-major (row by row, `cin` values per tap),
/// each value mapped by `value`; taps outside the map are zero (the
/// convolutions' padding of 1). Every integer conv path (this oracle, the
/// host's scalar kernel, the Cortex-M4 one) gathers through it, so they
/// agree on the border by construction. An `input` shorter than the map
/// leaves the missing values untouched; callers check the length first.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // y, x < h, w, so (yy·w + xx + 1)·cin ≤ input.len()
pub fn gather_patch<T: Copy + Default>(
    input: &[i32],
    (h, w, cin): (usize, usize, usize),
    (y, x): (usize, usize),
    patch: &mut [T],
    value: impl Fn(i32) -> T,
) {
    for (tap, chunk) in patch.chunks_exact_mut(cin).take(9).enumerate() {
        let (yy, xx) = ((y + tap / 3).checked_sub(1), (x + tap % 3).checked_sub(1));
        match (yy, xx) {
            (Some(yy), Some(xx)) if yy < h && xx < w => {
                let start = (yy * w + xx) * cin;
                let src = input.get(start..start + cin).unwrap_or(&[]);
                for (dst, &v) in chunk.iter_mut().zip(src) {
                    *dst = value(v);
                }
            }
            _ => chunk.fill(T::default()),
        }
    }
}

/// A convolution's constants.
#[derive(Clone, Copy, Debug)]
pub struct Conv<'a, W> {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// `[cout, 9·cin]` weights.
    pub weights: ConvWeights<'a>,
    /// `[cout, 3]`: multiplier, shift, bias (output units) per output channel.
    pub quant: W,
}

impl<W: I32Src> Conv<'_, W> {
    /// Checks shapes and that every requantizer is valid.
    pub fn validate(&self) -> Result<(), OpError> {
        check_param("conv input channels", (1..=MAX_CIN).contains(&self.cin))?;
        check_param("conv output channels", (1..=MAX_COUT).contains(&self.cout))?;
        check_len(
            "conv weights",
            self.cout.saturating_mul(9).saturating_mul(self.cin),
            self.weights.len(),
        )?;
        check_len(
            "conv requantizers",
            self.cout.saturating_mul(QUANT_WORDS),
            self.quant.len(),
        )?;
        for o in 0..self.cout {
            self.requantizer(o)?;
        }
        Ok(())
    }

    /// The requantizer of output channel `o`.
    pub fn requantizer(&self, o: usize) -> Result<Requantizer, OpError> {
        let base = o.saturating_mul(QUANT_WORDS);
        let shift = i8::try_from(self.quant.at(base.saturating_add(1)))
            .map_err(|_| OpError::Param { what: "conv shift" })?;
        Requantizer::from_parts(self.quant.at(base), shift, RoundingMode::HalfUp).map_err(|_| {
            OpError::Param {
                what: "conv requantizer",
            }
        })
    }

    /// The bias of output channel `o`.
    pub fn bias(&self, o: usize) -> i64 {
        i64::from(
            self.quant
                .at(o.saturating_mul(QUANT_WORDS).saturating_add(2)),
        )
    }

    /// The checks every conv kernel makes first, in this order, for an
    /// `h × w` input of `input_len` values.
    pub fn check(&self, input_len: usize, h: usize, w: usize) -> Result<(), OpError> {
        self.validate()?;
        check_len(
            "conv input",
            h.saturating_mul(w).saturating_mul(self.cin),
            input_len,
        )
    }

    /// Each output channel's requantizer and bias, decoded once per call
    /// (entries from `cout` on are unused).
    pub fn channel_constants(&self) -> Result<([Requantizer; MAX_COUT], [i64; MAX_COUT]), OpError> {
        let mut requant =
            [Requantizer::from_parts(1 << 30, 0, RoundingMode::HalfUp).map_err(|_| {
                OpError::Param {
                    what: "conv requantizer",
                }
            })?; MAX_COUT];
        let mut bias = [0i64; MAX_COUT];
        for (o, (r, b)) in requant
            .iter_mut()
            .zip(bias.iter_mut())
            .enumerate()
            .take(self.cout)
        {
            *r = self.requantizer(o)?;
            *b = self.bias(o);
        }
        Ok((requant, bias))
    }

    /// Runs the convolution over an `h × w` map (`input`: `h·w·cin` values,
    /// HWC) and hands every output to `emit(pixel, channel, v)`, pixels in
    /// raster order, channels inner.
    // Index arithmetic: y < h, x < w, o < cout ≤ 64, tap < 9, and
    // h·w·cin = input.len() was checked, so no product overflows; taps ≤ 9·64
    // = patch.len(), o < cout ≤ MAX_COUT = requant.len().
    #[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)]
    pub fn run<F: FnMut(usize, usize, i64)>(
        &self,
        input: &[i32],
        h: usize,
        w: usize,
        mut emit: F,
    ) -> Result<(), OpError> {
        self.check(input.len(), h, w)?;
        let (requant, bias) = self.channel_constants()?;
        let cin = self.cin;
        let taps = 9 * cin;
        // The 3×3 neighbourhood of the current pixel, gathered once (zeros outside).
        let mut patch = [0i32; 9 * MAX_CIN];
        for y in 0..h {
            for x in 0..w {
                gather_patch(input, (h, w, cin), (y, x), &mut patch, |v| {
                    clamp_i16(i64::from(v))
                });
                let pixel = y * w + x;
                for o in 0..self.cout {
                    let acc = self.dot(o, &patch[..taps]);
                    let v = requant[o].apply_i64(acc).saturating_add(bias[o]);
                    emit(pixel, o, v);
                }
            }
        }
        Ok(())
    }

    /// `Σ_i patch_i · w_o,i` (`|·| < 2^40`).
    #[allow(clippy::arithmetic_side_effects)] // o·len ≤ weights.len(), validated
    fn dot(&self, o: usize, patch: &[i32]) -> i64 {
        let start = o * patch.len();
        // Products of two i16-range values fit i32; at most 576 of them fit i64.
        match self.weights {
            ConvWeights::I8(bytes) => bytes
                .get(start..start + patch.len())
                .unwrap_or(&[])
                .iter()
                .zip(patch)
                .fold(0i64, |acc, (&wb, &a)| {
                    acc.wrapping_add(i64::from(a.wrapping_mul(i32::from(wb as i8))))
                }),
            ConvWeights::I16(v) => {
                let v = v.sub(start, patch.len());
                patch.iter().enumerate().fold(0i64, |acc, (i, &a)| {
                    acc.wrapping_add(i64::from(a.wrapping_mul(i32::from(v.at(i)))))
                })
            }
        }
    }
}
