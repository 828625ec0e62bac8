//! Integer requantization: multiplying an integer accumulator by a real
//! scale using only a 32-bit multiplier and a shift.
//!
//! A [`Requantizer`] represents the scale
//!
//! ```text
//! scale ≈ multiplier · 2^−total_shift,   total_shift = 31 + shift,
//! multiplier ∈ [2^30, 2^31)             (i.e. multiplier/2^31 ∈ [0.5, 1))
//! ```
//!
//! and computes `round(acc · multiplier / 2^total_shift)` exactly in integer
//! arithmetic, with a single rounding whose tie rule is a [`RoundingMode`].
//! There is no intermediate rounding (no "doubling high multiply" as in
//! gemmlowp), so every backend only needs a 64-bit product and one rounding
//! shift. The arithmetic is written once, in [`apply_parts`] and
//! [`apply_parts_i32`]; the GPU and MCU code paths call (or transcribe) those.
//!
//! # Error bound
//!
//! Let `S` be the `f64` scale given to [`Requantizer::from_scale`] and
//! `v = acc·S` the exact real product. `from_scale` rounds `S·2^T` (for the
//! `T` that puts it in `[2^30, 2^31)`) to the nearest integer `M`, so
//!
//! ```text
//! |M·2^−T − S| ≤ 2^−(T+1) ≤ S·2^−31        (relative error ≤ 2^−31)
//! ```
//!
//! and the computed value `v' = acc·M·2^−T` satisfies `|v' − v| ≤ |v|·2^−31`.
//! Let `r* = R(v)` be the correctly rounded result under the same rounding
//! mode `R`, and `r = R(v')` the result returned. Then:
//!
//! * `r == r*` unless a rounding tie (a point `k + 1/2`) lies within
//!   `|v|·2^−31` of `v`;
//! * in every case `|r − r*| ≤ ⌊|v|·2^−31⌋ + 1`, so for `|v| < 2^30` (every
//!   8-bit or 16-bit requantization) the result is either exact or off by
//!   exactly one, and only next to a tie;
//! * if `S` has at most 31 significant bits (in particular, if `S` is a power
//!   of two, or `S = 1`), `M·2^−T == S` exactly and `r == r*` always.
//!
//! Results outside `i64` saturate to `i64::MIN`/`i64::MAX` (only possible
//! for 64-bit accumulators or for hand-built [`Requantizer::from_parts`]
//! with a negative total shift).

/// How the single rounding in a requantization breaks ties (`k + 1/2`).
///
/// Non-tie values always round to the nearest integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RoundingMode {
    /// `floor(x + 1/2)`: ties go towards +∞ (`2.5 → 3`, `−2.5 → −2`).
    ///
    /// The cheapest rule on every backend: add `2^(k−1)`, then arithmetic
    /// shift right by `k`. This is the default.
    HalfUp = 0,
    /// Ties go to the even neighbour (`2.5 → 2`, `3.5 → 4`, `−2.5 → −2`),
    /// like IEEE-754 and `torch.round`. Needs the remainder, so it costs a
    /// few more instructions than [`HalfUp`](Self::HalfUp).
    HalfEven = 1,
}

impl RoundingMode {
    /// The mode with the given `#[repr(u8)]` discriminant, if any.
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(RoundingMode::HalfUp),
            1 => Some(RoundingMode::HalfEven),
            _ => None,
        }
    }
}

/// Smallest scale accepted by [`Requantizer::from_scale`].
pub const MIN_SCALE: f64 = 1e-12;
/// Largest scale accepted by [`Requantizer::from_scale`].
pub const MAX_SCALE: f64 = 1e6;
/// Smallest `shift` accepted by [`Requantizer::from_parts`] (total shift −32:
/// a left shift by up to 32 bits).
pub const MIN_SHIFT: i8 = -63;
/// Largest `shift` accepted by [`Requantizer::from_parts`] (total shift 126).
pub const MAX_SHIFT: i8 = 95;

const MULTIPLIER_MIN: i32 = 1 << 30;

/// Why a requantizer cannot be built.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequantError {
    /// The scale is NaN or infinite.
    NonFiniteScale {
        /// The rejected scale.
        scale: f64,
    },
    /// The scale is zero or negative.
    NonPositiveScale {
        /// The rejected scale.
        scale: f64,
    },
    /// The scale is outside [`MIN_SCALE`]`..=`[`MAX_SCALE`].
    ScaleOutOfRange {
        /// The rejected scale.
        scale: f64,
    },
    /// The multiplier is not normalized into `[2^30, 2^31)`.
    MultiplierNotNormalized {
        /// The rejected multiplier.
        multiplier: i32,
    },
    /// The shift is outside [`MIN_SHIFT`]`..=`[`MAX_SHIFT`].
    ShiftOutOfRange {
        /// The rejected shift.
        shift: i8,
    },
}

display_messages! {
    RequantError {
        Self::NonFiniteScale { scale } => ("requantization scale {scale} is not finite"),
        Self::NonPositiveScale { scale } => ("requantization scale {scale} is not positive"),
        Self::ScaleOutOfRange { scale } => ("requantization scale {scale:e} is outside [{MIN_SCALE:e}, {MAX_SCALE:e}]"),
        Self::MultiplierNotNormalized { multiplier } => ("requantization multiplier {multiplier} is not in [2^30, 2^31)"),
        Self::ShiftOutOfRange { shift } => ("requantization shift {shift} is outside [{MIN_SHIFT}, {MAX_SHIFT}]"),
    }
}

impl core::error::Error for RequantError {}

/// A fixed-point scale: `multiplier · 2^−(31 + shift)`, applied with one
/// rounding.
///
/// Layout (`#[repr(C)]`, 8 bytes, no implicit padding, shared with CUDA):
///
/// ```text
/// byte 0..4  multiplier  i32, in [2^30, 2^31)
/// byte 4     shift       i8,  in [MIN_SHIFT, MAX_SHIFT]; total shift = 31 + shift
/// byte 5     rounding    u8,  RoundingMode discriminant (0 = HalfUp, 1 = HalfEven)
/// byte 6..8  reserved    zero
/// ```
///
/// Fields are private so that every value is normalized; build one with
/// [`from_scale`](Self::from_scale) or [`from_parts`](Self::from_parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Requantizer {
    pub(crate) multiplier: i32,
    pub(crate) shift: i8,
    pub(crate) rounding: RoundingMode,
    reserved: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<Requantizer>() == 8);
const _: () = assert!(core::mem::align_of::<Requantizer>() == 4);

impl Requantizer {
    /// The requantizer closest to `scale`, rounding ties [`HalfUp`](RoundingMode::HalfUp).
    ///
    /// Accepts finite scales in [`MIN_SCALE`]`..=`[`MAX_SCALE`]. The
    /// multiplier carries a relative error of at most `2^−31` (see the
    /// [module docs](self) for what that means for results).
    pub fn from_scale(scale: f64) -> Result<Self, RequantError> {
        Self::from_scale_with_rounding(scale, RoundingMode::HalfUp)
    }

    /// Like [`from_scale`](Self::from_scale) with an explicit tie rule.
    pub fn from_scale_with_rounding(
        scale: f64,
        rounding: RoundingMode,
    ) -> Result<Self, RequantError> {
        if !scale.is_finite() {
            return Err(RequantError::NonFiniteScale { scale });
        }
        if scale <= 0.0 {
            return Err(RequantError::NonPositiveScale { scale });
        }
        if !(MIN_SCALE..=MAX_SCALE).contains(&scale) {
            return Err(RequantError::ScaleOutOfRange { scale });
        }
        // Every accepted scale is a normal f64: scale = m · 2^(e − 1075)
        // with the 53-bit integer significand m ∈ [2^52, 2^53).
        let bits = scale.to_bits();
        let biased_exponent = ((bits >> 52) & 0x7FF) as i32;
        let significand = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        // m / 2^22 ∈ [2^30, 2^31); round it half-up to an integer. The
        // rounding error is ≤ 1/2 ≤ 2^−31 of the value.
        let mut multiplier = significand.saturating_add(1 << 21) >> 22;
        // scale = (m/2^22) · 2^(e − 1053), so the total right shift is
        // 1053 − e; e ∈ [983, 1042] for the accepted range → T ∈ [11, 70].
        let mut total_shift = 1053i32.saturating_sub(biased_exponent);
        if multiplier == 1 << 31 {
            // Rounding carried into bit 31: renormalize. 2^31·2^−T is
            // 2^30·2^−(T−1), so the represented value is unchanged.
            multiplier = 1 << 30;
            total_shift = total_shift.saturating_sub(1);
        }
        let multiplier =
            i32::try_from(multiplier).map_err(|_| RequantError::ScaleOutOfRange { scale })?;
        let shift = i8::try_from(total_shift.saturating_sub(31))
            .map_err(|_| RequantError::ScaleOutOfRange { scale })?;
        Self::from_parts(multiplier, shift, rounding)
    }

    /// A requantizer from stored parts (e.g. read back from a model file),
    /// validating the same invariants `from_scale` establishes.
    pub const fn from_parts(
        multiplier: i32,
        shift: i8,
        rounding: RoundingMode,
    ) -> Result<Self, RequantError> {
        if multiplier < MULTIPLIER_MIN {
            return Err(RequantError::MultiplierNotNormalized { multiplier });
        }
        if shift < MIN_SHIFT || shift > MAX_SHIFT {
            return Err(RequantError::ShiftOutOfRange { shift });
        }
        Ok(Self {
            multiplier,
            shift,
            rounding,
            reserved: [0; 2],
        })
    }

    /// The same scale with another tie rule.
    pub const fn with_rounding(self, rounding: RoundingMode) -> Self {
        Self { rounding, ..self }
    }

    /// The Q0.31 multiplier, in `[2^30, 2^31)`.
    pub const fn multiplier(&self) -> i32 {
        self.multiplier
    }

    /// Extra right shift on top of the multiplier's 31 fractional bits
    /// (negative for scales ≥ 1).
    pub const fn shift(&self) -> i8 {
        self.shift
    }

    /// `31 + shift`: the total right shift applied to `acc · multiplier`
    /// (negative means a left shift).
    pub const fn total_shift(&self) -> i32 {
        // |shift| ≤ 128, so this never actually saturates.
        (self.shift as i32).saturating_add(31)
    }

    /// The tie rule.
    pub const fn rounding(&self) -> RoundingMode {
        self.rounding
    }

    /// The exact scale represented, `multiplier · 2^−total_shift`, as `f64`
    /// (exact: 31 significant bits and a small exponent).
    pub fn scale(&self) -> f64 {
        libm::ldexp(
            f64::from(self.multiplier),
            self.total_shift().saturating_neg(),
        )
    }

    /// `round(acc · scale)` for a 32-bit accumulator.
    ///
    /// Never saturates for requantizers built by [`from_scale`](Self::from_scale)
    /// (`|acc · scale| < 2^31 · 10^6 < 2^51`).
    pub const fn apply_i32(&self, acc: i32) -> i64 {
        apply_parts_i32(acc, self.multiplier, self.total_shift(), self.rounding)
    }

    /// `round(acc · scale)` for a 64-bit accumulator, saturated to `i64`.
    pub const fn apply_i64(&self, acc: i64) -> i64 {
        apply_parts(acc, self.multiplier, self.total_shift(), self.rounding)
    }

    /// `round(acc · scale)` clamped into `[min, max]`: the usual epilogue
    /// that produces an int8/int16 activation. If `min > max`, `min` wins
    /// (no panic).
    pub const fn apply_i32_saturating_to(&self, acc: i32, min: i32, max: i32) -> i32 {
        let value = self.apply_i32(acc);
        // Clamp to max first, then to min, so that min wins when min > max.
        let below_max = if value > max as i64 {
            max as i64
        } else {
            value
        };
        if below_max < min as i64 {
            min
        } else {
            // min ≤ below_max ≤ max (or ≤ value): within i32.
            below_max as i32
        }
    }
}

/// Rounds `acc · multiplier / 2^total_shift` with one rounding and
/// saturates the result to `i64`.
///
/// Total for every input: any `multiplier` (including negative), any
/// `total_shift`. Positive `total_shift` is a rounding right shift;
/// zero or negative is an exact left shift, saturating on overflow.
///
/// This is the reference arithmetic for every backend; see
/// [`apply_parts_i32`] for the 64-bit-only variant used for 32-bit
/// accumulators.
// `|acc · multiplier| ≤ 2^63 · 2^31 = 2^94`, so the i128 product and the
// rounding offset (≤ 2^125 for shifts ≤ 126) cannot overflow.
#[allow(clippy::arithmetic_side_effects)]
pub const fn apply_parts(
    acc: i64,
    multiplier: i32,
    total_shift: i32,
    rounding: RoundingMode,
) -> i64 {
    let product = acc as i128 * multiplier as i128;
    if total_shift <= 0 {
        return shift_left_saturating(product, total_shift.unsigned_abs());
    }
    if total_shift > 126 {
        // |product| / 2^127 < 2^−33: every rounding mode gives 0.
        return 0;
    }
    saturate_to_i64(round_shift_right_i128(
        product,
        total_shift as u32,
        rounding,
    ))
}

/// [`apply_parts`] for 32-bit accumulators, using only 64-bit arithmetic
/// (what a Cortex-M `SMULL` or a CUDA `mul.wide.s32` gives).
///
/// Returns exactly `apply_parts(acc as i64, multiplier, total_shift, rounding)`.
// |acc · multiplier| ≤ 2^31 · 2^31 = 2^62 fits i64; with a right shift of
// k ≤ 62 the rounding offset 2^(k−1) ≤ 2^61 keeps the sum below 2^63.
#[allow(clippy::arithmetic_side_effects)]
pub const fn apply_parts_i32(
    acc: i32,
    multiplier: i32,
    total_shift: i32,
    rounding: RoundingMode,
) -> i64 {
    if total_shift < 1 || total_shift > 62 {
        return apply_parts(acc as i64, multiplier, total_shift, rounding);
    }
    let product = acc as i64 * multiplier as i64;
    round_shift_right_i64(product, total_shift as u32, rounding)
}

/// Defines `$name(value, k, rounding)`: `value / 2^k` rounded by `rounding`,
/// for `k ≥ 1` and a `value` small enough that adding `2^(k−1)` cannot
/// overflow `$t` (each caller states its bound).
macro_rules! round_shift_right_fn {
    ($name:ident, $t:ty) => {
        #[allow(clippy::arithmetic_side_effects)] // the caller's bound: nothing overflows
        #[inline(always)]
        const fn $name(value: $t, k: u32, rounding: RoundingMode) -> $t {
            match rounding {
                RoundingMode::HalfUp => (value + (1 << (k - 1))) >> k,
                RoundingMode::HalfEven => {
                    let floor = value >> k;
                    let remainder = value - (floor << k);
                    let half = 1 << (k - 1);
                    if remainder > half || (remainder == half && floor & 1 == 1) {
                        floor + 1
                    } else {
                        floor
                    }
                }
            }
        }
    };
}

// i64: `apply_parts_i32`, `|value| ≤ 2^62` and `1 ≤ k ≤ 62`.
round_shift_right_fn!(round_shift_right_i64, i64);
// i128: `apply_parts`, `|value| ≤ 2^94` and `1 ≤ k ≤ 126`.
round_shift_right_fn!(round_shift_right_i128, i128);

/// `value · 2^k` saturated to `i64`.
#[allow(clippy::arithmetic_side_effects)] // every shift is range-checked first
const fn shift_left_saturating(value: i128, k: u32) -> i64 {
    if value == 0 {
        return 0;
    }
    if k >= 64 {
        // |value| ≥ 1, so |value · 2^k| ≥ 2^64: out of range either way.
        return if value > 0 { i64::MAX } else { i64::MIN };
    }
    // For k ≤ 63, `i64::MAX >> k` is ⌊MAX / 2^k⌋ and `i64::MIN >> k` is
    // exactly −2^(63−k), so these bounds are tight.
    if value > (i64::MAX as i128) >> k {
        i64::MAX
    } else if value < (i64::MIN as i128) >> k {
        i64::MIN
    } else {
        (value << k) as i64
    }
}

const fn saturate_to_i64(value: i128) -> i64 {
    if value > i64::MAX as i128 {
        i64::MAX
    } else if value < i64::MIN as i128 {
        i64::MIN
    } else {
        value as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_scale_is_identity() {
        let r = Requantizer::from_scale(1.0).unwrap();
        assert_eq!(r.multiplier(), 1 << 30);
        assert_eq!(r.total_shift(), 30);
        assert_eq!(r.scale(), 1.0);
        for acc in [0, 1, -1, 7, -7, i32::MIN, i32::MAX] {
            assert_eq!(r.apply_i32(acc), i64::from(acc));
            assert_eq!(r.apply_i64(i64::from(acc)), i64::from(acc));
        }
        for acc in [i64::MIN, i64::MAX, i64::MIN + 1] {
            assert_eq!(r.apply_i64(acc), acc);
        }
    }

    #[test]
    fn powers_of_two_are_exact() {
        for exponent in -39..=19 {
            let scale = libm::ldexp(1.0, exponent);
            for mode in [RoundingMode::HalfUp, RoundingMode::HalfEven] {
                let r = Requantizer::from_scale_with_rounding(scale, mode).unwrap();
                assert_eq!(r.multiplier(), 1 << 30);
                assert_eq!(r.scale(), scale);
                for acc in [0i32, 1, -1, 3, -3, 12345, -12345, i32::MIN, i32::MAX] {
                    let exact = f64::from(acc) * scale; // exact: power-of-two scaling
                    let expected = match mode {
                        RoundingMode::HalfUp => (exact + 0.5).floor(),
                        RoundingMode::HalfEven => exact.round_ties_even(),
                    };
                    assert_eq!(r.apply_i32(acc) as f64, expected, "2^{exponent} · {acc}");
                }
            }
        }
    }

    #[test]
    fn tie_rules() {
        let half = Requantizer::from_scale(0.5).unwrap();
        let even = half.with_rounding(RoundingMode::HalfEven);
        let cases = [
            (5, 3, 2),
            (-5, -2, -2),
            (3, 2, 2),
            (-3, -1, -2),
            (1, 1, 0),
            (-1, 0, 0),
        ];
        for (acc, up, to_even) in cases {
            assert_eq!(half.apply_i32(acc), up, "half-up {acc}/2");
            assert_eq!(even.apply_i32(acc), to_even, "half-even {acc}/2");
        }
    }

    #[test]
    fn multiplier_renormalizes_on_carry() {
        // The largest f64 below 2: its significand rounds up to 2^31.
        let scale = f64::from_bits(2.0f64.to_bits() - 1);
        let r = Requantizer::from_scale(scale).unwrap();
        assert_eq!(r.multiplier(), 1 << 30);
        assert_eq!(r.scale(), 2.0);
        // Any scale within 2^−32 (relative) below a power of two carries.
        let scale = 1.0 - 1e-12;
        let r = Requantizer::from_scale(scale).unwrap();
        assert_eq!(r.multiplier(), 1 << 30);
        assert_eq!(r.total_shift(), 30);
    }

    #[test]
    fn extreme_scales() {
        let small = Requantizer::from_scale(MIN_SCALE).unwrap();
        let large = Requantizer::from_scale(MAX_SCALE).unwrap();
        assert!(small.total_shift() <= 70);
        assert!(large.total_shift() >= 11);
        assert_eq!(small.apply_i32(i32::MAX), 0);
        assert_eq!(large.apply_i32(i32::MAX), 2_147_483_647_000_000);
        assert_eq!(large.apply_i32(i32::MIN), -2_147_483_648_000_000);
        assert_eq!(large.apply_i64(i64::MAX), i64::MAX);
        assert_eq!(large.apply_i64(i64::MIN), i64::MIN);
    }

    #[test]
    fn scale_errors() {
        assert!(matches!(
            Requantizer::from_scale(f64::NAN),
            Err(RequantError::NonFiniteScale { .. })
        ));
        assert!(matches!(
            Requantizer::from_scale(f64::INFINITY),
            Err(RequantError::NonFiniteScale { .. })
        ));
        assert_eq!(
            Requantizer::from_scale(0.0),
            Err(RequantError::NonPositiveScale { scale: 0.0 })
        );
        assert!(matches!(
            Requantizer::from_scale(-1.0),
            Err(RequantError::NonPositiveScale { .. })
        ));
        for scale in [1e-13, 1.000_001e6, 1e300, f64::MIN_POSITIVE] {
            assert_eq!(
                Requantizer::from_scale(scale),
                Err(RequantError::ScaleOutOfRange { scale })
            );
        }
        assert_eq!(
            Requantizer::from_parts(1 << 29, 0, RoundingMode::HalfUp),
            Err(RequantError::MultiplierNotNormalized {
                multiplier: 1 << 29
            })
        );
        assert_eq!(
            Requantizer::from_parts(1 << 30, 96, RoundingMode::HalfUp),
            Err(RequantError::ShiftOutOfRange { shift: 96 })
        );
        assert_eq!(
            Requantizer::from_parts(1 << 30, -64, RoundingMode::HalfUp),
            Err(RequantError::ShiftOutOfRange { shift: -64 })
        );
        assert_eq!(
            RequantError::ScaleOutOfRange { scale: 2e6 }.to_string(),
            "requantization scale 2e6 is outside [1e-12, 1e6]"
        );
    }

    #[test]
    fn negative_total_shift_saturates() {
        // scale = 2^32 · (2^30/2^31) = 2^31 — only reachable via from_parts.
        let r = Requantizer::from_parts(1 << 30, MIN_SHIFT, RoundingMode::HalfUp).unwrap();
        assert_eq!(r.total_shift(), -32);
        assert_eq!(r.apply_i32(0), 0);
        assert_eq!(r.apply_i32(1), 1 << 62);
        assert_eq!(r.apply_i32(2), i64::MAX);
        assert_eq!(r.apply_i32(-2), i64::MIN);
        assert_eq!(r.apply_i32(-1), -(1 << 62));
        assert_eq!(r.apply_i64(i64::MAX), i64::MAX);
        assert_eq!(r.apply_i64(i64::MIN), i64::MIN);
        // Raw parts beyond the validated range are still total.
        assert_eq!(apply_parts(1, 1, -63, RoundingMode::HalfUp), i64::MAX);
        assert_eq!(apply_parts(-1, 1, -63, RoundingMode::HalfUp), i64::MIN);
        assert_eq!(apply_parts(1, 1, -62, RoundingMode::HalfUp), 1 << 62);
        assert_eq!(apply_parts(1, 1, -1000, RoundingMode::HalfEven), i64::MAX);
        assert_eq!(apply_parts(5, 1, 1000, RoundingMode::HalfEven), 0);
        assert_eq!(
            apply_parts(i64::MIN, i32::MIN, 127, RoundingMode::HalfUp),
            0
        );
        assert_eq!(
            apply_parts(i64::MIN, i32::MIN, 1, RoundingMode::HalfUp),
            i64::MAX
        );
        assert_eq!(
            apply_parts(i64::MIN, i32::MAX, 1, RoundingMode::HalfUp),
            i64::MIN
        );
    }

    #[test]
    fn saturating_epilogue() {
        let r = Requantizer::from_scale(0.01).unwrap();
        assert_eq!(r.apply_i32_saturating_to(12_345, -128, 127), 123);
        assert_eq!(r.apply_i32_saturating_to(1_000_000, -128, 127), 127);
        assert_eq!(r.apply_i32_saturating_to(-1_000_000, -128, 127), -128);
        assert_eq!(r.apply_i32_saturating_to(0, 5, 1), 5);
        let big = Requantizer::from_scale(1e6).unwrap();
        assert_eq!(
            big.apply_i32_saturating_to(i32::MAX, i32::MIN, i32::MAX),
            i32::MAX
        );
        assert_eq!(
            big.apply_i32_saturating_to(i32::MIN, i32::MIN, i32::MAX),
            i32::MIN
        );
    }

    #[test]
    fn i32_path_matches_i128_path() {
        let accs = [
            0,
            1,
            -1,
            2,
            -2,
            3,
            i32::MIN,
            i32::MIN + 1,
            i32::MAX,
            123_456_789,
        ];
        let multipliers = [0, 1, -1, 1 << 30, i32::MAX, i32::MIN, -1_234_567];
        for acc in accs {
            for multiplier in multipliers {
                for shift in -40..=140 {
                    for mode in [RoundingMode::HalfUp, RoundingMode::HalfEven] {
                        assert_eq!(
                            apply_parts_i32(acc, multiplier, shift, mode),
                            apply_parts(i64::from(acc), multiplier, shift, mode),
                            "{acc} · {multiplier} >> {shift} {mode:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rounding_mode_discriminants() {
        assert_eq!(RoundingMode::from_u8(0), Some(RoundingMode::HalfUp));
        assert_eq!(RoundingMode::from_u8(1), Some(RoundingMode::HalfEven));
        assert_eq!(RoundingMode::from_u8(2), None);
    }
}
