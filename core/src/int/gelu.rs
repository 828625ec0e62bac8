//! GELU followed by the fc2-input quantizer, as exact thresholds on the fc1
//! output.
//!
//! The fc2-input code of an fc1 output `y` is
//! `round((clamp(gelu(y), l, u) − l)/s)`, a step function of `y`:
//! `code ≥ k ⇔ gelu(y) ≥ λ_k` with `λ_k = l + (k − 1/2)·s`, `k = 1..=N`.
//! GELU (`y·Φ(y)`, exact erf form) decreases on `(−∞, y*]` and increases on
//! `[y*, ∞)`, `y* ≈ −0.75179`, `gelu(y*) ≈ −0.16997`, and is negative for
//! `y < 0`. So `{y : gelu(y) ≥ λ_k}` is
//!
//! * everything, if `λ_k ≤ gelu(y*)`;
//! * `(−∞, t⁻_k] ∪ [t⁺_k, ∞)` with `t⁻_k < y* < t⁺_k ≤ 0`, if `gelu(y*) < λ_k < 0`;
//! * `[t⁺_k, ∞)`, if `λ_k ≥ 0`.
//!
//! The host finds `t±_k` by `f64` bisection and stores, in the units of the
//! fc1 output `t` (Q`frac`, see [`super::linear`]), `H_k = ⌈t⁺_k·2^frac⌉` and
//! `L_k = ⌊t⁻_k·2^frac⌋`, with `H_k = i64::MIN` for "always" and
//! `L_k = i64::MIN` for "no left branch". The integer path computes
//!
//! ```text
//! code = #{k ∈ 1..=N : t ≥ H_k  or  t ≤ L_k}
//! ```
//!
//! which needs no arithmetic at all (`|t| < 2^62`, so `t ≤ i64::MIN` is never true).

use super::view::I32Src;

/// Words per threshold pair: `H_k` (lo, hi) then `L_k` (lo, hi).
pub const WORDS_PER_LEVEL: usize = 4;

/// The fc2-input code of the fc1 output `t` (module docs). `table` holds
/// `4N` words; `N = table.len() / 4`.
pub fn gelu_code<W: I32Src + ?Sized>(t: i64, table: &W) -> u8 {
    let levels = table.len() / WORDS_PER_LEVEL;
    let mut count = 0u8;
    for k in 0..levels.min(255) {
        let base = k.saturating_mul(WORDS_PER_LEVEL);
        let hi = table.at_i64(base);
        let lo = table.at_i64(base.saturating_add(2));
        if t >= hi || t <= lo {
            count = count.saturating_add(1);
        }
    }
    count
}

/// Most levels a [`GeluTable`] holds (`N` of a 4-bit quantizer).
pub const GELU_TABLE_LEVELS: usize = 15;

/// A GELU threshold table decoded once, for the many fc1 outputs of a block:
/// [`GeluTable::code`] is [`gelu_code`] without re-reading the `I32Src`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeluTable {
    hi: [i64; GELU_TABLE_LEVELS],
    lo: [i64; GELU_TABLE_LEVELS],
    levels: usize,
}

impl GeluTable {
    /// Decodes `table` (`4N` words); `None` when `N > GELU_TABLE_LEVELS`.
    pub fn new<W: I32Src + ?Sized>(table: &W) -> Option<Self> {
        let levels = table.len() / WORDS_PER_LEVEL;
        if levels > GELU_TABLE_LEVELS {
            return None;
        }
        let mut out = GeluTable {
            hi: [0; GELU_TABLE_LEVELS],
            lo: [0; GELU_TABLE_LEVELS],
            levels,
        };
        for (k, (hi, lo)) in out.hi.iter_mut().zip(out.lo.iter_mut()).enumerate() {
            let base = k.saturating_mul(WORDS_PER_LEVEL);
            *hi = table.at_i64(base);
            *lo = table.at_i64(base.saturating_add(2));
        }
        Some(out)
    }

    /// `gelu_code(t, table)` of the table this was decoded from.
    pub fn code(&self, t: i64) -> u8 {
        let n = self.levels.min(GELU_TABLE_LEVELS);
        let mut count = 0u8;
        for (&hi, &lo) in self.hi.iter().zip(self.lo.iter()).take(n) {
            count = count.saturating_add(u8::from(t >= hi || t <= lo));
        }
        count
    }
}
