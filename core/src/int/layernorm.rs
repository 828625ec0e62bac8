//! Integer LayerNorm (eps folded in as an integer), and the 2DQuant quantizer
//! applied to its fixed-point output.
//!
//! # Normalisation ([`normalize`])
//!
//! Input: one token, `n ≤ 64` stream values `x_i` (i32, Q`F`), each first
//! clamped to `±2^24`. With all arithmetic in `i64` unless stated:
//!
//! ```text
//! S1  = Σ x_i                                     |S1| ≤ 2^30
//! μ   = ⌊(2·S1 + n) / (2n)⌋                        (S1/n rounded half up)
//! e   = S1 − n·μ                                   ∈ [−n/2, n/2)
//! d_i = x_i − μ                                    |d_i| ≤ 2^25
//! Q   = n·Σ d_i² − e²                              = n·Σ(x_i − mean)²  ∈ [0, 2^62)
//! T   = Q + E                                      E = round(n²·eps·2^(2F)) ∈ [1, 2^40]
//! ρ   = ⌊√⌊2^122 / T⌋⌋   (u128)                     = ⌊2^61/√T⌋ exactly
//! x̂_i = rshift_round((n·d_i − e)·ρ, 61 − 24)  (i128 product < 2^92)
//! ```
//!
//! so `x̂_i ≈ 2^24 · (x_i − mean)/√(var + eps)` (Q24), `|x̂_i| ≤ √(n−1)·2^24 + 1 < 2^27`.
//! The only roundings are μ (exactly compensated by `e`), `ρ` (relative
//! error `< 2^−29.5` since `√T < 2^31.5`) and the final shift.
//!
//! # Affine ([`LnParams::output`])
//!
//! `Y_i = rshift_round(x̂_i·G_i, 24 + g_frac − y_frac) + B_i` with
//! `G_i = round(γ_i·2^g_frac)`, `B_i = round(β_i·2^y_frac)` (both i32): `Y` is
//! the LayerNorm output in Q`y_frac` (i64, `|Y| < 2^58 + 2^31`).
//!
//! # Quantizer on a fixed-point value ([`FixedQuant`])
//!
//! `code = clamp(rshift_round(clamp(Y − L, ±2^32)·M, S), 0, N)` with
//! `L = round(l·2^y_frac)` and `M = round(2^(S − y_frac)/s)`: the b-bit code of
//! `round((Y/2^y_frac − l)/s)`, ties up. The `±2^32` clamp keeps the product
//! below 2^63 and never changes a code (validated: `2^32·M ≥ N·2^S`).

use super::arith::{
    clamp_abs, clamp_code, clamp_stream, fits_bits, isqrt_u128, rshift_round, rshift_round_i128,
};
use super::view::I32Src;
use super::{check_len, check_param, OpError};

/// Fractional bits of the normalised value `x̂`.
pub const XHAT_FRAC: u32 = 24;
/// Most channels [`normalize`] accepts (the bound proof assumes `n ≤ 64`).
pub const MAX_CHANNELS: usize = 64;
/// Largest eps term `E` (keeps `T < 2^63`).
pub const MAX_EPS_T: i64 = 1 << 40;
/// Clamp of `Y − L` in [`FixedQuant::code`].
pub const FIXED_QUANT_CLAMP: i64 = 1 << 32;

/// `x̂` (Q24) of one token; see the [module docs](self).
///
/// Errors: `x.len() ∉ 1..=64`, `xhat.len() != x.len()`, `eps_t ∉ 1..=2^40`.
pub fn normalize(x: &[i32], eps_t: i64, xhat: &mut [i32]) -> Result<(), OpError> {
    let n = x.len();
    check_param("layernorm channel count", (1..=MAX_CHANNELS).contains(&n))?;
    check_len("layernorm output", n, xhat.len())?;
    check_param("layernorm eps term", (1..=MAX_EPS_T).contains(&eps_t))?;
    normalize_unchecked(x, eps_t, xhat);
    Ok(())
}

/// [`normalize`] without the argument checks (callers guarantee them).
#[allow(clippy::arithmetic_side_effects)] // every bound is stated in the module docs
pub(crate) fn normalize_unchecked(x: &[i32], eps_t: i64, xhat: &mut [i32]) {
    let n = x.len() as i64; // 1..=64
    let value = |v: i32| i64::from(clamp_stream(i64::from(v)));
    let s1: i64 = x.iter().map(|&v| value(v)).sum();
    let mu = (2 * s1 + n).div_euclid(2 * n);
    let e = s1 - n * mu;
    let sd2: i64 = x
        .iter()
        .map(|&v| {
            let d = value(v) - mu;
            d * d
        })
        .sum();
    // Q = n·Σ(x − mean)² ≥ 0 mathematically; max(0) documents it.
    let q = (n * sd2 - e * e).max(0);
    let t = (q + eps_t).max(1) as u128;
    let rho = isqrt_u128((1u128 << 122) / t) as i128; // ≤ 2^61
    for (o, &v) in xhat.iter_mut().zip(x) {
        let num = i128::from(n * (value(v) - mu) - e);
        *o = rshift_round_i128(num * rho, 61 - XHAT_FRAC) as i32;
    }
}

/// LayerNorm constants: `G = round(γ·2^g_frac)`, `B = round(β·2^y_frac)`,
/// `E = round(n²·eps·2^(2F))`.
#[derive(Clone, Copy, Debug)]
pub struct LnParams<W> {
    /// `G_i`, one per channel.
    pub gamma: W,
    /// `B_i`, one per channel.
    pub beta: W,
    /// Fractional bits of `G`.
    pub g_frac: u32,
    /// Fractional bits of the output `Y`.
    pub y_frac: u32,
    /// The eps term `E`.
    pub eps_t: i64,
}

impl<W: I32Src> LnParams<W> {
    /// Checks the constants for `channels` channels.
    pub fn validate(&self, channels: usize) -> Result<(), OpError> {
        check_len("layernorm gamma", channels, self.gamma.len())?;
        check_len("layernorm beta", channels, self.beta.len())?;
        check_param("layernorm eps term", (1..=MAX_EPS_T).contains(&self.eps_t))?;
        check_param("layernorm g_frac", self.g_frac <= 40)?;
        check_param(
            "layernorm y_frac",
            self.y_frac <= XHAT_FRAC.saturating_add(self.g_frac) && self.y_frac <= 40,
        )?;
        Ok(())
    }

    /// The output shift `24 + g_frac − y_frac`.
    pub fn shift(&self) -> u32 {
        XHAT_FRAC
            .saturating_add(self.g_frac)
            .saturating_sub(self.y_frac)
    }

    /// `Y_c = rshift_round(x̂·G_c, shift) + B_c` (Q`y_frac`).
    #[allow(clippy::arithmetic_side_effects)] // |x̂| < 2^27, |G| < 2^31, |B| < 2^31
    pub fn output(&self, channel: usize, xhat: i32) -> i64 {
        let g = i64::from(self.gamma.at(channel));
        rshift_round(i64::from(xhat) * g, self.shift()) + i64::from(self.beta.at(channel))
    }

    /// A whole LayerNorm into the residual stream: `out_c = clamp_stream(Y_c)`
    /// (requires `y_frac` = the stream's fractional bits).
    pub fn apply_to_stream(&self, x: &[i32], out: &mut [i32]) -> Result<(), OpError> {
        self.validate(x.len())?;
        check_len("layernorm output", x.len(), out.len())?;
        let mut xhat = [0i32; MAX_CHANNELS];
        let xhat = xhat.get_mut(..x.len()).ok_or(OpError::Param {
            what: "layernorm channel count",
        })?;
        normalize(x, self.eps_t, xhat)?;
        for (c, (o, &xh)) in out.iter_mut().zip(xhat.iter()).enumerate() {
            *o = clamp_stream(self.output(c, xh));
        }
        Ok(())
    }
}

/// The b-bit quantizer on a fixed-point value `Y` (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedQuant {
    /// `L = round(l·2^y_frac)`.
    pub offset: i64,
    /// `M = round(2^(S − y_frac)/s)`, in `1..2^31`.
    pub mult: i64,
    /// `S`, in `1..=62`.
    pub shift: u32,
    /// `N = 2^b − 1`.
    pub levels: u8,
}

impl FixedQuant {
    /// Checks the bounds the arithmetic relies on.
    pub fn validate(&self) -> Result<(), OpError> {
        check_param("fixed quantizer offset", fits_bits(self.offset, 60))?;
        check_param(
            "fixed quantizer multiplier",
            self.mult >= 1 && self.mult < (1 << 31),
        )?;
        check_param("fixed quantizer shift", (1..=62).contains(&self.shift))?;
        check_param("fixed quantizer levels", self.levels >= 1)?;
        // The ±2^32 clamp must not change codes: 2^32·M ≥ N·2^S.
        let reach = i128::from(self.mult) << 32;
        let needed = i128::from(self.levels) << self.shift;
        check_param("fixed quantizer clamp", reach >= needed)
    }

    /// The code of `y` (Q`y_frac`, `|y| < 2^60`).
    #[allow(clippy::arithmetic_side_effects)] // |y − L| < 2^61; clamped product < 2^63
    pub fn code(&self, y: i64) -> u8 {
        let diff = clamp_abs(y.saturating_sub(self.offset), FIXED_QUANT_CLAMP);
        clamp_code(rshift_round(diff * self.mult, self.shift), self.levels)
    }
}
