//! What a `.tdq` section holds, in a form an error can carry: element type
//! (plain dtype or packed width) and shape, without borrowing the file.

use core::fmt;

use crate::container::{Dtype, Section, MAX_RANK};
use crate::quant::BitWidth;

/// Element type of a section, as the model expects it or as a file holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// Plain elements of one dtype.
    Plain(Dtype),
    /// Packed codes of one width.
    Packed(BitWidth),
    /// Convolution weights, which may be either `i8` or `i16`.
    I8OrI16,
}

/// Element type and shape of a section, so that a mismatch can say what was
/// expected and what was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionLayout {
    /// Element type.
    pub kind: SectionKind,
    /// Number of dimensions (at most [`MAX_RANK`]).
    pub rank: u8,
    /// Dimensions, zero past the rank.
    pub dims: [u32; MAX_RANK],
}

impl SectionLayout {
    /// `kind` with the dimensions `shape` (truncated to [`MAX_RANK`]).
    pub fn new(kind: SectionKind, shape: &[u32]) -> SectionLayout {
        let mut dims = [0u32; MAX_RANK];
        let rank = shape.len().min(MAX_RANK);
        for (d, &s) in dims.iter_mut().zip(shape) {
            *d = s;
        }
        SectionLayout {
            kind,
            rank: u8::try_from(rank).unwrap_or(0),
            dims,
        }
    }

    /// What `section` holds.
    pub fn of(section: &Section<'_>) -> SectionLayout {
        let kind = match section.bit_width() {
            Some(bits) => SectionKind::Packed(bits),
            None => SectionKind::Plain(section.dtype()),
        };
        SectionLayout::new(kind, section.shape())
    }

    /// The used dimensions.
    pub fn shape(&self) -> &[u32] {
        self.dims.get(..usize::from(self.rank)).unwrap_or(&[])
    }
}

impl fmt::Display for SectionLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SectionKind::Plain(dtype) => write!(f, "{dtype} ")?,
            SectionKind::Packed(bits) => write!(f, "{}-bit packed ", bits.bits())?,
            SectionKind::I8OrI16 => f.write_str("i8 or i16 ")?,
        }
        f.write_str("[")?;
        for (i, d) in self.shape().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}
