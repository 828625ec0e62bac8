//! Read-only views of little-endian integer arrays, so operators run on
//! constants straight out of a `.tdq` file (unaligned, in flash) as well as
//! on ordinary slices.

/// A read-only array of `i32` constants.
///
/// Out-of-range indices read as 0; operators check lengths up front, so that
/// never happens on a validated model.
pub trait I32Src {
    /// Number of elements.
    fn len(&self) -> usize;
    /// Element `i` (0 when out of range).
    fn at(&self, i: usize) -> i32;
    /// `len() == 0`.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `i64` stored as the two words `(lo, hi)` at `i`, `i + 1`
    /// (`lo` as an unsigned 32-bit value), the convention of every 64-bit
    /// constant in a `.tdq` file.
    fn at_i64(&self, i: usize) -> i64 {
        let lo = i64::from(self.at(i) as u32);
        let hi = i64::from(self.at(i.saturating_add(1)));
        // hi·2^32 + lo ∈ [−2^63, 2^63): the i64 these words encode.
        hi.wrapping_shl(32) | lo
    }
}

impl I32Src for [i32] {
    fn len(&self) -> usize {
        <[i32]>::len(self)
    }
    fn at(&self, i: usize) -> i32 {
        self.get(i).copied().unwrap_or(0)
    }
}

impl<const N: usize> I32Src for [i32; N] {
    fn len(&self) -> usize {
        N
    }
    fn at(&self, i: usize) -> i32 {
        self.get(i).copied().unwrap_or(0)
    }
}

impl<T: I32Src + ?Sized> I32Src for &T {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn at(&self, i: usize) -> i32 {
        (**self).at(i)
    }
}

/// Defines `$name`, a view of the little-endian elements (`$size` bytes
/// each) of a byte slice, with its constructor and sub-array; each view
/// reads its elements itself.
macro_rules! le_view {
    ($(#[$doc:meta])* $name:ident, $size:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a> {
            bytes: &'a [u8],
        }

        impl<'a> $name<'a> {
            /// Views `bytes` (its length rounded down to whole elements).
            pub const fn new(bytes: &'a [u8]) -> Self {
                Self { bytes }
            }

            /// The sub-array `[start, start + len)`, clipped to the data.
            pub fn sub(&self, start: usize, len: usize) -> $name<'a> {
                let from = start.saturating_mul($size).min(self.bytes.len());
                let to = start
                    .saturating_add(len)
                    .saturating_mul($size)
                    .min(self.bytes.len());
                $name {
                    bytes: self.bytes.get(from..to).unwrap_or(&[]),
                }
            }
        }
    };
}

le_view!(
    /// Little-endian `i32` elements in a byte slice (a `.tdq` I32 section).
    LeI32,
    4
);

impl I32Src for LeI32<'_> {
    fn len(&self) -> usize {
        self.bytes.len() / 4
    }
    fn at(&self, i: usize) -> i32 {
        let start = i.saturating_mul(4);
        match self.bytes.get(start..start.saturating_add(4)) {
            Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }
}

le_view!(
    /// Little-endian `i16` elements in a byte slice (a `.tdq` I16 section).
    LeI16,
    2
);

impl LeI16<'_> {
    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.bytes.len() / 2
    }

    /// `len() == 0`.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` (0 when out of range).
    pub fn at(&self, i: usize) -> i16 {
        let start = i.saturating_mul(2);
        match self.bytes.get(start..start.saturating_add(2)) {
            Some(&[a, b]) => i16::from_le_bytes([a, b]),
            _ => 0,
        }
    }
}
