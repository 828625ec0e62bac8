//! The error types of the container: what is wrong with a file or with the
//! specs given to the writer, and why a typed read of a section failed.

use core::fmt;

use super::format::{Dtype, ALIGN, FORMAT_VERSION, MAX_RANK, MAX_SECTIONS};
use crate::packed::PackError;

/// An on-disk dtype code that is not defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DtypeError {
    /// The rejected code.
    pub code: u8,
}

impl fmt::Display for DtypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown dtype code {}", self.code)
    }
}

impl core::error::Error for DtypeError {}

/// Why a section's shape and payload length disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ShapeIssue {
    /// Rank above [`MAX_RANK`].
    RankTooLarge {
        /// The rank given.
        rank: usize,
    },
    /// A dimension past the rank is non-zero.
    UnusedDimNonZero {
        /// Index of the offending dimension.
        dim: u8,
    },
    /// Packed sections must be rank 2 (`[rows, cols]`).
    PackedRankNotTwo {
        /// The rank given.
        rank: usize,
    },
    /// The payload size implied by the shape does not fit in `u32`.
    TooLarge,
    /// The payload length differs from what the shape implies.
    LengthMismatch {
        /// Bytes implied by dtype, bits and shape.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
}

display_messages! {
    ShapeIssue {
        Self::RankTooLarge { rank } => ("rank {rank} exceeds the maximum {MAX_RANK}"),
        Self::UnusedDimNonZero { dim } => ("dimension {dim} is beyond the rank but non-zero"),
        Self::PackedRankNotTwo { rank } => ("packed sections must have rank 2, got {rank}"),
        Self::TooLarge => ("the payload size overflows u32"),
        Self::LengthMismatch { expected, actual } => ("the shape implies {expected} payload bytes but there are {actual}"),
    }
}

/// Everything that can be wrong with a `.tdq` file (when parsing) or with
/// section specs (when writing). Section indices are positions in the
/// section table (or in the spec slice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerError {
    /// The file is shorter than its header.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The first 8 bytes are not [`MAGIC`](super::MAGIC).
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The format version is not [`FORMAT_VERSION`].
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// Header flags are set; none are defined.
    UnsupportedFlags {
        /// The flags found.
        flags: u16,
    },
    /// `file_len` in the header differs from the length of the data.
    LengthMismatch {
        /// `file_len` from the header.
        header: u32,
        /// Length of the data.
        actual: usize,
    },
    /// The stored CRC does not match the data.
    ChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the data.
        computed: u32,
    },
    /// A reserved field is non-zero (`section: None` for the header).
    NonZeroReserved {
        /// Section whose entry has the field, or `None` for the header.
        section: Option<u32>,
    },
    /// More than [`MAX_SECTIONS`] sections.
    TooManySections {
        /// The section count.
        count: u32,
    },
    /// The section table extends past the end of the file.
    SectionTableOutOfBounds {
        /// End of the table implied by the section count.
        table_end: u64,
        /// Length of the file.
        file_len: usize,
    },
    /// A name is empty, too long, not ASCII graphic, or not NUL-padded.
    BadSectionName {
        /// Offending section.
        section: u32,
    },
    /// Two sections share a name.
    DuplicateSectionName {
        /// The later section.
        section: u32,
        /// The earlier section with the same name.
        first: u32,
    },
    /// The dtype code is not defined.
    UnsupportedDtype {
        /// Offending section.
        section: u32,
        /// The dtype code.
        dtype: u8,
    },
    /// `bits` is not 2, 3, 4 or 8 for a packed section, or not 0 otherwise.
    UnsupportedBitWidth {
        /// Offending section.
        section: u32,
        /// The bits field.
        bits: u8,
    },
    /// Rank, dims and payload length are inconsistent.
    ShapeMismatch {
        /// Offending section.
        section: u32,
        /// What exactly disagrees.
        issue: ShapeIssue,
    },
    /// A payload offset is not a multiple of [`ALIGN`].
    MisalignedSection {
        /// Offending section.
        section: u32,
        /// Its offset.
        offset: u32,
    },
    /// A payload starts inside the header/table or ends past the file.
    SectionOutOfBounds {
        /// Offending section.
        section: u32,
        /// Its offset.
        offset: u32,
        /// Its length.
        len: u32,
    },
    /// A payload starts before the previous section's payload.
    UnorderedSections {
        /// Offending section.
        section: u32,
        /// Its offset.
        offset: u32,
        /// Offset of the previous section.
        previous_offset: u32,
    },
    /// A payload starts inside the previous section's payload.
    OverlappingSections {
        /// Offending section.
        section: u32,
        /// Its offset.
        offset: u32,
        /// End of the previous section's payload.
        previous_end: u64,
    },
    /// A byte outside header, table and payloads is non-zero.
    NonZeroPadding {
        /// File offset of the first non-zero padding byte.
        offset: usize,
    },
    /// A packed payload is malformed (non-zero padding bits).
    InvalidPackedSection {
        /// Offending section.
        section: u32,
        /// The packing error.
        error: PackError,
    },
    /// The writer's output buffer is too small.
    OutputTooSmall {
        /// Bytes needed ([`ContainerWriter::required_len`](crate::container::ContainerWriter::required_len)).
        needed: usize,
        /// Bytes available.
        actual: usize,
    },
    /// The file would be larger than `u32::MAX` bytes.
    FileTooLarge,
}

display_messages! {
    ContainerError {
        Self::Truncated { needed, actual } => ("truncated container: need at least {needed} bytes, got {actual}"),
        Self::BadMagic { found } => ("not a .tdq container: magic is {found:02x?}"),
        Self::UnsupportedVersion { version } => ("unsupported container version {version} (this build reads {FORMAT_VERSION})"),
        Self::UnsupportedFlags { flags } => ("unsupported container flags {flags:#06x}"),
        Self::LengthMismatch { header, actual } => ("container header says {header} bytes but {actual} bytes were given"),
        Self::ChecksumMismatch { stored, computed } => ("container checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        Self::NonZeroReserved { section: None } => ("reserved bytes in the container header are not zero"),
        Self::NonZeroReserved { section: Some(section) } => ("reserved bytes of section {section} are not zero"),
        Self::TooManySections { count } => ("container has {count} sections, more than the maximum {MAX_SECTIONS}"),
        Self::SectionTableOutOfBounds { table_end, file_len } => ("section table ends at byte {table_end}, past the end of the {file_len}-byte file"),
        Self::BadSectionName { section } => ("section {section} has an invalid name (1..=32 ASCII graphic characters, NUL-padded)"),
        Self::DuplicateSectionName { section, first } => ("section {section} has the same name as section {first}"),
        Self::UnsupportedDtype { section, dtype } => ("section {section} has unknown dtype code {dtype}"),
        Self::UnsupportedBitWidth { section, bits } => ("section {section} has bits = {bits} (packed: 2, 3, 4 or 8; other dtypes: 0)"),
        Self::ShapeMismatch { section, issue } => ("section {section}: {issue}"),
        Self::MisalignedSection { section, offset } => ("section {section} starts at offset {offset}, not a multiple of {ALIGN}"),
        Self::SectionOutOfBounds { section, offset, len } => ("section {section} ({len} bytes at offset {offset}) is outside the payload area"),
        Self::UnorderedSections { section, offset, previous_offset } => ("section {section} at offset {offset} comes before the previous section at {previous_offset}"),
        Self::OverlappingSections { section, offset, previous_end } => ("section {section} at offset {offset} overlaps the previous section, which ends at {previous_end}"),
        Self::NonZeroPadding { offset } => ("padding byte at offset {offset} is not zero"),
        Self::InvalidPackedSection { section, error } => ("section {section}: {error}"),
        Self::OutputTooSmall { needed, actual } => ("output buffer holds {actual} bytes, the container needs {needed}"),
        Self::FileTooLarge => ("the container would exceed u32::MAX bytes"),
    }
}

impl core::error::Error for ContainerError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ContainerError::InvalidPackedSection { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Why a typed read of a section failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SectionError {
    /// The section holds another element type.
    DtypeMismatch {
        /// Dtype the accessor reads.
        expected: Dtype,
        /// Dtype of the section.
        actual: Dtype,
    },
    /// Element index past the end of the section.
    IndexOutOfBounds {
        /// Requested element.
        index: usize,
        /// Number of elements.
        len: usize,
    },
    /// The packed payload could not be viewed (cannot happen for sections
    /// of a parsed container, which were validated).
    Packed(PackError),
}

display_messages! {
    SectionError {
        Self::DtypeMismatch { expected, actual } => ("expected a {expected} section, found {actual}"),
        Self::IndexOutOfBounds { index, len } => ("element {index} is out of bounds for a section of {len} elements"),
        Self::Packed(error) => ("{error}"),
    }
}

impl core::error::Error for SectionError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SectionError::Packed(error) => Some(error),
            _ => None,
        }
    }
}
