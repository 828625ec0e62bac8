//! LayerNorm `x̂` (`tdquant_core::int::layernorm::normalize`, same checks).
//!
//! The sums are the oracle's in `i64`. `x̂_i = rshift_round(num_i·ρ, 37)`
//! with `|num_i| ≤ 2^31 + 32` and `ρ ≤ 2^61` is computed without `i128`:
//! `ρ = ρ_h·2^31 + ρ_l` (`ρ_l < 2^31`, `ρ_h < 2^30`), `P1 = num·ρ_h`,
//! `P0 = num·ρ_l` (both `< 2^63`), and
//! `⌊(P1·2^31 + P0 + 2^36)/2^37⌋ = (P1 + ⌊(P0 + 2^36)/2^31⌋) ≫ 6`.

use tdquant_core::int::arith::{clamp_stream, isqrt_u128};
use tdquant_core::int::layernorm::{MAX_CHANNELS, MAX_EPS_T};
use tdquant_core::int::OpError;

use super::{check_len, check_param};

/// See the [module docs](self).
pub fn normalize(x: &[i32], eps_t: i64, xhat: &mut [i32]) -> Result<(), OpError> {
    let n = x.len();
    check_param("layernorm channel count", (1..=MAX_CHANNELS).contains(&n))?;
    check_len("layernorm output", n, xhat.len())?;
    check_param("layernorm eps term", (1..=MAX_EPS_T).contains(&eps_t))?;
    let n = n as i64;
    let value = |v: i32| clamp_stream(i64::from(v));
    let s1: i64 = x.iter().map(|&v| i64::from(value(v))).sum();
    let mu = (2 * s1 + n).div_euclid(2 * n);
    let e = s1 - n * mu;
    let mut sd2 = 0i64;
    for &v in x {
        // |value − μ| ≤ 2^25: fits i32, the square is one SMLAL.
        let d = (i64::from(value(v)) - mu) as i32;
        sd2 += i64::from(d) * i64::from(d);
    }
    let q = (n * sd2 - e * e).max(0);
    let t = (q + eps_t).max(1) as u128;
    let rho = isqrt_u128((1u128 << 122) / t) as u64; // ≤ 2^61
    let (rho_h, rho_l) = ((rho >> 31) as i64, (rho & 0x7FFF_FFFF) as i64);
    for (o, &v) in xhat.iter_mut().zip(x) {
        let num = n * (i64::from(value(v)) - mu) - e;
        let p1 = num * rho_h;
        let p0 = num * rho_l;
        *o = ((p1 + ((p0 + (1 << 36)) >> 31)) >> 6) as i32;
    }
    Ok(())
}
