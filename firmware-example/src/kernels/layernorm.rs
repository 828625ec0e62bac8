//! LayerNorm `x̂` (`tdquant_core::int::layernorm::normalize`, same checks).
//!
//! The sums are the oracle's in `i64`. `x̂_i = rshift_round(num_i·ρ, 37)`
//! with `|num_i| ≤ 2^31 + 32` and `ρ ≤ 2^61` is computed without `i128`:
//! `ρ = ρ_h·2^31 + ρ_l` (`ρ_l < 2^31`, `ρ_h < 2^30`), `P1 = num·ρ_h`,
//! `P0 = num·ρ_l` (both `< 2^63`), and
//! `⌊(P1·2^31 + P0 + 2^36)/2^37⌋ = (P1 + ⌊(P0 + 2^36)/2^31⌋) ≫ 6`.
//!
//! `ρ = isqrt(⌊2^122/T⌋)` is the largest `r` with `r²·T ≤ 2^122` (for an
//! integer `r²`, `r² ≤ ⌊2^122/T⌋ ⇔ r²·T ≤ 2^122`). [`rho`] finds it without
//! the oracle's 128-bit division and square root: a 31-bit `√T` from
//! `u64::isqrt` of `T` normalised to `[2^60, 2^62)`, a reciprocal ([`recip63`]),
//! one Newton step of `1/√T` (relative error `~2^−57`), and an exact fix-up
//! with `r²·T` compared to `2^122` in `u128`.

use tdquant_core::int::layernorm::{MAX_CHANNELS, MAX_EPS_T};
use tdquant_core::int::{check_len, check_param, OpError, STREAM_LIMIT};

/// See the [module docs](self).
pub fn normalize(x: &[i32], eps_t: i64, xhat: &mut [i32]) -> Result<(), OpError> {
    let n = x.len();
    check_param("layernorm channel count", (1..=MAX_CHANNELS).contains(&n))?;
    check_len("layernorm output", n, xhat.len())?;
    check_param("layernorm eps term", (1..=MAX_EPS_T).contains(&eps_t))?;
    // Each input clamped once, in 32 bits (the oracle's `clamp_stream` of
    // an `i32` is this clamp), into `xhat`, which each value's `x̂` then
    // replaces (no buffer of its own to clear).
    let clamped = xhat;
    for (c, &v) in clamped.iter_mut().zip(x) {
        *c = v.clamp(-STREAM_LIMIT, STREAM_LIMIT);
    }
    let n32 = n as i32; // 1..=64
    let n = i64::from(n32);
    let s1: i64 = clamped.iter().map(|&v| i64::from(v)).sum();
    let mu = (2 * s1 + n).div_euclid(2 * n);
    let e = s1 - n * mu;
    // |μ| ≤ 2^24 and |value − μ| ≤ 2^25: the deviations are i32, each square
    // one SMLAL.
    let mu = mu as i32;
    let mut sd2 = 0i64;
    for &v in clamped.iter() {
        let d = v - mu;
        sd2 += i64::from(d) * i64::from(d);
    }
    let q = (n * sd2 - e * e).max(0);
    let t = (q + eps_t).max(1) as u128;
    let rho = rho(t as u64); // ≤ 2^61
    let (rho_h, rho_l) = ((rho >> 31) as i64, (rho & 0x7FFF_FFFF) as i64);
    for o in clamped.iter_mut() {
        let v = *o;
        // n·d: one SMULL (|n·d| ≤ 2^31 needs the 64-bit result).
        let num = i64::from(v - mu) * i64::from(n32) - e;
        let p1 = num * rho_h;
        let p0 = num * rho_l;
        *o = ((p1 + ((p0 + (1 << 36)) >> 31)) >> 6) as i32;
    }
    Ok(())
}

/// `≈ 2^63/q` for `q ∈ [2^30, 2^31)`, within about ten units: a 16-bit
/// quotient from one 32-bit `UDIV` (`2^48/⌊q/2^15⌋`, above `2^63/q` by a
/// relative `< 2^−15`), then one Newton step `R ← R + R·(2^63 − q·R)/2^63`
/// (relative error squared, plus under a unit of truncation). [`rho`]'s
/// fix-up makes ρ exact whatever this error; a close start keeps that to a
/// step or two, and saves the 64-bit division of `compiler_builtins`.
fn recip63(q: u64) -> u64 {
    if !(1 << 30..1 << 31).contains(&q) {
        return (1 << 63) / q.max(1);
    }
    let r0 = u64::from(u32::MAX / (q >> 15) as u32) << 16; // ≤ 2^33
                                                           // q·R0 = 2^63·(1 ± 2^−15) < 2^64; |err| < 2^49.
    let err = (1u64 << 63).wrapping_sub(q * r0) as i64;
    // (R0/2^8)·(err/2^24) < 2^25·2^25.
    let correction = ((r0 >> 8) as i64 * (err >> 24)) >> 31;
    r0.wrapping_add_signed(correction)
}

/// `r²·t ≤ 2^122` (overflow counts as above).
#[inline(always)]
fn fits(r: u64, t: u64) -> bool {
    u128::from(r)
        .checked_mul(u128::from(r))
        .and_then(|sq| sq.checked_mul(u128::from(t)))
        .is_some_and(|v| v <= 1 << 122)
}

/// `isqrt(⌊2^122 / t⌋)` for `1 ≤ t < 2^63` (module docs).
pub fn rho(t: u64) -> u64 {
    let t = t.clamp(1, (1 << 63) - 1);
    let bits = 64 - t.leading_zeros() as i32; // 1..=63
                                              // Even shift putting t into [2^60, 2^62): s ∈ −2..=60.
    let s = (62 - bits).div_euclid(2) * 2;
    let tn = if s >= 0 { t << s } else { t >> -s };
    let q = tn.isqrt().max(1); // [2^30, 2^31)
                               // ρ ≈ 2^(61 + s/2)/q = (2^63/q)·2^(s/2 − 2);  s/2 − 2 ∈ −3..=28.
    let recip = recip63(q);
    let e = s / 2 - 2;
    let r0 = if e >= 0 { recip << e } else { recip >> -e };
    // r1 = r0 + r0·(2^122 − r0²t)/2^123, with r0²t ≈ 2^122 (1 ± 2^−28).
    let sq_t = u128::from(r0)
        .checked_mul(u128::from(r0))
        .and_then(|sq| sq.checked_mul(u128::from(t)))
        .unwrap_or(u128::MAX);
    let err = (1i128 << 122) - sq_t.min(1 << 126) as i128;
    let corr = (i128::from(r0) * (err >> 61)) >> 62;
    let mut r = (i128::from(r0) + corr).clamp(0, 1 << 62) as u64;
    while r > 0 && !fits(r, t) {
        r -= 1;
    }
    while fits(r + 1, t) {
        r += 1;
    }
    r
}
