//! Linear layers on b-bit codes with the asymmetric-grid correction.
//!
//! The input activation is `x_i = l_a + s_a·a_i` and the weight
//! `w_ji = l_w + s_w·c_ji` (codes `a`, `c`); so, with `K` inputs,
//!
//! ```text
//! Σ_i x_i w_ji + b_j = s_a s_w·acc_j + s_a l_w·Σa + l_a s_w·Σ_i c_ji + K l_a l_w + b_j,
//!                      acc_j = Σ_i a_i c_ji  (i32),   Σa = Σ_i a_i
//! ```
//!
//! Every real factor is folded on the host into one affine map of the two
//! integers, evaluated in `i64` ([`CodeAffine::t`]):
//!
//! ```text
//! t_j = acc_j·A + Σa·B + (C_j << c_shift)       (Q`frac`)
//! ```
//!
//! and the result is used in one of three ways:
//!
//! * **codes** for the next quantizer (q·10^−0.5 → AttnQ, k → AttnK, v → AttnV):
//!   `A = σ s_a s_w / s_o`, `B = σ s_a l_w / s_o`,
//!   `C_j = (σ(l_a s_w Σc_j + K l_a l_w + b_j) − l_o)/s_o`, then
//!   `code = clamp(rshift_round(t, frac), 0, N)` ([`linear_codes`]);
//! * **stream** (proj, fc2): the same with `s_o = 2^−F`, `l_o = 0`, `σ = 1`, then
//!   `clamp_stream(rshift_round(t, frac))`;
//! * **raw** `t` (fc1), compared with the GELU thresholds ([`super::gelu`]).
//!
//! `A`, `B`, `C` are `round(· 2^frac)` (`C` as `round(C_j·2^(frac − c_shift))`, an i32).
//!
//! Bounds: codes are `u8` (≤ 255 even for garbage input) and `K ≤ 128`, so
//! `|acc| ≤ 128·255² < 2^23`, `Σa < 2^15`; with `|A|, |B| ≤ 2^38` and
//! `c_shift ≤ 29`, `|t| < 2^61 + 2^53 + 2^60 < 2^62`.

use crate::packed::PackedMatrix;

use super::arith::{clamp_code, clamp_stream, fits_bits, rshift_round};
use super::view::I32Src;
use super::{check_len, check_param, OpError};

/// Most inputs per output (`K`).
pub const MAX_K: usize = 128;
/// Tokens per inner block (the per-token `Σa` is kept on the stack).
const TOKEN_BLOCK: usize = 64;

/// The affine map of a linear layer's integer accumulators (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeAffine {
    /// `A`, `|A| ≤ 2^38`.
    pub a: i64,
    /// `B`, `|B| ≤ 2^38`.
    pub b: i64,
    /// Left shift of the per-row `C_j`, `≤ 29`.
    pub c_shift: u32,
    /// Fractional bits of `t`, `≤ 62`.
    pub frac: u32,
}

impl CodeAffine {
    /// Checks the bounds of the module docs.
    pub fn validate(&self) -> Result<(), OpError> {
        check_param("linear A", fits_bits(self.a, 38))?;
        check_param("linear B", fits_bits(self.b, 38))?;
        check_param("linear C shift", self.c_shift <= 29)?;
        check_param("linear frac", self.frac <= 62)
    }

    /// `t = acc·A + Σa·B + (C << c_shift)`.
    #[allow(clippy::arithmetic_side_effects)] // |t| < 2^62, see the module docs
    pub fn t(&self, acc: i32, asum: i32, c: i32) -> i64 {
        i64::from(acc) * self.a + i64::from(asum) * self.b + (i64::from(c) << self.c_shift)
    }
}

/// `Σ a_i·c_i` of two code rows (`|·| < 2^23` for `len ≤ 128`).
#[inline]
pub fn dot_codes(a: &[u8], c: &[u8]) -> i32 {
    // Each product < 2^16 and at most 128 terms: the wrapping sum never wraps.
    a.iter().zip(c).fold(0i32, |acc, (&x, &w)| {
        acc.wrapping_add(i32::from(x).wrapping_mul(i32::from(w)))
    })
}

/// `Σ a_i`.
#[inline]
pub fn sum_codes(a: &[u8]) -> i32 {
    a.iter()
        .fold(0i32, |acc, &x| acc.wrapping_add(i32::from(x)))
}

/// The inputs of one packed linear layer ([`linear`]).
#[derive(Debug)]
pub struct LinearCall<'a, W: ?Sized> {
    /// `tokens × k` codes, row-major (one row per token).
    pub input: &'a [u8],
    /// Inputs per output (`K`).
    pub k: usize,
    /// The packed weights; this layer uses rows `row0 .. row0 + rows`, each
    /// `k` codes.
    pub weights: &'a PackedMatrix<'a>,
    /// First weight row of this layer.
    pub row0: u32,
    /// Outputs per token.
    pub rows: usize,
    /// The affine map of the accumulators.
    pub affine: &'a CodeAffine,
    /// The `rows` per-row constants `C_j`.
    pub c: &'a W,
}

impl<'a, W: I32Src + ?Sized> LinearCall<'a, W> {
    /// Bundles the inputs.
    pub const fn new(
        input: &'a [u8],
        k: usize,
        weights: &'a PackedMatrix<'a>,
        row0: u32,
        rows: usize,
        affine: &'a CodeAffine,
        c: &'a W,
    ) -> Self {
        Self {
            input,
            k,
            weights,
            row0,
            rows,
            affine,
            c,
        }
    }

    /// The shape and parameter checks every linear kernel makes first, in
    /// this order (so every backend refuses bad inputs with the same error);
    /// `Ok` holds the end row `row0 + rows`.
    pub fn check(&self) -> Result<u32, OpError> {
        let (input, k) = (self.input, self.k);
        check_param("linear input width", (1..=MAX_K).contains(&k))?;
        check_len(
            "linear input",
            input.len().div_ceil(k).saturating_mul(k),
            input.len(),
        )?;
        check_len("linear weight columns", k, self.weights.cols() as usize)?;
        let end = u32::try_from(self.rows)
            .ok()
            .and_then(|r| self.row0.checked_add(r))
            .filter(|&end| end <= self.weights.rows())
            .ok_or(OpError::Param {
                what: "linear weight rows",
            })?;
        check_len("linear row constants", self.rows, self.c.len())?;
        self.affine.validate()?;
        Ok(end)
    }

    /// The output check of the code-producing kernels ([`linear_codes`]):
    /// one code per token and row, checked before [`Self::check`].
    pub fn check_codes_len(&self, out_len: usize) -> Result<(), OpError> {
        let tokens = self.input.len().checked_div(self.k).unwrap_or(0);
        check_len("linear output", tokens.saturating_mul(self.rows), out_len)
    }
}

/// Runs a linear layer and hands every `t` to `emit(token, row, t)`.
///
/// The order of `emit` calls is rows outer, tokens inner (each weight row is
/// decoded once per 64 tokens); results do not depend on it.
pub fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
    call: &LinearCall<'_, W>,
    mut emit: F,
) -> Result<(), OpError> {
    let end = call.check()?;
    let (input, k, weights, affine, c) = (call.input, call.k, call.weights, call.affine, call.c);

    let mut wrow = [0u8; MAX_K];
    let wrow = wrow.get_mut(..k).ok_or(OpError::Param {
        what: "linear input width",
    })?;
    let mut asum = [0i32; TOKEN_BLOCK];
    for (block_index, block) in input.chunks(TOKEN_BLOCK.saturating_mul(k)).enumerate() {
        let token0 = block_index.saturating_mul(TOKEN_BLOCK);
        for (s, x) in asum.iter_mut().zip(block.chunks_exact(k)) {
            *s = sum_codes(x);
        }
        for (j, row) in (call.row0..end).enumerate() {
            weights.unpack_row(row, wrow).map_err(|_| OpError::Param {
                what: "linear weight rows",
            })?;
            let cj = c.at(j);
            for (t, (x, &s)) in block.chunks_exact(k).zip(asum.iter()).enumerate() {
                emit(
                    token0.saturating_add(t),
                    j,
                    affine.t(dot_codes(x, wrow), s, cj),
                );
            }
        }
    }
    Ok(())
}

/// [`linear`] producing the next quantizer's codes:
/// `out[token·rows + j] = clamp(rshift_round(t, frac), 0, levels)`.
pub fn linear_codes<W: I32Src + ?Sized>(
    call: &LinearCall<'_, W>,
    levels: u8,
    out: &mut [u8],
) -> Result<(), OpError> {
    call.check_codes_len(out.len())?;
    let rows = call.rows;
    let frac = call.affine.frac;
    linear(call, |t, j, v| {
        if let Some(o) = out.get_mut(t.saturating_mul(rows).saturating_add(j)) {
            *o = clamp_code(rshift_round(v, frac), levels);
        }
    })
}

/// [`linear`] added to the residual stream (proj, fc2): for token `t` and
/// row `j`, `r[pos[t]·stride + j] = clamp_stream(r[…] + clamp_stream(rshift_round(t, frac)))`.
/// Tokens without a `pos` entry, and indices outside `r`, are skipped.
pub fn linear_stream<W: I32Src + ?Sized>(
    call: &LinearCall<'_, W>,
    pos: &[usize],
    stride: usize,
    r: &mut [i32],
) -> Result<(), OpError> {
    let frac = call.affine.frac;
    linear(call, |t, j, v| {
        let at = pos
            .get(t)
            .map(|&p| p.saturating_mul(stride).saturating_add(j));
        if let Some(dst) = at.and_then(|at| r.get_mut(at)) {
            *dst = add_stream(*dst, rshift_round(v, frac));
        }
    })
}

/// `clamp_stream(r + clamp_stream(y))` (both terms are within `±2^24` after
/// the inner clamp of `y`, so the `i64` sum cannot overflow).
#[allow(clippy::arithmetic_side_effects)]
pub fn add_stream(r: i32, y: i64) -> i32 {
    clamp_stream(i64::from(r) + i64::from(clamp_stream(y)))
}
