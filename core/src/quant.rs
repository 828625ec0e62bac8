//! The 2DQuant quantizer, bit-for-bit as PyTorch evaluates it in `f32`.
//!
//! Each quantizer is asymmetric and uniform with two learned scalar bounds
//! `l < u` and a bit width `b`. With `N = 2^b − 1` and `s = (u − l)/N`:
//!
//! ```text
//! c = clamp(x, l, u)
//! r = round_ties_even((c − l) / s)      ∈ [0, N]   (the stored code)
//! y = s·r + l                                    (the fake-quantized value)
//! ```
//!
//! Every operation is a separate IEEE-754 `f32` operation in exactly this
//! order, because that is what `torch` does: `s` is rounded once, `c − l` is
//! rounded, the division is rounded, and the decode is a multiply followed by
//! an add (two roundings, never a fused multiply-add). Reordering any of these
//! (e.g. precomputing `1/s`, or `(x − l)·N/(u − l)`) changes codes on ties and
//! breaks parity with the released checkpoints.
//!
//! The grid is `{l + k·s}`; there is no zero-point, so `0.0` is generally not
//! representable.

use core::fmt;

/// Bit width of a quantized code.
///
/// 2DQuant itself uses 2, 3 and 4 bits (the same width for weights and
/// activations); 8 bits is provided for reference paths and metadata.
///
/// The discriminant is the number of bits, so `BitWidth as u8 == bits()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BitWidth {
    /// 2-bit codes, `0..=3`.
    B2 = 2,
    /// 3-bit codes, `0..=7`.
    B3 = 3,
    /// 4-bit codes, `0..=15`.
    B4 = 4,
    /// 8-bit codes, `0..=255`.
    B8 = 8,
}

impl BitWidth {
    /// Every supported width, narrowest first.
    pub const ALL: [BitWidth; 4] = [BitWidth::B2, BitWidth::B3, BitWidth::B4, BitWidth::B8];

    /// Number of bits per code.
    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// `N = 2^b − 1`: the number of quantization steps, which is also the
    /// largest code.
    pub const fn levels(self) -> u8 {
        match self {
            BitWidth::B2 => 3,
            BitWidth::B3 => 7,
            BitWidth::B4 => 15,
            BitWidth::B8 => 255,
        }
    }

    /// The largest valid code, `2^b − 1` (same value as [`levels`](Self::levels)).
    pub const fn max_code(self) -> u8 {
        self.levels()
    }

    /// Mask selecting one code in the low bits of a word.
    pub const fn code_mask(self) -> u32 {
        self.levels() as u32
    }

    /// How many codes one packed 32-bit word holds: 16, 10, 8 or 4.
    ///
    /// For 3 bits this is 10 (30 bits used, the top 2 bits are padding), so
    /// a code never straddles two words.
    pub const fn codes_per_word(self) -> u32 {
        match self {
            BitWidth::B2 => 16,
            BitWidth::B3 => 10,
            BitWidth::B4 => 8,
            BitWidth::B8 => 4,
        }
    }

    /// Bits of every packed word that never hold a code and must be zero
    /// (`0xC000_0000` for 3-bit, `0` otherwise).
    pub const fn word_padding_mask(self) -> u32 {
        match self {
            BitWidth::B3 => 0xC000_0000,
            BitWidth::B2 | BitWidth::B4 | BitWidth::B8 => 0,
        }
    }

    /// `(word, slot)` of element `index` of a packed row: the element is in
    /// word `index / codes_per_word`, slot `index % codes_per_word` (at bit
    /// `slot · b`). Division by a per-width constant, so it compiles to a
    /// multiply or shift.
    pub const fn locate(self, index: u32) -> (u32, u32) {
        match self {
            BitWidth::B2 => (index / 16, index % 16),
            BitWidth::B3 => (index / 10, index % 10),
            BitWidth::B4 => (index / 8, index % 8),
            BitWidth::B8 => (index / 4, index % 4),
        }
    }

    /// The width with `bits` bits, if supported.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            2 => Some(BitWidth::B2),
            3 => Some(BitWidth::B3),
            4 => Some(BitWidth::B4),
            8 => Some(BitWidth::B8),
            _ => None,
        }
    }
}

// Pin the packing arithmetic the GPU and MCU decoders rely on. Evaluated at
// compile time: a failure here is a build error, not a run-time panic.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const _: () = {
    let mut i = 0;
    while i < BitWidth::ALL.len() {
        let width = BitWidth::ALL[i];
        let used = width.codes_per_word() * width.bits() as u32;
        assert!(used <= 32);
        // No room for one more code: the packing is as dense as it can be
        // without crossing a word boundary.
        assert!(used + width.bits() as u32 > 32);
        assert!(width.code_mask() == (1u32 << width.bits()) - 1);
        let (word, slot) = width.locate(123);
        assert!(word * width.codes_per_word() + slot == 123);
        // The padding mask is exactly the bits above the last code.
        if used == 32 {
            assert!(width.word_padding_mask() == 0);
        } else {
            assert!(width.word_padding_mask() == !0u32 << used);
        }
        i += 1;
    }
};

/// A bit count that is not one of 2, 3, 4 or 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BitWidthError {
    /// The rejected bit count.
    pub bits: u8,
}

impl fmt::Display for BitWidthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported bit width {} (expected 2, 3, 4 or 8)",
            self.bits
        )
    }
}

impl core::error::Error for BitWidthError {}

impl TryFrom<u8> for BitWidth {
    type Error = BitWidthError;

    fn try_from(bits: u8) -> Result<Self, Self::Error> {
        BitWidth::from_bits(bits).ok_or(BitWidthError { bits })
    }
}

impl From<BitWidth> for u8 {
    fn from(width: BitWidth) -> u8 {
        width.bits()
    }
}

/// Why a pair of bounds cannot form a quantizer.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QuantParamsError {
    /// A bound is NaN or infinite.
    NonFiniteBound {
        /// Requested lower bound.
        lower: f32,
        /// Requested upper bound.
        upper: f32,
    },
    /// `lower >= upper`: the range is empty or inverted.
    EmptyRange {
        /// Requested lower bound.
        lower: f32,
        /// Requested upper bound.
        upper: f32,
    },
    /// `(upper − lower)` overflowed `f32`, so the step is infinite.
    NonFiniteStep {
        /// Requested lower bound.
        lower: f32,
        /// Requested upper bound.
        upper: f32,
    },
    /// The step `(upper − lower)/N` underflowed to zero.
    ZeroStep {
        /// Requested lower bound.
        lower: f32,
        /// Requested upper bound.
        upper: f32,
    },
}

display_messages! {
    QuantParamsError {
        Self::NonFiniteBound { lower, upper } => ("quantizer bounds must be finite, got [{lower}, {upper}]"),
        Self::EmptyRange { lower, upper } => ("quantizer lower bound must be below the upper bound, got [{lower}, {upper}]"),
        Self::NonFiniteStep { lower, upper } => ("quantizer range [{lower}, {upper}] is too wide: its step overflows f32"),
        Self::ZeroStep { lower, upper } => ("quantizer range [{lower}, {upper}] is too narrow: its step underflows to zero"),
    }
}

impl core::error::Error for QuantParamsError {}

/// A validated 2DQuant quantizer: bounds `l < u`, width `b`, and the step
/// `s = (u − l)/N` rounded once to `f32` exactly as torch rounds it.
///
/// Fields are private so that every value upholds `l`, `u` finite, `l < u`,
/// and `s` finite and positive; that is what makes [`encode`](Self::encode)
/// total.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuantParams {
    pub(crate) lower: f32,
    pub(crate) upper: f32,
    pub(crate) step: f32,
    pub(crate) bits: BitWidth,
}

impl QuantParams {
    /// Builds a quantizer from learned bounds, rejecting bounds that would
    /// make the arithmetic meaningless (see [`QuantParamsError`]).
    pub fn new(lower: f32, upper: f32, bits: BitWidth) -> Result<Self, QuantParamsError> {
        if !lower.is_finite() || !upper.is_finite() {
            return Err(QuantParamsError::NonFiniteBound { lower, upper });
        }
        if lower >= upper {
            return Err(QuantParamsError::EmptyRange { lower, upper });
        }
        let step = (upper - lower) / f32::from(bits.levels());
        if !step.is_finite() {
            return Err(QuantParamsError::NonFiniteStep { lower, upper });
        }
        if step <= 0.0 {
            return Err(QuantParamsError::ZeroStep { lower, upper });
        }
        Ok(Self {
            lower,
            upper,
            step,
            bits,
        })
    }

    /// Lower bound `l` (the value of code 0).
    pub const fn lower(&self) -> f32 {
        self.lower
    }

    /// Upper bound `u`.
    pub const fn upper(&self) -> f32 {
        self.upper
    }

    /// Bit width `b`.
    pub const fn bits(&self) -> BitWidth {
        self.bits
    }

    /// Step `s = (u − l)/N`, computed in `f32` (one subtraction, one
    /// division, each rounded to nearest-even).
    pub const fn step(&self) -> f32 {
        self.step
    }

    /// The code of `x`: `round_ties_even((clamp(x, l, u) − l) / s)`.
    ///
    /// Always in `0..=N`. NaN has no meaningful code and maps to `0` (torch
    /// would propagate NaN into the fake-quantized value instead); the
    /// result is additionally clamped into `[0, N]` so that rounding noise
    /// in the division can never produce an out-of-range code.
    pub fn encode(&self, x: f32) -> u8 {
        // `min(max(x, l), u)` like torch.clamp; a NaN `x` stays NaN here.
        let clamped = if x < self.lower {
            self.lower
        } else if x > self.upper {
            self.upper
        } else {
            x
        };
        let offset = clamped - self.lower;
        let scaled = offset / self.step;
        // `rintf` rounds to nearest, ties to even, in the default
        // floating-point environment, which is the only one Rust exposes.
        let rounded = libm::rintf(scaled);
        let max = self.bits.levels();
        if rounded.is_nan() || rounded <= 0.0 {
            0
        } else if rounded >= f32::from(max) {
            max
        } else {
            // In (0, N) and integral, so the cast is exact.
            rounded as u8
        }
    }

    /// The value of `code`: `s·code + l`, a multiply then an add, each
    /// rounded (never fused), like torch's `s*r + l`.
    ///
    /// Codes above `N` are not produced by [`encode`](Self::encode); they are
    /// still evaluated by the same formula, i.e. they extrapolate past `u`.
    pub fn decode(&self, code: u8) -> f32 {
        let product = self.step * f32::from(code);
        product + self.lower
    }

    /// `decode(encode(x))`: the value torch's fake quantizer outputs.
    pub fn fake_quant(&self, x: f32) -> f32 {
        self.decode(self.encode(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(lower: f32, upper: f32, bits: BitWidth) -> QuantParams {
        QuantParams::new(lower, upper, bits).expect("valid test bounds")
    }

    #[test]
    fn bit_width_constants() {
        let expect = [(2u8, 3u8, 16u32), (3, 7, 10), (4, 15, 8), (8, 255, 4)];
        for (width, (bits, levels, cpw)) in BitWidth::ALL.into_iter().zip(expect) {
            assert_eq!(width.bits(), bits);
            assert_eq!(width.levels(), levels);
            assert_eq!(width.max_code(), levels);
            assert_eq!(width.codes_per_word(), cpw);
            assert_eq!(BitWidth::try_from(bits), Ok(width));
            assert_eq!(u8::from(width), bits);
        }
        assert_eq!(BitWidth::B3.word_padding_mask(), 0xC000_0000);
        for bits in [0u8, 1, 5, 6, 7, 9, 16, 32, 255] {
            assert_eq!(BitWidth::try_from(bits), Err(BitWidthError { bits }));
        }
        assert_eq!(
            BitWidthError { bits: 5 }.to_string(),
            "unsupported bit width 5 (expected 2, 3, 4 or 8)"
        );
    }

    #[test]
    fn ties_round_to_even() {
        // l = 0, u = 15, b = 4: s = 1 exactly, so (x − l)/s = x exactly.
        let q = params(0.0, 15.0, BitWidth::B4);
        assert_eq!(q.step(), 1.0);
        for k in 0u8..15 {
            let x = f32::from(k) + 0.5;
            let even = if k % 2 == 0 { k } else { k + 1 };
            assert_eq!(q.encode(x), even, "x = {x}");
        }
        // Non-zero lower bound and a step of 0.25: every l + (k + 1/2)·s is
        // exactly representable, as is every intermediate.
        let q = params(1.0, 1.0 + 0.25 * 15.0, BitWidth::B4);
        assert_eq!(q.step(), 0.25);
        for k in 0u8..15 {
            let x = 1.0 + (f32::from(k) + 0.5) * 0.25;
            assert_eq!(((x - 1.0) / 0.25).fract(), 0.5);
            let even = if k % 2 == 0 { k } else { k + 1 };
            assert_eq!(q.encode(x), even, "x = {x}");
        }
        // Negative lower bound, 2 bits: l = −1, u = 2, s = 1.
        let q = params(-1.0, 2.0, BitWidth::B2);
        assert_eq!(q.encode(-0.5), 0); // 0.5 → 0
        assert_eq!(q.encode(0.5), 2); // 1.5 → 2
        assert_eq!(q.encode(1.5), 2); // 2.5 → 2
                                      // One ulp below 0.5 is not a tie, but c − l = 1.5 − 2^−25 rounds to
                                      // exactly 1.5 in f32, which then ties to 2: the f32 operation order
                                      // decides, exactly as it does in torch.
        let below = f32::from_bits(0.5f32.to_bits() - 1);
        assert_eq!(below - (-1.0), 1.5);
        assert_eq!(q.encode(below), 2);
        // Far enough from a tie to survive the subtraction, the nearer code
        // wins.
        assert_eq!(q.encode(0.5 - 1.0 / 1024.0), 1);
        assert_eq!(q.encode(-0.5 + 1.0 / 1024.0), 1);
    }

    #[test]
    fn clamps_to_bounds() {
        for width in BitWidth::ALL {
            let q = params(-0.75, 1.25, width);
            assert_eq!(q.encode(-1e30), 0);
            assert_eq!(q.encode(f32::NEG_INFINITY), 0);
            assert_eq!(q.encode(-0.75), 0);
            assert_eq!(q.encode(1.25), width.levels());
            assert_eq!(q.encode(1e30), width.levels());
            assert_eq!(q.encode(f32::INFINITY), width.levels());
            assert_eq!(q.encode(f32::NAN), 0);
            assert_eq!(q.fake_quant(-5.0), -0.75);
            // s·N + l is not always exactly u, but within an ulp or two.
            assert!((q.fake_quant(5.0) - 1.25).abs() < 1e-6);
        }
    }

    #[test]
    fn each_width_matches_f32_formula() {
        // Compares against std's round_ties_even on a sweep that includes
        // values both inside and outside the range.
        for width in BitWidth::ALL {
            let (lower, upper) = (-0.3137f32, 0.8713f32);
            let q = params(lower, upper, width);
            let step = (upper - lower) / f32::from(width.levels());
            assert_eq!(q.step(), step);
            for i in -2000..=2000 {
                let x = i as f32 * 1.0e-3;
                let c = x.clamp(lower, upper);
                let r = ((c - lower) / step).round_ties_even();
                assert_eq!(f32::from(q.encode(x)), r, "{width:?} x = {x}");
                assert_eq!(q.fake_quant(x), step * r + lower);
            }
        }
    }

    #[test]
    fn decode_is_mul_then_add() {
        // Values where a fused multiply-add would round differently:
        // s·r is inexact, and adding l exposes the lost low bits.
        let q = params(-1.0e-3, 1.0, BitWidth::B3);
        for code in 0..=7u8 {
            let unfused = q.step() * f32::from(code) + q.lower();
            assert_eq!(q.decode(code).to_bits(), unfused.to_bits());
        }
        let q = params(0.1, 0.7, BitWidth::B8);
        let mut differs = 0;
        for code in 0..=255u8 {
            let unfused = q.step() * f32::from(code) + q.lower();
            let fused = q.step().mul_add(f32::from(code), q.lower());
            assert_eq!(q.decode(code).to_bits(), unfused.to_bits());
            differs += usize::from(unfused != fused);
        }
        // Sanity: the sweep actually distinguishes the two.
        assert!(differs > 0);
    }

    #[test]
    fn errors() {
        let nan = QuantParams::new(f32::NAN, 1.0, BitWidth::B4);
        assert!(matches!(nan, Err(QuantParamsError::NonFiniteBound { .. })));
        assert!(matches!(
            QuantParams::new(0.0, f32::INFINITY, BitWidth::B4),
            Err(QuantParamsError::NonFiniteBound { .. })
        ));
        assert_eq!(
            QuantParams::new(1.0, 1.0, BitWidth::B2),
            Err(QuantParamsError::EmptyRange {
                lower: 1.0,
                upper: 1.0
            })
        );
        assert!(matches!(
            QuantParams::new(2.0, 1.0, BitWidth::B2),
            Err(QuantParamsError::EmptyRange { .. })
        ));
        assert!(matches!(
            QuantParams::new(-3.0e38, 3.0e38, BitWidth::B2),
            Err(QuantParamsError::NonFiniteStep { .. })
        ));
        let tiny = f32::from_bits(1); // smallest subnormal: tiny/3 rounds to 0
        assert!(matches!(
            QuantParams::new(0.0, tiny, BitWidth::B2),
            Err(QuantParamsError::ZeroStep { .. })
        ));
        assert_eq!(
            QuantParamsError::EmptyRange {
                lower: 1.0,
                upper: 0.5
            }
            .to_string(),
            "quantizer lower bound must be below the upper bound, got [1, 0.5]"
        );
    }

    #[test]
    fn subnormal_step_stays_in_range() {
        // A subnormal step makes (c − l)/s imprecise; codes must still be
        // in range and monotone.
        let upper = f32::from_bits(1000);
        let q = params(0.0, upper, BitWidth::B8);
        // 1000 ulp / 255 rounds to a 4-ulp step, so the top code reached is
        // 250, not N.
        assert_eq!(q.step(), f32::from_bits(4));
        let mut previous = 0;
        for bits in 0..=1000u32 {
            let code = q.encode(f32::from_bits(bits));
            assert!(code >= previous);
            previous = code;
        }
        assert_eq!(q.encode(upper), 250);
    }
}
