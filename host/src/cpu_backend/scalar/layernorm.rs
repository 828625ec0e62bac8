//! LayerNorm (core's `normalize` + `LnParams::output`) on pre-decoded
//! constants, with `x̂` in `i64`, and the fixed quantizer of its outputs.

use anyhow::{anyhow, Result};
use rayon::prelude::*;
use tdquant_core::int::arith::clamp_stream;
use tdquant_core::int::layernorm::{FixedQuant, LnParams};
use tdquant_core::int::{LeI32, EMBED};

use crate::cpu_backend::prepared::LnFast;

/// A stream LayerNorm, tokens in parallel.
pub(crate) fn layer_norm_stream(ln: &LnParams<LeI32<'_>>, r: &mut [i32]) -> Result<()> {
    // `apply_to_stream` validates, then computes `clamp_stream(Y_c)`.
    ln.validate(EMBED).map_err(|e| anyhow!("layer norm: {e}"))?;
    if let Some(fast) = LnFast::new(ln) {
        r.par_chunks_mut(EMBED).for_each(|px| {
            let mut y = [0i64; EMBED];
            ln_token(px, &fast, &mut y);
            for (d, &v) in px.iter_mut().zip(&y) {
                *d = clamp_stream(v);
            }
        });
        return Ok(());
    }
    r.par_chunks_mut(EMBED).try_for_each(|px| {
        let mut token = [0i32; EMBED];
        token.copy_from_slice(px);
        ln.apply_to_stream(&token, px)
            .map_err(|e| anyhow!("layer norm: {e}"))
    })
}

/// Core's `rshift_round`.
#[inline(always)]
pub(crate) fn rsr(v: i64, k: u32) -> i64 {
    if k == 0 {
        v
    } else if k >= 64 {
        0
    } else {
        (v >> k).wrapping_add((v >> (k - 1)) & 1)
    }
}

/// Core's `clamp_code`.
#[inline(always)]
pub(crate) fn code_of(v: i64, levels: u8) -> u8 {
    v.clamp(0, i64::from(levels)) as u8
}

/// Core's `normalize` then `LnParams::output` for one 60-channel token:
/// `y[c]` (Q`y_frac`).
///
/// `x̂ = rshift_round_i128(num·ρ, 37)` is evaluated in `i64`: with
/// `ρ = ρ_h·2^32 + ρ_l` (`ρ ≤ 2^61`, so `ρ_h ≤ 2^29`, `ρ_l < 2^32`) and
/// `|num| = |60·d − e| ≤ 60·2^25 + 30 < 2^31`: `X = num·ρ_l + 2^36`
/// (`|X| < 2^63`) and `num·ρ + 2^36 = (num·ρ_h + ⌊X/2^32⌋)·2^32 + (X mod 2^32)`,
/// so `⌊(num·ρ + 2^36)/2^37⌋ = ⌊(num·ρ_h + ⌊X/2^32⌋)/2^5⌋` (the low part
/// `< 2^32` never carries into a multiple of `2^37`).
#[inline(always)]
pub(crate) fn ln_token(x: &[i32], ln: &LnFast, y: &mut [i64; EMBED]) {
    let st = ln_stats(x, ln.eps_t);
    ln_apply(x, &st, ln, y);
}

/// A token's LayerNorm statistics for [`ln_apply`] (see [`ln_token`]).
#[derive(Clone, Copy, Default)]
pub(crate) struct LnStats {
    mu: i64,
    e: i64,
    rho_h: i64,
    rho_l: i64,
}

#[inline(always)]
pub(crate) fn ln_stats(x: &[i32], eps_t: i64) -> LnStats {
    let n = EMBED as i64;
    let (mut s1, mut s2) = (0i64, 0i64);
    for &v in &x[..EMBED] {
        let v = i64::from(clamp_stream(i64::from(v)));
        s1 += v;
        s2 += v * v;
    }
    // Core's Q = n·Σ(x − μ)² − e² equals n·Σx² − S1² (expand e = S1 − nμ);
    // |x| ≤ 2^24: Σx² < 2^54, n·Σx² < 2^60, S1² < 2^62. One pass instead of
    // two dependent ones.
    let mu = (2 * s1 + n).div_euclid(2 * n);
    let e = s1 - n * mu;
    let q = (n * s2 - s1 * s1).max(0);
    let t = (q + eps_t).max(1) as u128;
    let rho = rho_of(t);
    LnStats {
        mu,
        e,
        rho_h: (rho >> 32) as i64,
        rho_l: (rho & 0xFFFF_FFFF) as i64,
    }
}

#[inline(always)]
pub(crate) fn ln_apply(x: &[i32], st: &LnStats, ln: &LnFast, y: &mut [i64; EMBED]) {
    let n = EMBED as i64;
    for (c, (out, &v)) in y.iter_mut().zip(x).enumerate() {
        let v = i64::from(clamp_stream(i64::from(v)));
        let num = n * (v - st.mu) - st.e;
        let xx = num * st.rho_l + (1 << 36);
        let xhat = (num * st.rho_h + (xx >> 32)) >> 5;
        *out = rsr(xhat * ln.gamma[c], ln.shift) + ln.beta[c];
    }
}

/// `ρ = ⌊√⌊2^122/T⌋⌋` (`1 ≤ T < 2^63`) as core computes it: the largest
/// `s` with `s² ≤ ⌊2^122/T⌋`, i.e. with `s²·T ≤ 2^122` (`s²` is an
/// integer). An `f64` estimate is corrected with that exact test; when the
/// estimate is large (`≥ 2^50`, where its error may exceed a few units) core's
/// expression is used as is.
#[inline(always)]
pub(crate) fn rho_of(t: u128) -> u64 {
    // t < 2^63: the u64 → f64 conversion is a single instruction.
    let est = (2f64.powi(61) / (t as u64 as f64).sqrt()) as u64;
    if est >= 1 << 50 {
        return ((1u128 << 122) / t).isqrt() as u64;
    }
    let ok = |s: u64| {
        let s = u128::from(s);
        (s * s).checked_mul(t).is_some_and(|p| p <= 1 << 122)
    };
    let mut s = est;
    while !ok(s) {
        s -= 1;
    }
    while ok(s + 1) {
        s += 1;
    }
    s
}

/// Core's `FixedQuant::code` on a token's LayerNorm outputs
/// (`|y − L| < 2^61`: the subtraction never saturates).
#[inline(always)]
pub(crate) fn quant_token(q: &FixedQuant, y: &[i64; EMBED], out: &mut [u8]) {
    let lim = tdquant_core::int::layernorm::FIXED_QUANT_CLAMP;
    for (o, &y) in out.iter_mut().zip(y) {
        let diff = (y - q.offset).clamp(-lim, lim);
        *o = code_of(rsr(diff * q.mult, q.shift), q.levels);
    }
}
