//! The exact GELU in `f64` and the thresholds that fold GELU and the fc2-input
//! quantizer into integer comparisons.

/// Exact GELU, `y·Φ(y)`.
pub fn gelu_f64(y: f64) -> f64 {
    0.5 * y * (1.0 + libm::erf(y / std::f64::consts::SQRT_2))
}

/// `(y*, gelu(y*))`: the minimum of GELU.
pub fn gelu_min() -> (f64, f64) {
    // gelu'(y) = Φ(y) + y·φ(y): negative at −2, positive at 0.
    let d = |y: f64| {
        0.5 * (1.0 + libm::erf(y / std::f64::consts::SQRT_2))
            + y * (-0.5 * y * y).exp() / (2.0 * std::f64::consts::PI).sqrt()
    };
    let (mut lo, mut hi) = (-2.0f64, 0.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if d(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let y = 0.5 * (lo + hi);
    (y, gelu_f64(y))
}

/// Bisection for `gelu(y) = level` on `[lo, hi]` where `gelu` is monotone
/// with `increasing` direction.
fn gelu_root(level: f64, mut lo: f64, mut hi: f64, increasing: bool) -> f64 {
    for _ in 0..300 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        let above = gelu_f64(mid) >= level;
        if above == increasing {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The GELU → quantizer thresholds `(H_k, L_k)` of `docs/integer-semantics.md`
/// for the fc2-input grid `(l, s, N)`, in units of `2^−frac` (real fc1 output).
pub fn gelu_thresholds(l: f64, s: f64, levels: u8, frac: i32) -> Vec<(i64, i64)> {
    let (ystar, gmin) = gelu_min();
    let scale = 2f64.powi(frac);
    let limit = (1i64 << 62) as f64;
    let fixed = |v: f64, ceil: bool| -> i64 {
        let x = v * scale;
        let x = if ceil { x.ceil() } else { x.floor() };
        x.clamp(-limit, limit) as i64
    };
    (1..=levels)
        .map(|k| {
            let level = l + (f64::from(k) - 0.5) * s;
            if level <= gmin {
                (i64::MIN, i64::MIN)
            } else {
                let right = gelu_root(level, ystar, level.max(0.0) + 2.0, true);
                let hi = fixed(right, true);
                let lo = if level < 0.0 {
                    fixed(gelu_root(level, -60.0, ystar, false), false)
                } else {
                    i64::MIN
                };
                (hi, lo)
            }
        })
        .collect()
}
