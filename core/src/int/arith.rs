//! The few integer primitives every operator is written in.
//!
//! * **Rounding shift** [`rshift_round`]: `⌊v / 2^k + 1/2⌋`, i.e. round to
//!   nearest with ties towards +∞ ("half up"), the single rounding rule of
//!   the integer path (the same as [`RoundingMode::HalfUp`](crate::RoundingMode::HalfUp)).
//!   Computed as `(v >> k) + ((v >> (k−1)) & 1)`, which cannot overflow.
//! * **Integer square root** [`isqrt_u128`]: `⌊√n⌋` exactly.
//! * **Clamps** to a code range or to the residual-stream range.

use super::STREAM_LIMIT;

/// Defines `$name(v, k)`, the rounding shift for the signed type `$t`: the
/// one expression `(v >> k) + ((v >> (k−1)) & 1)` at each width, with the
/// `k = 0` and `k ≥ BITS` edges.
macro_rules! rshift_round_fn {
    ($(#[$doc:meta])* $name:ident, $t:ty) => {
        $(#[$doc])*
        #[allow(clippy::arithmetic_side_effects)] // 1 ≤ k < BITS in the shifts
        pub const fn $name(v: $t, k: u32) -> $t {
            if k == 0 {
                v
            } else if k >= <$t>::BITS {
                0
            } else {
                // (v >> k) ≥ −2^(BITS−1−k) and the added bit is 0 or 1: no overflow.
                (v >> k).wrapping_add((v >> (k - 1)) & 1)
            }
        }
    };
}

rshift_round_fn!(
    /// `⌊v / 2^k + 1/2⌋` (round half up) for `k ≤ 63`; `k = 0` returns `v`.
    /// For `k ≥ 64` the result is 0 (`|v / 2^k| ≤ 1/2`, and the tie `−2^63/2^64`
    /// rounds up to 0).
    rshift_round,
    i64
);
rshift_round_fn!(
    /// [`rshift_round`] for `i128`, `k ≤ 127`.
    rshift_round_i128,
    i128
);

/// `⌊√n⌋`, exactly.
pub const fn isqrt_u128(n: u128) -> u128 {
    n.isqrt()
}

/// Clamps `v` to the code range `0..=levels`.
pub const fn clamp_code(v: i64, levels: u8) -> u8 {
    if v <= 0 {
        0
    } else if v >= levels as i64 {
        levels
    } else {
        // 0 < v < levels ≤ 255.
        v as u8
    }
}

/// Clamps `v` to the residual-stream range `[−STREAM_LIMIT, STREAM_LIMIT]`.
pub const fn clamp_stream(v: i64) -> i32 {
    if v <= (-STREAM_LIMIT) as i64 {
        -STREAM_LIMIT
    } else if v >= STREAM_LIMIT as i64 {
        STREAM_LIMIT
    } else {
        v as i32
    }
}

/// Clamps `v` to `i16`.
pub const fn clamp_i16(v: i64) -> i32 {
    if v <= i16::MIN as i64 {
        i16::MIN as i32
    } else if v >= i16::MAX as i64 {
        i16::MAX as i32
    } else {
        v as i32
    }
}

/// Clamps `v` to `[-limit, limit]` (`limit ≥ 0`).
pub const fn clamp_abs(v: i64, limit: i64) -> i64 {
    let low = limit.saturating_neg();
    if v < low {
        low
    } else if v > limit {
        limit
    } else {
        v
    }
}

/// `|v| ≤ 2^bits` (for validating constants against a bound proof).
pub const fn fits_bits(v: i64, bits: u32) -> bool {
    if bits >= 63 {
        true
    } else {
        v.unsigned_abs() <= 1u64 << bits
    }
}

/// `⌈v / 2^k⌉` for `k ≤ 126`.
pub const fn ceil_shift_i128(v: i128, k: u32) -> i128 {
    // ⌈v/2^k⌉ = −⌊−v/2^k⌋; callers keep |v| < 2^126, so −v cannot overflow.
    (v.wrapping_neg() >> k).wrapping_neg()
}
