//! A block LayerNorm's output quantizer as thresholds on `x̂`, per channel.
//!
//! For every token and channel `c` the runner needs
//! `code = FixedQuant::code(LnParams::output(c, x̂))` ([`super::layernorm`]):
//! a rounding shift of `x̂·G_c`, `+ B_c`, a saturating `− L`, a clamp, `·M`
//! (`M ≥ 1`), a rounding shift and a clamp. Each step is monotone, so the code
//! is a non-decreasing function of `x̂` when `G_c > 0`, non-increasing when
//! `G_c < 0` and constant when `G_c = 0`. [`LnCodes`] stores, per channel, the
//! smallest *key* reaching each code `k = 1..=N`, with `key = x̂` (`G_c ≥ 0`) or
//! `key = !x̂ = −x̂ − 1` (`G_c < 0`, an order-reversing bijection of `i32`);
//! the code is then the number of thresholds `≤ key`: four compares instead
//! of two 64-bit multiply-and-round steps. It is the same function, exactly.
//!
//! # Thresholds
//!
//! With `S ∈ 1..=62`, `clamp_code(v) ≥ k ⇔ v ≥ k` for `1 ≤ k ≤ N`, and
//! `rshift_round(u, S) = ⌊(u + 2^(S−1))/2^S⌋`:
//!
//! ```text
//! code(Y) ≥ k  ⇔  diff·M ≥ k·2^S − 2^(S−1)      diff = clamp(sat(Y − L), ±2^32)
//!              ⇔  diff ≥ D_k = ⌈(k·2^S − 2^(S−1)) / M⌉      1 ≤ D_k ≤ 2^32
//!              ⇔  Y ≥ Y_k = L + D_k
//! ```
//!
//! (`D_k ≤ 2^32` because [`FixedQuant::validate`] requires `2^32·M ≥ N·2^S`, so
//! neither the clamp nor the saturation can move `diff` across `D_k`.) With
//! `h = 24 + g_frac − y_frac` ([`LnParams::shift`]) and `t = Y_k − B_c`:
//!
//! ```text
//! Y ≥ Y_k  ⇔  rshift_round(x̂·G, h) ≥ t  ⇔  x̂·G ≥ P = t·2^h − 2^(h−1)   (h ≥ 1; P = t for h = 0)
//! G > 0:  x̂ ≥ ⌈P/G⌉          G < 0:  x̂ ≤ ⌊P/G⌋          G = 0 or h ≥ 64:  0 ≥ t, constant
//! ```
//!
//! A threshold below `i32::MIN` is stored as `i32::MIN` (every key reaches
//! it); one above `i32::MAX` is unreachable: it is stored as `i32::MAX` and
//! left out of the channel's `reach`, the largest code any key can get.

use super::layernorm::{FixedQuant, LnParams};
use super::view::I32Src;
use super::{OpError, EMBED};

/// Largest `N` (codes `0..=N`) a table holds: the 2-, 3- and 4-bit
/// quantizers. Wider ones are evaluated with the formula ([`LnQuantizer`]).
pub const MAX_TABLE_LEVELS: u8 = 15;

/// Thresholds per channel: `N ≤ 15` real ones, padded with `i32::MAX` to 16
/// so that the count is a four-step descent.
const SLOTS: usize = 16;

/// Where code `k` starts for one channel.
enum Threshold {
    /// Every key reaches it.
    Always,
    /// No key reaches it.
    Never,
    /// Keys `≥` this value reach it.
    From(i32),
}

/// The quantizer `fq` on the LayerNorm output of every channel, as
/// thresholds on `x̂` (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct LnCodes {
    /// `0` where `G_c ≥ 0`, `−1` where `G_c < 0` (`key = x̂ ^ mask`).
    mask: [i32; EMBED],
    /// The largest code a key can reach.
    reach: [u8; EMBED],
    /// Sorted keys at which codes `1..=N` start, then `i32::MAX`.
    thresholds: [[i32; SLOTS]; EMBED],
}

impl LnCodes {
    /// The table of `fq` on the outputs of `ln`; `None` when `fq` has more
    /// than [`MAX_TABLE_LEVELS`] levels.
    ///
    /// Errors: `ln` or `fq` fails its `validate`.
    pub fn new<W: I32Src>(ln: &LnParams<W>, fq: &FixedQuant) -> Result<Option<Self>, OpError> {
        ln.validate(EMBED)?;
        fq.validate()?;
        if fq.levels > MAX_TABLE_LEVELS {
            return Ok(None);
        }
        let mut table = Self {
            mask: [0; EMBED],
            reach: [0; EMBED],
            thresholds: [[i32::MAX; SLOTS]; EMBED],
        };
        let shift = ln.shift();
        let mut outputs = [0i128; MAX_TABLE_LEVELS as usize];
        for (k, y) in (1..=fq.levels).zip(outputs.iter_mut()) {
            *y = output_threshold(fq, k);
        }
        for (c, ((mask, reach), slots)) in table
            .mask
            .iter_mut()
            .zip(table.reach.iter_mut())
            .zip(table.thresholds.iter_mut())
            .enumerate()
        {
            let g = ln.gamma.at(c);
            let b = ln.beta.at(c);
            *mask = if g < 0 { -1 } else { 0 };
            for ((k, slot), &y) in (1..=fq.levels).zip(slots.iter_mut()).zip(&outputs) {
                #[allow(clippy::arithmetic_side_effects)] // |Y_k| < 2^61, |B| < 2^31
                let t = y - i128::from(b);
                match key_threshold(g, shift, t) {
                    Threshold::Always => {
                        *slot = i32::MIN;
                        *reach = k;
                    }
                    Threshold::From(key) => {
                        *slot = key;
                        *reach = k;
                    }
                    Threshold::Never => break,
                }
            }
        }
        Ok(Some(table))
    }

    /// The codes of one token: `out[c] = fq.code(ln.output(c, xhat[c]))`.
    #[inline]
    pub fn codes(&self, xhat: &[i32; EMBED], out: &mut [u8; EMBED]) {
        for ((o, &x), ((&mask, &reach), t)) in out.iter_mut().zip(xhat).zip(
            self.mask
                .iter()
                .zip(self.reach.iter())
                .zip(self.thresholds.iter()),
        ) {
            *o = count_at_most(t, x ^ mask).min(reach);
        }
    }

    /// Channel `c`'s sorted thresholds (padded with `i32::MAX`), its key mask
    /// and its reach, for tests that probe each step's edges.
    pub fn channel(&self, c: usize) -> Option<(&[i32; SLOTS], i32, u8)> {
        Some((
            self.thresholds.get(c)?,
            *self.mask.get(c)?,
            *self.reach.get(c)?,
        ))
    }
}

/// The number of entries of the sorted `t` that are `≤ key`, capped at 15.
#[inline(always)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)] // n ≤ 14 before each probe
fn count_at_most(t: &[i32; SLOTS], key: i32) -> u8 {
    let mut n = 0usize;
    if key >= t[7] {
        n = 8;
    }
    if key >= t[n + 3] {
        n += 4;
    }
    if key >= t[n + 1] {
        n += 2;
    }
    if key >= t[n] {
        n += 1;
    }
    n as u8
}

/// `Y_k = L + ⌈(k·2^S − 2^(S−1)) / M⌉`: the smallest `Y` with
/// `fq.code(Y) ≥ k` (`1 ≤ k ≤ N`, `fq` validated: `S ∈ 1..=62`, `M ≥ 1`).
#[allow(clippy::arithmetic_side_effects)] // k·2^S < 2^70; the quotient ≤ 2^32; |L| < 2^60
fn output_threshold(fq: &FixedQuant, k: u8) -> i128 {
    let s = fq.shift;
    let num = (i128::from(k) << s) - (1i128 << (s - 1));
    let m = i128::from(fq.mult);
    i128::from(fq.offset) + (num + m - 1) / m
}

/// Where `rshift_round(x̂·g, shift) ≥ t` starts, as a key threshold
/// (module docs; `|t| < 2^62`, `shift ≤ 64`).
#[allow(clippy::arithmetic_side_effects)] // |t·2^shift| < 2^125; |P|, |g·i32| < 2^63 where divided
fn key_threshold(g: i32, shift: u32, t: i128) -> Threshold {
    let constant = |holds: bool| {
        if holds {
            Threshold::Always
        } else {
            Threshold::Never
        }
    };
    if g == 0 || shift >= 64 {
        return constant(t <= 0);
    }
    let p = if shift == 0 {
        t
    } else {
        (t << shift) - (1i128 << (shift - 1))
    };
    let g = i128::from(g);
    let (lo, hi) = (i128::from(i32::MIN), i128::from(i32::MAX));
    if g > 0 {
        // x̂ ≥ ⌈P/g⌉.
        if p > g * hi {
            return Threshold::Never;
        }
        if p <= g * lo {
            return Threshold::Always;
        }
        // g·MIN < P ≤ g·MAX: |P| < 2^62 and the quotient is an i32.
        let (p, g) = (p as i64, g as i64);
        i32::try_from(-((-p).div_euclid(g))).map_or(Threshold::Never, Threshold::From)
    } else {
        // x̂ ≤ ⌊P/g⌋ = ⌊(−P)/(−g)⌋; as a key, !x̂ ≥ !⌊P/g⌋.
        let (q, d) = (-p, -g);
        if q >= d * hi {
            return Threshold::Always;
        }
        if q < d * lo {
            return Threshold::Never;
        }
        // d·MIN ≤ Q < d·MAX: |Q| < 2^62 and the quotient is an i32.
        let (q, d) = (q as i64, d as i64);
        i32::try_from(q.div_euclid(d)).map_or(Threshold::Never, |u| Threshold::From(!u))
    }
}

/// A block LayerNorm's constants and one quantizer on its output: the
/// threshold table where it fits, else the formula.
// One per quantizer lives on the stack for a block; boxing the table would
// need an allocator, which `core` does not have.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum LnQuantizer {
    /// Up to [`MAX_TABLE_LEVELS`] levels.
    Table(LnCodes),
    /// `fq.code(ln.output(c, x̂))` per channel.
    Formula(LnParams<[i32; EMBED]>, FixedQuant),
}

impl LnQuantizer {
    /// `fq` on the outputs of `ln` (errors: either fails its `validate`).
    pub fn new(ln: &LnParams<[i32; EMBED]>, fq: &FixedQuant) -> Result<Self, OpError> {
        Ok(match LnCodes::new(ln, fq)? {
            Some(table) => Self::Table(table),
            None => Self::Formula(*ln, *fq),
        })
    }

    /// The codes of one token (`out[c] = fq.code(ln.output(c, xhat[c]))`).
    #[inline]
    pub fn codes(&self, xhat: &[i32; EMBED], out: &mut [u8; EMBED]) {
        match self {
            Self::Table(table) => table.codes(xhat, out),
            Self::Formula(ln, fq) => {
                for (c, (o, &x)) in out.iter_mut().zip(xhat).enumerate() {
                    *o = fq.code(ln.output(c, x));
                }
            }
        }
    }
}

const _: () = assert!(MAX_TABLE_LEVELS as usize + 1 == SLOTS);
