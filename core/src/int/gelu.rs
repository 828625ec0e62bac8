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
///
/// Level `k` is *not* counted exactly when `t` lies in the open interval
/// `I_k = (L_k, H_k)`, so `code = N − #{k : t ∈ I_k}`. For a real GELU table
/// the intervals are nested, `I_0 ⊆ I_1 ⊆ … ⊆ I_{N−1}` (λ_k grows with `k`;
/// "always" levels have `I_k = ∅`), so `{k : t ∈ I_k}` is a suffix and the
/// code is the index of its first element, found by binary search. The
/// nesting is checked when the table is decoded; any other table is counted
/// level by level, as [`gelu_code`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeluTable {
    hi: [i64; GELU_TABLE_LEVELS],
    lo: [i64; GELU_TABLE_LEVELS],
    levels: usize,
    nested: bool,
}

impl GeluTable {
    /// Decodes `table` (`4N` words); `None` when `N > GELU_TABLE_LEVELS`.
    #[allow(clippy::arithmetic_side_effects)] // an i128 difference of two i64 cannot overflow
    pub fn new<W: I32Src + ?Sized>(table: &W) -> Option<Self> {
        let levels = table.len() / WORDS_PER_LEVEL;
        if levels > GELU_TABLE_LEVELS {
            return None;
        }
        let mut out = GeluTable {
            hi: [0; GELU_TABLE_LEVELS],
            lo: [0; GELU_TABLE_LEVELS],
            levels,
            nested: true,
        };
        for (k, (hi, lo)) in out.hi.iter_mut().zip(out.lo.iter_mut()).enumerate() {
            let base = k.saturating_mul(WORDS_PER_LEVEL);
            *hi = table.at_i64(base);
            *lo = table.at_i64(base.saturating_add(2));
        }
        let n = levels.min(GELU_TABLE_LEVELS);
        for k in 1..n {
            let prev = k.saturating_sub(1);
            let (inner_lo, inner_hi) = (out.lo.get(prev), out.hi.get(prev));
            let (outer_lo, outer_hi) = (out.lo.get(k), out.hi.get(k));
            if let (Some(&il), Some(&ih), Some(&ol), Some(&oh)) =
                (inner_lo, inner_hi, outer_lo, outer_hi)
            {
                // The integers strictly between il and ih: none when ih − il ≤ 1.
                let inner_empty = i128::from(ih) - i128::from(il) <= 1;
                if !inner_empty && (ol > il || ih > oh) {
                    out.nested = false;
                }
            }
        }
        Some(out)
    }

    /// `gelu_code(t, table)` of the table this was decoded from.
    #[allow(clippy::arithmetic_side_effects)] // 0 ≤ low ≤ high ≤ 15 in the search
    pub fn code(&self, t: i64) -> u8 {
        let n = self.levels.min(GELU_TABLE_LEVELS);
        let inside = |k: usize| match (self.lo.get(k), self.hi.get(k)) {
            (Some(&lo), Some(&hi)) => lo < t && t < hi,
            _ => false,
        };
        if self.nested {
            // First k with t ∈ I_k (n if none): the code.
            let (mut low, mut high) = (0usize, n);
            while low < high {
                let mid = low + (high - low) / 2;
                if inside(mid) {
                    high = mid;
                } else {
                    low = mid.saturating_add(1);
                }
            }
            low as u8
        } else {
            let mut count = 0u8;
            for k in 0..n {
                count = count.saturating_add(u8::from(!inside(k)));
            }
            count
        }
    }
}
