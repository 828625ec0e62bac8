//! Packed storage of unsigned 2-, 3-, 4- and 8-bit codes.
//!
//! A row-major `[rows, cols]` matrix of codes is stored as whole
//! little-endian `u32` words per row. With `b` bits per code a word holds
//! `cpw = ⌊32 / b⌋` codes:
//!
//! | bits | codes per word | used bits | padding bits per word |
//! |------|----------------|-----------|-----------------------|
//! | 2    | 16             | 32        | none                  |
//! | 3    | 10             | 30        | bits 30–31            |
//! | 4    | 8              | 32        | none                  |
//! | 8    | 4              | 32        | none                  |
//!
//! Element `j` of a row lives in word `j / cpw` of that row, at bit offset
//! `(j % cpw) · b` (element 0 in the least significant bits). A 4-bit row
//! `[c0, c1, …, c9]` therefore packs as
//!
//! ```text
//!            word 0 (bytes 0..4, little-endian)          word 1 (bytes 4..8)
//! bit:  31   28 27   24 ...  7    4 3    0      31 ... 8  7    4 3    0
//!      [ c7   ][ c6   ] ... [ c1   ][ c0   ]   [ 0 ... 0 ][ c9   ][ c8   ]
//! byte 0 = c1<<4 | c0, byte 1 = c3<<4 | c2, ...
//! ```
//!
//! and a 3-bit word as `[pad:2][c9:3][c8:3]…[c1:3][c0:3]`: 3-bit codes may
//! cross *byte* boundaries but never *word* boundaries, so every decoder
//! (CUDA, Cortex-M, scalar) extracts a code with one load, one shift and one
//! mask.
//!
//! Each row occupies `words_per_row = ⌈cols / cpw⌉` words, so rows start on
//! word boundaries; unused high slots of a row's last word and the 3-bit
//! padding bits are zero. Readers reject non-zero padding
//! ([`PackError::NonZeroPadding`]), which makes the encoding canonical: one
//! matrix has exactly one byte representation.
//!
//! Storage is `&[u8]`/`&mut [u8]` rather than `&[u32]` so the functions work
//! directly on an unaligned container section (e.g. `include_bytes!` data in
//! flash) without any cast.

use core::iter::FusedIterator;
use core::slice::ChunksExact;

use crate::quant::BitWidth;

/// Bytes per packed word.
pub const WORD_BYTES: usize = 4;

/// Shape and width of a packed code matrix.
///
/// `#[repr(C)]`, 12 bytes: `rows: u32` at 0, `cols: u32` at 4,
/// `bits: u8` ([`BitWidth`] discriminant, i.e. the bit count) at 8, then 3
/// bytes of implicit padding. See the [module docs](self) for the byte
/// layout it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct PackedLayout {
    /// Number of rows.
    pub rows: u32,
    /// Number of codes per row.
    pub cols: u32,
    /// Bits per code.
    pub bits: BitWidth,
}

const _: () = assert!(core::mem::size_of::<PackedLayout>() == 12);

impl PackedLayout {
    /// A layout for a `[rows, cols]` matrix of `bits`-bit codes.
    pub const fn new(bits: BitWidth, rows: u32, cols: u32) -> Self {
        Self { rows, cols, bits }
    }

    /// Codes per 32-bit word (16, 10, 8 or 4).
    pub const fn codes_per_word(&self) -> u32 {
        self.bits.codes_per_word()
    }

    /// `⌈cols / codes_per_word⌉`: whole words per row.
    pub const fn words_per_row(&self) -> u32 {
        self.cols.div_ceil(self.bits.codes_per_word())
    }

    /// `rows · cols`.
    pub fn element_count(&self) -> Result<usize, PackError> {
        self.too_large_if_none(
            usize::try_from(self.rows)
                .ok()
                .zip(usize::try_from(self.cols).ok())
                .and_then(|(rows, cols)| rows.checked_mul(cols)),
        )
    }

    /// Bytes of one packed row (`words_per_row · 4`).
    pub fn row_byte_len(&self) -> Result<usize, PackError> {
        self.too_large_if_none(
            usize::try_from(self.words_per_row())
                .ok()
                .and_then(|words| words.checked_mul(WORD_BYTES)),
        )
    }

    /// `rows · words_per_row`.
    pub fn total_words(&self) -> Result<usize, PackError> {
        self.too_large_if_none(
            usize::try_from(self.rows)
                .ok()
                .zip(usize::try_from(self.words_per_row()).ok())
                .and_then(|(rows, words)| rows.checked_mul(words)),
        )
    }

    /// Bytes of the whole packed matrix (`total_words · 4`).
    pub fn byte_len(&self) -> Result<usize, PackError> {
        let words = self.total_words()?;
        self.too_large_if_none(words.checked_mul(WORD_BYTES))
    }

    fn too_large_if_none(&self, value: Option<usize>) -> Result<usize, PackError> {
        value.ok_or(PackError::LayoutTooLarge {
            rows: self.rows,
            cols: self.cols,
            bits: self.bits,
        })
    }
}

/// One packed little-endian word of codes (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct PackedWord(pub u32);

const _: () = assert!(core::mem::size_of::<PackedWord>() == WORD_BYTES);

impl PackedWord {
    /// The word stored in `bytes` (little-endian).
    pub const fn from_le_bytes(bytes: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(bytes))
    }

    /// The little-endian storage bytes of the word.
    pub const fn to_le_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }

    /// Code in slot `slot` (`0..codes_per_word`), or `None` past the last slot.
    pub const fn code(self, bits: BitWidth, slot: u32) -> Option<u8> {
        if slot >= bits.codes_per_word() {
            return None;
        }
        // slot < cpw ⇒ slot · b ≤ 30 < 32; the mask keeps ≤ 8 bits.
        let shift = slot.saturating_mul(bits.bits() as u32);
        Some(((self.0 >> shift) & bits.code_mask()) as u8)
    }

    /// Mask of the bits that must be zero when only the first `used` slots
    /// (`used ≤ codes_per_word`) hold codes.
    pub const fn padding_mask(bits: BitWidth, used: u32) -> u32 {
        let used_bits = if used >= bits.codes_per_word() {
            bits.codes_per_word().saturating_mul(bits.bits() as u32)
        } else {
            used.saturating_mul(bits.bits() as u32)
        };
        if used_bits >= 32 {
            0
        } else {
            !0u32 << used_bits
        }
    }
}

/// What went wrong packing, unpacking or reading packed codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackError {
    /// `rows · cols` or the byte size of the layout overflows `usize`.
    LayoutTooLarge {
        /// Requested rows.
        rows: u32,
        /// Requested columns.
        cols: u32,
        /// Requested width.
        bits: BitWidth,
    },
    /// The unpacked code slice does not hold `rows · cols` codes.
    CodesLengthMismatch {
        /// `rows · cols`.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The packed byte slice is not `layout.byte_len()` long.
    PackedLengthMismatch {
        /// `layout.byte_len()`.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The output slice has the wrong length.
    OutputLengthMismatch {
        /// Required length.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// A code does not fit in the layout's bit width.
    CodeOutOfRange {
        /// Row of the offending code.
        row: u32,
        /// Column of the offending code.
        col: u32,
        /// The offending code.
        value: u8,
        /// Largest allowed code, `2^b − 1`.
        max: u8,
    },
    /// A padding bit (beyond the last code of a row, or the top two bits
    /// of a 3-bit word) is set.
    NonZeroPadding {
        /// Row of the offending word.
        row: u32,
        /// Index of the offending word within its row.
        word: u32,
        /// The offending word.
        value: u32,
    },
    /// `(row, col)` is outside the matrix.
    IndexOutOfBounds {
        /// Requested row.
        row: u32,
        /// Requested column.
        col: u32,
        /// Rows in the matrix.
        rows: u32,
        /// Columns in the matrix.
        cols: u32,
    },
    /// A typed view was requested with a different width than the data has.
    BitWidthMismatch {
        /// Width of the typed view.
        expected: BitWidth,
        /// Width of the data.
        actual: BitWidth,
    },
}

display_messages! {
    PackError {
        Self::LayoutTooLarge { rows, cols, bits } => ("packed {}-bit layout [{rows}, {cols}] is too large to address", bits.bits()),
        Self::CodesLengthMismatch { expected, actual } => ("expected {expected} codes (rows · cols), got {actual}"),
        Self::PackedLengthMismatch { expected, actual } => ("packed data must be {expected} bytes for this layout, got {actual}"),
        Self::OutputLengthMismatch { expected, actual } => ("output buffer must be {expected} bytes, got {actual}"),
        Self::CodeOutOfRange { row, col, value, max } => ("code {value} at row {row}, column {col} exceeds the maximum {max}"),
        Self::NonZeroPadding { row, word, value } => ("padding bits set in word {word} of row {row} (word = {value:#010x})"),
        Self::IndexOutOfBounds { row, col, rows, cols } => ("index ({row}, {col}) is outside the [{rows}, {cols}] matrix"),
        Self::BitWidthMismatch { expected, actual } => ("expected {}-bit packed data, got {}-bit", expected.bits(), actual.bits()),
    }
}

impl core::error::Error for PackError {}

fn check_len(
    expected: usize,
    actual: usize,
    error: fn(usize, usize) -> PackError,
) -> Result<(), PackError> {
    if expected == actual {
        Ok(())
    } else {
        Err(error(expected, actual))
    }
}

fn word_at(bytes: &[u8]) -> u32 {
    let mut word = [0u8; WORD_BYTES];
    for (dst, src) in word.iter_mut().zip(bytes) {
        *dst = *src;
    }
    u32::from_le_bytes(word)
}

/// Packs `rows · cols` row-major codes into `out` (`layout.byte_len()`
/// bytes, little-endian words; see the [module docs](self)).
///
/// All codes are checked before anything is written, so on error `out` is
/// untouched. Padding bits are written as zero.
pub fn pack_codes(layout: PackedLayout, codes: &[u8], out: &mut [u8]) -> Result<(), PackError> {
    check_len(layout.element_count()?, codes.len(), |expected, actual| {
        PackError::CodesLengthMismatch { expected, actual }
    })?;
    check_len(layout.byte_len()?, out.len(), |expected, actual| {
        PackError::OutputLengthMismatch { expected, actual }
    })?;
    let (Ok(cols), Ok(row_bytes)) = (usize::try_from(layout.cols), layout.row_byte_len()) else {
        // Unreachable after element_count/byte_len succeeded; report the
        // layout rather than panic.
        return Err(PackError::LayoutTooLarge {
            rows: layout.rows,
            cols: layout.cols,
            bits: layout.bits,
        });
    };
    if cols == 0 || codes.is_empty() {
        // Nothing to pack, and `out` is empty (its length was checked).
        return Ok(());
    }
    let max = layout.bits.max_code();
    for (row, row_codes) in (0..layout.rows).zip(codes.chunks_exact(cols)) {
        for (col, &value) in (0..layout.cols).zip(row_codes) {
            if value > max {
                return Err(PackError::CodeOutOfRange {
                    row,
                    col,
                    value,
                    max,
                });
            }
        }
    }
    let per_word = layout.bits.codes_per_word() as usize;
    let bits = u32::from(layout.bits.bits());
    for (row_codes, row_out) in codes
        .chunks_exact(cols)
        .zip(out.chunks_exact_mut(row_bytes))
    {
        for (word_codes, word_out) in row_codes
            .chunks(per_word)
            .zip(row_out.chunks_exact_mut(WORD_BYTES))
        {
            // Highest slot first, so element 0 ends in the low bits.
            let word = word_codes
                .iter()
                .rev()
                .fold(0u32, |word, &code| (word << bits) | u32::from(code));
            word_out.copy_from_slice(&word.to_le_bytes());
        }
    }
    Ok(())
}

/// Unpacks a packed matrix into one code per byte (`rows · cols` bytes,
/// row-major). Validates the packed length and padding like
/// [`PackedMatrix::new`].
pub fn unpack_codes(layout: PackedLayout, packed: &[u8], out: &mut [u8]) -> Result<(), PackError> {
    PackedMatrix::new(layout, packed)?.unpack_into(out)
}

/// Reads the code at `(row, col)` directly from packed bytes.
///
/// Checks the packed length and the index (O(1)), but not the padding of
/// other words; use [`PackedMatrix::new`] for full validation.
pub fn get_code(layout: PackedLayout, packed: &[u8], row: u32, col: u32) -> Result<u8, PackError> {
    PackedMatrix::from_len_checked(layout, packed)?
        .code(row, col)
        .ok_or(PackError::IndexOutOfBounds {
            row,
            col,
            rows: layout.rows,
            cols: layout.cols,
        })
}

/// A validated, zero-copy view of a packed code matrix.
///
/// Construction checks the length and that every padding bit is zero, so
/// every accessor afterwards is infallible on structure and only fails on
/// out-of-range indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedMatrix<'a> {
    pub(crate) layout: PackedLayout,
    pub(crate) data: &'a [u8],
    row_bytes: usize,
}

impl<'a> PackedMatrix<'a> {
    /// Validates `data` as the packed form of `layout` (exact length, zero
    /// padding bits) and wraps it.
    pub fn new(layout: PackedLayout, data: &'a [u8]) -> Result<Self, PackError> {
        let matrix = Self::from_len_checked(layout, data)?;
        matrix.check_padding()?;
        Ok(matrix)
    }

    /// Length check only; padding is validated by the caller (or, for
    /// [`get_code`], deliberately not).
    pub(crate) fn from_len_checked(
        layout: PackedLayout,
        data: &'a [u8],
    ) -> Result<Self, PackError> {
        check_len(layout.byte_len()?, data.len(), |expected, actual| {
            PackError::PackedLengthMismatch { expected, actual }
        })?;
        Ok(Self {
            layout,
            data,
            row_bytes: layout.row_byte_len()?,
        })
    }

    fn check_padding(&self) -> Result<(), PackError> {
        let words_per_row = self.layout.words_per_row();
        let cpw = self.layout.codes_per_word();
        // Slots used in the last word of every row: 1..=cpw (or none if
        // the row is empty, in which case there are no words at all).
        let last_used = match self.layout.bits.locate(self.layout.cols).1 {
            0 => cpw,
            partial => partial,
        };
        let full_mask = PackedWord::padding_mask(self.layout.bits, cpw);
        let last_mask = PackedWord::padding_mask(self.layout.bits, last_used);
        for (row, row_bytes) in (0..self.layout.rows).zip(self.rows_bytes()) {
            for (word, bytes) in (0..words_per_row).zip(row_bytes.chunks_exact(WORD_BYTES)) {
                let value = word_at(bytes);
                let mask = if word.checked_add(1) == Some(words_per_row) {
                    last_mask
                } else {
                    full_mask
                };
                if value & mask != 0 {
                    return Err(PackError::NonZeroPadding { row, word, value });
                }
            }
        }
        Ok(())
    }

    /// Chunks of whole rows (empty iterator for empty matrices).
    fn rows_bytes(&self) -> ChunksExact<'a, u8> {
        // chunks_exact(0) would panic; an empty row means no data anyway.
        self.data.chunks_exact(self.row_bytes.max(1))
    }

    /// Shape and width.
    pub const fn layout(&self) -> PackedLayout {
        self.layout
    }

    /// Number of rows.
    pub const fn rows(&self) -> u32 {
        self.layout.rows
    }

    /// Number of codes per row.
    pub const fn cols(&self) -> u32 {
        self.layout.cols
    }

    /// Bits per code.
    pub const fn bits(&self) -> BitWidth {
        self.layout.bits
    }

    /// The packed bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// The packed bytes of row `row`.
    pub fn row_bytes(&self, row: u32) -> Option<&'a [u8]> {
        if row >= self.layout.rows {
            return None;
        }
        let start = usize::try_from(row).ok()?.checked_mul(self.row_bytes)?;
        self.data.get(start..start.checked_add(self.row_bytes)?)
    }

    /// The packed words of row `row`, for kernels that decode a word at a
    /// time.
    pub fn row_words(&self, row: u32) -> Option<RowWords<'a>> {
        Some(RowWords {
            chunks: self.row_bytes(row)?.chunks_exact(WORD_BYTES),
        })
    }

    /// The codes of row `row`, in column order.
    pub fn row_codes(&self, row: u32) -> Option<RowCodes<'a>> {
        Some(RowCodes {
            chunks: self.row_bytes(row)?.chunks_exact(WORD_BYTES),
            bits: self.layout.bits,
            current: 0,
            left_in_word: 0,
            remaining: self.layout.cols,
        })
    }

    /// The code at `(row, col)`.
    pub fn code(&self, row: u32, col: u32) -> Option<u8> {
        if col >= self.layout.cols {
            return None;
        }
        let (word, slot) = self.layout.bits.locate(col);
        let start = usize::try_from(word).ok()?.checked_mul(WORD_BYTES)?;
        let bytes = self
            .row_bytes(row)?
            .get(start..start.checked_add(WORD_BYTES)?)?;
        PackedWord(word_at(bytes)).code(self.layout.bits, slot)
    }

    /// Unpacks row `row` into `out` (exactly `cols` bytes).
    pub fn unpack_row(&self, row: u32, out: &mut [u8]) -> Result<(), PackError> {
        let codes = self.row_codes(row).ok_or(PackError::IndexOutOfBounds {
            row,
            col: 0,
            rows: self.layout.rows,
            cols: self.layout.cols,
        })?;
        check_len(codes.len(), out.len(), |expected, actual| {
            PackError::OutputLengthMismatch { expected, actual }
        })?;
        for (dst, code) in out.iter_mut().zip(codes) {
            *dst = code;
        }
        Ok(())
    }

    /// Unpacks the whole matrix into `out` (exactly `rows · cols` bytes,
    /// row-major).
    pub fn unpack_into(&self, out: &mut [u8]) -> Result<(), PackError> {
        check_len(
            self.layout.element_count()?,
            out.len(),
            |expected, actual| PackError::OutputLengthMismatch { expected, actual },
        )?;
        let cols = usize::try_from(self.layout.cols).unwrap_or(0);
        if cols == 0 {
            return Ok(());
        }
        for (row, row_out) in (0..self.layout.rows).zip(out.chunks_exact_mut(cols)) {
            self.unpack_row(row, row_out)?;
        }
        Ok(())
    }

    /// A view with the width fixed at compile time, for decoders that want
    /// constant shifts and masks.
    pub fn typed<const BITS: u8>(&self) -> Result<TypedPackedMatrix<'a, BITS>, PackError> {
        let expected = TypedPackedMatrix::<'a, BITS>::BIT_WIDTH;
        if self.layout.bits != expected {
            return Err(PackError::BitWidthMismatch {
                expected,
                actual: self.layout.bits,
            });
        }
        Ok(TypedPackedMatrix { inner: *self })
    }
}

/// The packed words of one row, as `u32` values.
#[derive(Clone, Debug)]
pub struct RowWords<'a> {
    chunks: ChunksExact<'a, u8>,
}

impl Iterator for RowWords<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        self.chunks.next().map(word_at)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for RowWords<'_> {}
impl FusedIterator for RowWords<'_> {}

/// The codes of one row, decoded a word at a time.
#[derive(Clone, Debug)]
pub struct RowCodes<'a> {
    chunks: ChunksExact<'a, u8>,
    bits: BitWidth,
    /// The current word, already shifted so the next code is in the low bits.
    current: u32,
    left_in_word: u32,
    remaining: u32,
}

impl Iterator for RowCodes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        self.remaining = self.remaining.checked_sub(1)?;
        self.left_in_word = match self.left_in_word.checked_sub(1) {
            Some(left) => left,
            None => {
                self.current = word_at(self.chunks.next()?);
                self.bits.codes_per_word().saturating_sub(1)
            }
        };
        let code = (self.current & self.bits.code_mask()) as u8;
        self.current = self
            .current
            .checked_shr(u32::from(self.bits.bits()))
            .unwrap_or(0);
        Some(code)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for RowCodes<'_> {}
impl FusedIterator for RowCodes<'_> {}

/// A [`PackedMatrix`] whose width is a compile-time constant `BITS`
/// (2, 3, 4 or 8; any other value fails to compile when the view is used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypedPackedMatrix<'a, const BITS: u8> {
    inner: PackedMatrix<'a>,
}

/// A packed matrix of 2-bit codes.
pub type PackedWeights2<'a> = TypedPackedMatrix<'a, 2>;
/// A packed matrix of 3-bit codes (10 per word, top 2 bits zero).
pub type PackedWeights3<'a> = TypedPackedMatrix<'a, 3>;
/// A packed matrix of 4-bit codes.
pub type PackedWeights4<'a> = TypedPackedMatrix<'a, 4>;
/// A packed matrix of 8-bit codes.
pub type PackedWeights8<'a> = TypedPackedMatrix<'a, 8>;

impl<'a, const BITS: u8> TypedPackedMatrix<'a, BITS> {
    /// The width as a [`BitWidth`]; a compile error for unsupported `BITS`.
    // Evaluated at compile time only: the panic is a build error, never a
    // run-time failure.
    #[allow(clippy::panic)]
    pub const BIT_WIDTH: BitWidth = match BitWidth::from_bits(BITS) {
        Some(width) => width,
        None => panic!("TypedPackedMatrix supports BITS = 2, 3, 4 or 8 only"),
    };
    /// Codes per word for this width.
    pub const CODES_PER_WORD: u32 = Self::BIT_WIDTH.codes_per_word();
    const MASK: u32 = Self::BIT_WIDTH.code_mask();

    /// The untyped view.
    pub const fn as_untyped(&self) -> PackedMatrix<'a> {
        self.inner
    }

    /// Shape and width.
    pub const fn layout(&self) -> PackedLayout {
        self.inner.layout
    }

    /// The code at `(row, col)`, decoded with constant shifts and masks.
    pub fn code(&self, row: u32, col: u32) -> Option<u8> {
        if col >= self.inner.layout.cols {
            return None;
        }
        let (word, slot) = Self::BIT_WIDTH.locate(col);
        let start = usize::try_from(word).ok()?.checked_mul(WORD_BYTES)?;
        let bytes = self
            .inner
            .row_bytes(row)?
            .get(start..start.checked_add(WORD_BYTES)?)?;
        let shift = slot.checked_mul(u32::from(BITS))?;
        Some((word_at(bytes).checked_shr(shift)? & Self::MASK) as u8)
    }

    /// The codes of row `row`.
    pub fn row_codes(&self, row: u32) -> Option<RowCodes<'a>> {
        self.inner.row_codes(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_4bit_example() {
        let layout = PackedLayout::new(BitWidth::B4, 1, 10);
        let codes: [u8; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let mut out = [0u8; 8];
        pack_codes(layout, &codes, &mut out).unwrap();
        assert_eq!(out, [0x21, 0x43, 0x65, 0x87, 0xA9, 0, 0, 0]);
    }

    #[test]
    fn documented_3bit_example() {
        let layout = PackedLayout::new(BitWidth::B3, 1, 11);
        let codes = [7u8; 11];
        let mut out = [0u8; 8];
        pack_codes(layout, &codes, &mut out).unwrap();
        assert_eq!(
            u32::from_le_bytes(out[0..4].try_into().unwrap()),
            0x3FFF_FFFF
        );
        assert_eq!(u32::from_le_bytes(out[4..8].try_into().unwrap()), 0x7);
    }

    #[test]
    fn layout_sizes() {
        let layout = PackedLayout::new(BitWidth::B3, 3, 21);
        assert_eq!(layout.words_per_row(), 3);
        assert_eq!(layout.total_words(), Ok(9));
        assert_eq!(layout.byte_len(), Ok(36));
        let empty = PackedLayout::new(BitWidth::B2, 0, 100);
        assert_eq!(empty.byte_len(), Ok(0));
        let huge = PackedLayout::new(BitWidth::B8, u32::MAX, u32::MAX);
        if cfg!(target_pointer_width = "64") {
            // (2^32 − 1) rows · 2^30 words · 4 bytes still fits a 64-bit usize.
            assert_eq!(huge.byte_len(), Ok((u32::MAX as usize) << 32));
        } else {
            assert!(matches!(
                huge.byte_len(),
                Err(PackError::LayoutTooLarge { .. })
            ));
            assert!(matches!(
                huge.element_count(),
                Err(PackError::LayoutTooLarge { .. })
            ));
        }
    }

    #[test]
    fn padding_masks() {
        assert_eq!(PackedWord::padding_mask(BitWidth::B3, 10), 0xC000_0000);
        assert_eq!(PackedWord::padding_mask(BitWidth::B3, 1), !0b111);
        assert_eq!(PackedWord::padding_mask(BitWidth::B4, 8), 0);
        assert_eq!(PackedWord::padding_mask(BitWidth::B8, 3), 0xFF00_0000);
        assert_eq!(PackedWord::padding_mask(BitWidth::B2, 16), 0);
        assert_eq!(PackedWord(0xFFFF_FFFF).code(BitWidth::B3, 10), None);
        assert_eq!(PackedWord(0x8000_0000).code(BitWidth::B2, 15), Some(2));
    }

    #[test]
    fn typed_view() {
        let layout = PackedLayout::new(BitWidth::B4, 2, 3);
        let mut out = [0u8; 8];
        pack_codes(layout, &[1, 2, 3, 4, 5, 15], &mut out).unwrap();
        let matrix = PackedMatrix::new(layout, &out).unwrap();
        let typed: PackedWeights4<'_> = matrix.typed::<4>().unwrap();
        assert_eq!(typed.code(1, 2), Some(15));
        assert_eq!(typed.code(1, 3), None);
        assert_eq!(typed.code(2, 0), None);
        assert_eq!(
            matrix.typed::<3>(),
            Err(PackError::BitWidthMismatch {
                expected: BitWidth::B3,
                actual: BitWidth::B4
            })
        );
    }
}
