//! The fixed numbers of format version 1: magic, sizes, field offsets of
//! the header and of a section-table entry, and the dtype codes.

use core::fmt;

use super::error::DtypeError;

/// File magic, bytes 0..8.
pub const MAGIC: [u8; 8] = *b"TDQMODEL";
/// The only format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes in the file header.
pub const HEADER_LEN: usize = 32;
/// Bytes per section-table entry.
pub const SECTION_ENTRY_LEN: usize = 64;
/// Bytes in a section name field.
pub const SECTION_NAME_LEN: usize = 32;
/// Every payload offset is a multiple of this.
pub const ALIGN: usize = 16;
/// Most sections a file may have (bounds the O(n²) duplicate-name check).
pub const MAX_SECTIONS: u32 = 4096;
/// Highest tensor rank.
pub const MAX_RANK: usize = 4;

pub(super) const VERSION_AT: usize = 8;
pub(super) const FLAGS_AT: usize = 10;
pub(super) const COUNT_AT: usize = 12;
pub(super) const FILE_LEN_AT: usize = 16;
pub(super) const CRC_AT: usize = 20;
pub(super) const HEADER_RESERVED_AT: usize = 24;

pub(super) const ENTRY_DTYPE_AT: usize = 32;
pub(super) const ENTRY_BITS_AT: usize = 33;
pub(super) const ENTRY_RANK_AT: usize = 34;
pub(super) const ENTRY_RESERVED_AT: usize = 35;
pub(super) const ENTRY_DIMS_AT: usize = 36;
pub(super) const ENTRY_OFFSET_AT: usize = 52;
pub(super) const ENTRY_LEN_AT: usize = 56;
pub(super) const ENTRY_TAIL_AT: usize = 60;

const _: () = assert!(HEADER_RESERVED_AT + 8 == HEADER_LEN);
const _: () = assert!(ENTRY_TAIL_AT + 4 == SECTION_ENTRY_LEN);
const _: () = assert!(ENTRY_DIMS_AT + 4 * MAX_RANK == ENTRY_OFFSET_AT);
const _: () = assert!(HEADER_LEN.is_multiple_of(ALIGN) && SECTION_ENTRY_LEN.is_multiple_of(ALIGN));

/// Element type of a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dtype {
    /// Unsigned 8-bit integers.
    U8 = 0,
    /// Signed 8-bit integers.
    I8 = 1,
    /// Signed 16-bit integers, little-endian.
    I16 = 2,
    /// Signed 32-bit integers, little-endian.
    I32 = 3,
    /// IEEE-754 binary32, little-endian (metadata and reference data only).
    F32 = 4,
    /// Packed 2/3/4/8-bit unsigned codes; see [`crate::packed`].
    Packed = 5,
}

impl Dtype {
    /// The dtype with this on-disk code.
    pub const fn from_u8(code: u8) -> Option<Self> {
        match code {
            0 => Some(Dtype::U8),
            1 => Some(Dtype::I8),
            2 => Some(Dtype::I16),
            3 => Some(Dtype::I32),
            4 => Some(Dtype::F32),
            5 => Some(Dtype::Packed),
            _ => None,
        }
    }

    /// Bytes per element; `None` for [`Dtype::Packed`], whose size depends
    /// on the bit width and row length.
    pub const fn element_size(self) -> Option<usize> {
        match self {
            Dtype::U8 | Dtype::I8 => Some(1),
            Dtype::I16 => Some(2),
            Dtype::I32 | Dtype::F32 => Some(4),
            Dtype::Packed => None,
        }
    }

    /// Lower-case name (`"u8"`, …, `"packed"`).
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "u8",
            Dtype::I8 => "i8",
            Dtype::I16 => "i16",
            Dtype::I32 => "i32",
            Dtype::F32 => "f32",
            Dtype::Packed => "packed",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for Dtype {
    type Error = DtypeError;

    fn try_from(code: u8) -> Result<Self, DtypeError> {
        Dtype::from_u8(code).ok_or(DtypeError { code })
    }
}
