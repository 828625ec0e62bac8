//! The `.tdq` model container: a versioned, checksummed, little-endian file
//! of named tensors, parsed zero-copy from `&[u8]` without allocation (the
//! firmware `include_bytes!`s it from flash) and written by
//! [`ContainerWriter`] into a caller-provided buffer.
//!
//! # Byte layout (format version 1)
//!
//! All integers are little-endian. Offsets are from the start of the file.
//!
//! ```text
//! ┌──────────── header, 32 bytes ─────────────────────────────────────────┐
//! │  0..8   magic          b"TDQMODEL"                                    │
//! │  8..10  version        u16 = 1                                        │
//! │ 10..12  flags          u16 = 0 (no flags are defined; non-zero → error)│
//! │ 12..16  section_count  u32 ≤ MAX_SECTIONS (4096)                      │
//! │ 16..20  file_len       u32 = length of the whole file                 │
//! │ 20..24  crc32          u32, see below                                 │
//! │ 24..32  reserved       8 bytes, zero                                  │
//! ├──────────── section table: section_count × 64 bytes ──────────────────┤
//! │ entry i at 32 + 64·i:                                                 │
//! │  0..32  name     [u8; 32] ASCII graphic (0x21..=0x7E), ≥ 1 char,      │
//! │                  NUL-padded, unique within the file                   │
//! │ 32      dtype    u8: U8=0 I8=1 I16=2 I32=3 F32=4 Packed=5             │
//! │ 33      bits     u8: 2, 3, 4 or 8 for Packed, 0 otherwise             │
//! │ 34      rank     u8: 0..=4 (Packed: exactly 2, dims = [rows, cols])   │
//! │ 35      reserved u8 = 0                                               │
//! │ 36..52  dims     [u32; 4]; dims[rank..] = 0                           │
//! │ 52..56  offset   u32: payload start, multiple of ALIGN (16)           │
//! │ 56..60  len      u32: payload bytes                                   │
//! │ 60..64  reserved [u8; 4] = 0                                          │
//! ├──────────── payloads ─────────────────────────────────────────────────┤
//! │ at their offsets, in table order (ascending, non-overlapping), after  │
//! │ the table and within file_len; every byte not covered by the header,  │
//! │ the table or a payload is zero                                        │
//! └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! * Payload length: Packed sections hold a [`PackedLayout`] of
//!   `[dims[0], dims[1]]` (`len == layout.byte_len()`, padding bits zero);
//!   other dtypes hold `product(dims[..rank]) · element_size` bytes of
//!   little-endian elements (rank 0 is a scalar: one element). F32 is for
//!   metadata and reference tensors only; the integer inference path never
//!   reads it.
//! * Checksum: CRC-32/IEEE ([`crc32()`](crate::crc32::crc32)) of the whole file with the
//!   four crc bytes at 20..24 taken as zero, i.e.
//!   `crc32(bytes[0..20] ++ [0; 4] ++ bytes[24..file_len])`.
//! * The writer places the first payload right after the table (already a
//!   multiple of 16), each next payload at the next multiple of 16 after the
//!   previous one, and ends the file at the end of the last payload. Its
//!   output is a deterministic function of the section specs.
//!
//! [`Container::parse`] checks every rule above (in the order of the
//! [`ContainerError`] variants, header first), so the accessors afterwards
//! cannot fail on structure; [`ContainerWriter`] checks the same rules on
//! its input, so it cannot produce a file that `parse` rejects.

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::slice::ChunksExact;

use crate::crc32::Crc32;
use crate::packed::{PackError, PackedLayout, PackedMatrix};
use crate::quant::BitWidth;

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

const VERSION_AT: usize = 8;
const FLAGS_AT: usize = 10;
const COUNT_AT: usize = 12;
const FILE_LEN_AT: usize = 16;
const CRC_AT: usize = 20;
const HEADER_RESERVED_AT: usize = 24;

const ENTRY_DTYPE_AT: usize = 32;
const ENTRY_BITS_AT: usize = 33;
const ENTRY_RANK_AT: usize = 34;
const ENTRY_RESERVED_AT: usize = 35;
const ENTRY_DIMS_AT: usize = 36;
const ENTRY_OFFSET_AT: usize = 52;
const ENTRY_LEN_AT: usize = 56;
const ENTRY_TAIL_AT: usize = 60;

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

/// An on-disk dtype code that is not defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

impl TryFrom<u8> for Dtype {
    type Error = DtypeError;

    fn try_from(code: u8) -> Result<Self, DtypeError> {
        Dtype::from_u8(code).ok_or(DtypeError { code })
    }
}

/// Why a section's shape and payload length disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

impl fmt::Display for ShapeIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ShapeIssue::RankTooLarge { rank } => {
                write!(f, "rank {rank} exceeds the maximum {MAX_RANK}")
            }
            ShapeIssue::UnusedDimNonZero { dim } => {
                write!(f, "dimension {dim} is beyond the rank but non-zero")
            }
            ShapeIssue::PackedRankNotTwo { rank } => {
                write!(f, "packed sections must have rank 2, got {rank}")
            }
            ShapeIssue::TooLarge => f.write_str("the payload size overflows u32"),
            ShapeIssue::LengthMismatch { expected, actual } => write!(
                f,
                "the shape implies {expected} payload bytes but there are {actual}"
            ),
        }
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
    /// The first 8 bytes are not [`MAGIC`].
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
        /// Bytes needed ([`ContainerWriter::required_len`]).
        needed: usize,
        /// Bytes available.
        actual: usize,
    },
    /// The file would be larger than `u32::MAX` bytes.
    FileTooLarge,
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ContainerError::Truncated { needed, actual } => write!(
                f,
                "truncated container: need at least {needed} bytes, got {actual}"
            ),
            ContainerError::BadMagic { found } => {
                write!(f, "not a .tdq container: magic is {found:02x?}")
            }
            ContainerError::UnsupportedVersion { version } => write!(
                f,
                "unsupported container version {version} (this build reads {FORMAT_VERSION})"
            ),
            ContainerError::UnsupportedFlags { flags } => {
                write!(f, "unsupported container flags {flags:#06x}")
            }
            ContainerError::LengthMismatch { header, actual } => write!(
                f,
                "container header says {header} bytes but {actual} bytes were given"
            ),
            ContainerError::ChecksumMismatch { stored, computed } => write!(
                f,
                "container checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            ContainerError::NonZeroReserved { section: None } => {
                f.write_str("reserved bytes in the container header are not zero")
            }
            ContainerError::NonZeroReserved {
                section: Some(section),
            } => write!(f, "reserved bytes of section {section} are not zero"),
            ContainerError::TooManySections { count } => write!(
                f,
                "container has {count} sections, more than the maximum {MAX_SECTIONS}"
            ),
            ContainerError::SectionTableOutOfBounds {
                table_end,
                file_len,
            } => write!(
                f,
                "section table ends at byte {table_end}, past the end of the {file_len}-byte file"
            ),
            ContainerError::BadSectionName { section } => write!(
                f,
                "section {section} has an invalid name (1..=32 ASCII graphic characters, NUL-padded)"
            ),
            ContainerError::DuplicateSectionName { section, first } => write!(
                f,
                "section {section} has the same name as section {first}"
            ),
            ContainerError::UnsupportedDtype { section, dtype } => {
                write!(f, "section {section} has unknown dtype code {dtype}")
            }
            ContainerError::UnsupportedBitWidth { section, bits } => write!(
                f,
                "section {section} has bits = {bits} (packed: 2, 3, 4 or 8; other dtypes: 0)"
            ),
            ContainerError::ShapeMismatch { section, issue } => {
                write!(f, "section {section}: {issue}")
            }
            ContainerError::MisalignedSection { section, offset } => write!(
                f,
                "section {section} starts at offset {offset}, not a multiple of {ALIGN}"
            ),
            ContainerError::SectionOutOfBounds {
                section,
                offset,
                len,
            } => write!(
                f,
                "section {section} ({len} bytes at offset {offset}) is outside the payload area"
            ),
            ContainerError::UnorderedSections {
                section,
                offset,
                previous_offset,
            } => write!(
                f,
                "section {section} at offset {offset} comes before the previous section at {previous_offset}"
            ),
            ContainerError::OverlappingSections {
                section,
                offset,
                previous_end,
            } => write!(
                f,
                "section {section} at offset {offset} overlaps the previous section, which ends at {previous_end}"
            ),
            ContainerError::NonZeroPadding { offset } => {
                write!(f, "padding byte at offset {offset} is not zero")
            }
            ContainerError::InvalidPackedSection { section, error } => {
                write!(f, "section {section}: {error}")
            }
            ContainerError::OutputTooSmall { needed, actual } => write!(
                f,
                "output buffer holds {actual} bytes, the container needs {needed}"
            ),
            ContainerError::FileTooLarge => {
                f.write_str("the container would exceed u32::MAX bytes")
            }
        }
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

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SectionError::DtypeMismatch { expected, actual } => {
                write!(f, "expected a {expected} section, found {actual}")
            }
            SectionError::IndexOutOfBounds { index, len } => write!(
                f,
                "element {index} is out of bounds for a section of {len} elements"
            ),
            SectionError::Packed(error) => fmt::Display::fmt(&error, f),
        }
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

// ---------------------------------------------------------------------------
// Shared validation rules (parser and writer).

/// `0x21..=0x7E`: printable ASCII without space, so names survive shells,
/// logs and defmt output unambiguously.
const fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_graphic()
}

/// Length of the name in a NUL-padded field, if the field is valid.
fn name_field_len(field: &[u8]) -> Option<usize> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (name, padding) = field.split_at_checked(len)?;
    let valid = !name.is_empty()
        && name.iter().all(|&b| is_name_byte(b))
        && padding.iter().all(|&b| b == 0);
    valid.then_some(len)
}

fn name_str_is_valid(name: &str) -> bool {
    (1..=SECTION_NAME_LEN).contains(&name.len()) && name.bytes().all(is_name_byte)
}

fn check_bits(section: u32, dtype: Dtype, bits: u8) -> Result<Option<BitWidth>, ContainerError> {
    match (dtype, BitWidth::from_bits(bits)) {
        (Dtype::Packed, Some(width)) => Ok(Some(width)),
        (Dtype::Packed, None) => Err(ContainerError::UnsupportedBitWidth { section, bits }),
        (_, _) if bits == 0 => Ok(None),
        (_, _) => Err(ContainerError::UnsupportedBitWidth { section, bits }),
    }
}

/// Payload bytes implied by dtype, width and the used dims.
fn expected_payload_len(
    dtype: Dtype,
    width: Option<BitWidth>,
    shape: &[u32],
) -> Result<u32, ShapeIssue> {
    if shape.len() > MAX_RANK {
        return Err(ShapeIssue::RankTooLarge { rank: shape.len() });
    }
    let bytes: u64 = match (dtype.element_size(), width, shape) {
        (None, Some(bits), &[rows, cols]) => {
            let len = PackedLayout::new(bits, rows, cols)
                .byte_len()
                .map_err(|_| ShapeIssue::TooLarge)?;
            u64::try_from(len).map_err(|_| ShapeIssue::TooLarge)?
        }
        (None, _, _) => return Err(ShapeIssue::PackedRankNotTwo { rank: shape.len() }),
        // Any zero dim makes the tensor empty, even if the other dims'
        // product would overflow.
        (Some(_), _, _) if shape.contains(&0) => 0,
        (Some(size), _, _) => shape
            .iter()
            .try_fold(size as u64, |acc, &dim| acc.checked_mul(u64::from(dim)))
            .ok_or(ShapeIssue::TooLarge)?,
    };
    u32::try_from(bytes).map_err(|_| ShapeIssue::TooLarge)
}

fn check_shape(
    section: u32,
    dtype: Dtype,
    width: Option<BitWidth>,
    shape: &[u32],
    len: u64,
) -> Result<(), ContainerError> {
    let expected = expected_payload_len(dtype, width, shape)
        .map_err(|issue| ContainerError::ShapeMismatch { section, issue })?;
    if u64::from(expected) != len {
        return Err(ContainerError::ShapeMismatch {
            section,
            issue: ShapeIssue::LengthMismatch {
                expected: u64::from(expected),
                actual: len,
            },
        });
    }
    Ok(())
}

fn check_packed_payload(
    section: u32,
    width: Option<BitWidth>,
    shape: &[u32],
    data: &[u8],
) -> Result<(), ContainerError> {
    if let (Some(bits), &[rows, cols]) = (width, shape) {
        PackedMatrix::new(PackedLayout::new(bits, rows, cols), data)
            .map_err(|error| ContainerError::InvalidPackedSection { section, error })?;
    }
    Ok(())
}

/// `value` rounded up to a multiple of [`ALIGN`].
fn align_up(value: u64) -> Option<u64> {
    value.checked_next_multiple_of(ALIGN as u64)
}

/// End of the section table for `count` sections (fits easily in u64).
fn table_end(count: u32) -> u64 {
    u64::from(count)
        .saturating_mul(SECTION_ENTRY_LEN as u64)
        .saturating_add(HEADER_LEN as u64)
}

// ---------------------------------------------------------------------------
// Byte access helpers: bounds-checked, never panicking.

fn bytes_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let slice = bytes.get(at..at.checked_add(N)?)?;
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    Some(out)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes_at(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes_at(bytes, at).map(u32::from_le_bytes)
}

fn usize_from(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

fn first_nonzero(bytes: &[u8], start: usize) -> Option<usize> {
    bytes
        .iter()
        .position(|&b| b != 0)
        .and_then(|pos| start.checked_add(pos))
}

/// The CRC of `bytes` with the CRC field (bytes 20..24) read as zero.
fn checksum_with_zeroed_field(bytes: &[u8]) -> u32 {
    let head = bytes.get(..CRC_AT).unwrap_or(bytes);
    let tail = bytes.get(CRC_AT + 4..).unwrap_or(&[]);
    Crc32::new()
        .update(head)
        .update_zeros(4)
        .update(tail)
        .finalize()
}

/// One decoded section-table entry, before validation.
struct RawEntry<'a> {
    name: &'a [u8],
    dtype: u8,
    bits: u8,
    rank: u8,
    reserved: u8,
    dims: [u32; MAX_RANK],
    offset: u32,
    len: u32,
    tail: [u8; 4],
}

impl<'a> RawEntry<'a> {
    fn decode(entry: &'a [u8]) -> Option<Self> {
        let mut dims = [0u32; MAX_RANK];
        for (dim, at) in dims.iter_mut().zip((ENTRY_DIMS_AT..).step_by(4)) {
            *dim = u32_at(entry, at)?;
        }
        Some(Self {
            name: entry.get(..SECTION_NAME_LEN)?,
            dtype: *entry.get(ENTRY_DTYPE_AT)?,
            bits: *entry.get(ENTRY_BITS_AT)?,
            rank: *entry.get(ENTRY_RANK_AT)?,
            reserved: *entry.get(ENTRY_RESERVED_AT)?,
            dims,
            offset: u32_at(entry, ENTRY_OFFSET_AT)?,
            len: u32_at(entry, ENTRY_LEN_AT)?,
            tail: bytes_at(entry, ENTRY_TAIL_AT)?,
        })
    }

    /// Everything about an entry except where its payload is: name,
    /// uniqueness against the entries before it in `table`, dtype, bits,
    /// reserved bytes and shape. Returns the code width of packed entries.
    fn check_metadata(
        &self,
        section: u32,
        table: &[u8],
    ) -> Result<Option<BitWidth>, ContainerError> {
        name_field_len(self.name).ok_or(ContainerError::BadSectionName { section })?;
        let earlier = table.chunks_exact(SECTION_ENTRY_LEN).take(section as usize);
        if let Some(first) = (0..section)
            .zip(earlier)
            .find(|(_, other)| other.get(..SECTION_NAME_LEN) == Some(self.name))
            .map(|(first, _)| first)
        {
            return Err(ContainerError::DuplicateSectionName { section, first });
        }
        let dtype = Dtype::from_u8(self.dtype).ok_or(ContainerError::UnsupportedDtype {
            section,
            dtype: self.dtype,
        })?;
        let width = check_bits(section, dtype, self.bits)?;
        if self.reserved != 0 || self.tail != [0; 4] {
            return Err(ContainerError::NonZeroReserved {
                section: Some(section),
            });
        }
        if usize::from(self.rank) > MAX_RANK {
            return Err(ContainerError::ShapeMismatch {
                section,
                issue: ShapeIssue::RankTooLarge {
                    rank: usize::from(self.rank),
                },
            });
        }
        if let Some(dim) = (self.rank..)
            .zip(self.dims.iter().skip(usize::from(self.rank)))
            .find(|(_, &d)| d != 0)
            .map(|(dim, _)| dim)
        {
            return Err(ContainerError::ShapeMismatch {
                section,
                issue: ShapeIssue::UnusedDimNonZero { dim },
            });
        }
        check_shape(section, dtype, width, self.shape(), u64::from(self.len))?;
        Ok(width)
    }

    /// The used dims, or all four if the rank is out of range (the shape
    /// check reports that).
    fn shape(&self) -> &[u32] {
        let rank = usize::from(self.rank);
        self.dims.get(..rank).unwrap_or(&self.dims)
    }
}

// ---------------------------------------------------------------------------
// Parser.

/// A validated `.tdq` file borrowed from its bytes.
///
/// Obtained from [`Container::parse`], which checks every structural rule,
/// so the accessors never fail on structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Container<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) section_count: u32,
}

impl<'a> Container<'a> {
    /// Validates `bytes` as a whole `.tdq` file (see the [module docs](self)
    /// for the rules) and returns a zero-copy view of it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ContainerError> {
        let file_len = bytes.len();
        let truncated = ContainerError::Truncated {
            needed: HEADER_LEN,
            actual: file_len,
        };
        let found: [u8; 8] = bytes_at(bytes, 0).ok_or(truncated)?;
        // Check the whole header is present before reporting on its
        // contents, so a short file is always "truncated".
        bytes.get(..HEADER_LEN).ok_or(truncated)?;
        if found != MAGIC {
            return Err(ContainerError::BadMagic { found });
        }
        let version = u16_at(bytes, VERSION_AT).ok_or(truncated)?;
        if version != FORMAT_VERSION {
            return Err(ContainerError::UnsupportedVersion { version });
        }
        let flags = u16_at(bytes, FLAGS_AT).ok_or(truncated)?;
        if flags != 0 {
            return Err(ContainerError::UnsupportedFlags { flags });
        }
        let count = u32_at(bytes, COUNT_AT).ok_or(truncated)?;
        let header_len = u32_at(bytes, FILE_LEN_AT).ok_or(truncated)?;
        if usize::try_from(header_len).ok() != Some(file_len) {
            return Err(ContainerError::LengthMismatch {
                header: header_len,
                actual: file_len,
            });
        }
        let stored = u32_at(bytes, CRC_AT).ok_or(truncated)?;
        let computed = checksum_with_zeroed_field(bytes);
        if stored != computed {
            return Err(ContainerError::ChecksumMismatch { stored, computed });
        }
        let reserved: [u8; 8] = bytes_at(bytes, HEADER_RESERVED_AT).ok_or(truncated)?;
        if reserved != [0; 8] {
            return Err(ContainerError::NonZeroReserved { section: None });
        }
        if count > MAX_SECTIONS {
            return Err(ContainerError::TooManySections { count });
        }
        let table_end_u64 = table_end(count);
        let table_end = usize_from(table_end_u64)
            .filter(|&end| end <= file_len)
            .ok_or(ContainerError::SectionTableOutOfBounds {
                table_end: table_end_u64,
                file_len,
            })?;
        let table = bytes.get(HEADER_LEN..table_end).unwrap_or(&[]);

        // End of the last accepted payload (or of the table): payloads must
        // start at or after it, and the bytes in between must be zero.
        let mut cursor = table_end_u64;
        let mut previous_offset: Option<u32> = None;
        for (section, entry) in (0..count).zip(table.chunks_exact(SECTION_ENTRY_LEN)) {
            let raw = RawEntry::decode(entry).ok_or(truncated)?;
            let width = raw.check_metadata(section, table)?;

            let (offset, len) = (raw.offset, raw.len);
            if !offset.is_multiple_of(ALIGN as u32) {
                return Err(ContainerError::MisalignedSection { section, offset });
            }
            let end = u64::from(offset).saturating_add(u64::from(len));
            if u64::from(offset) < table_end_u64 || usize_from(end).is_none_or(|e| e > file_len) {
                return Err(ContainerError::SectionOutOfBounds {
                    section,
                    offset,
                    len,
                });
            }
            if let Some(previous) = previous_offset.filter(|&p| offset < p) {
                return Err(ContainerError::UnorderedSections {
                    section,
                    offset,
                    previous_offset: previous,
                });
            }
            if u64::from(offset) < cursor {
                return Err(ContainerError::OverlappingSections {
                    section,
                    offset,
                    previous_end: cursor,
                });
            }
            // In bounds: checked against file_len just above.
            let (gap_start, start, stop) = (
                usize_from(cursor).ok_or(truncated)?,
                usize_from(u64::from(offset)).ok_or(truncated)?,
                usize_from(end).ok_or(truncated)?,
            );
            let gap = bytes.get(gap_start..start).ok_or(truncated)?;
            if let Some(at) = first_nonzero(gap, gap_start) {
                return Err(ContainerError::NonZeroPadding { offset: at });
            }
            let data = bytes.get(start..stop).ok_or(truncated)?;
            check_packed_payload(section, width, raw.shape(), data)?;
            previous_offset = Some(offset);
            cursor = end;
        }
        let tail_start = usize_from(cursor).ok_or(truncated)?;
        let tail = bytes.get(tail_start..).ok_or(truncated)?;
        if let Some(at) = first_nonzero(tail, tail_start) {
            return Err(ContainerError::NonZeroPadding { offset: at });
        }
        Ok(Self {
            bytes,
            section_count: count,
        })
    }

    /// The whole file.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of sections.
    pub const fn section_count(&self) -> u32 {
        self.section_count
    }

    /// The stored (and verified) CRC-32 of the file.
    pub fn checksum(&self) -> u32 {
        u32_at(self.bytes, CRC_AT).unwrap_or(0)
    }

    /// Section `index` in table order.
    pub fn section(&self, index: u32) -> Option<Section<'a>> {
        if index >= self.section_count {
            return None;
        }
        let start = usize::try_from(index)
            .ok()?
            .checked_mul(SECTION_ENTRY_LEN)?
            .checked_add(HEADER_LEN)?;
        let entry = self
            .bytes
            .get(start..start.checked_add(SECTION_ENTRY_LEN)?)?;
        let raw = RawEntry::decode(entry)?;
        let name_len = name_field_len(raw.name)?;
        let name = core::str::from_utf8(raw.name.get(..name_len)?).ok()?;
        let dtype = Dtype::from_u8(raw.dtype)?;
        let offset = usize::try_from(raw.offset).ok()?;
        let len = usize::try_from(raw.len).ok()?;
        Some(Section {
            name,
            dtype,
            bits: BitWidth::from_bits(raw.bits),
            rank: raw.rank,
            dims: raw.dims,
            data: self.bytes.get(offset..offset.checked_add(len)?)?,
        })
    }

    /// All sections, in table order.
    pub fn sections(&self) -> Sections<'a> {
        Sections {
            container: *self,
            next: 0,
        }
    }

    /// The section called `name`.
    pub fn get(&self, name: &str) -> Option<Section<'a>> {
        self.sections().find(|section| section.name == name)
    }
}

/// Iterator over the sections of a [`Container`].
#[derive(Clone, Debug)]
pub struct Sections<'a> {
    container: Container<'a>,
    next: u32,
}

impl<'a> Iterator for Sections<'a> {
    type Item = Section<'a>;

    fn next(&mut self) -> Option<Section<'a>> {
        let section = self.container.section(self.next)?;
        self.next = self.next.saturating_add(1);
        Some(section)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.container.section_count.saturating_sub(self.next);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Sections<'_> {}
impl FusedIterator for Sections<'_> {}

/// One validated section of a parsed [`Container`].
///
/// Its payload length always matches dtype, bits and shape, so the typed
/// accessors only fail on a dtype mismatch or an out-of-range index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    pub(crate) name: &'a str,
    pub(crate) dtype: Dtype,
    pub(crate) bits: Option<BitWidth>,
    pub(crate) rank: u8,
    pub(crate) dims: [u32; MAX_RANK],
    pub(crate) data: &'a [u8],
}

impl<'a> Section<'a> {
    /// The section name.
    pub const fn name(&self) -> &'a str {
        self.name
    }

    /// Element type.
    pub const fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Code width of a packed section (`None` for other dtypes).
    pub const fn bit_width(&self) -> Option<BitWidth> {
        self.bits
    }

    /// Number of dimensions.
    pub const fn rank(&self) -> u8 {
        self.rank
    }

    /// All four dims field values (zero past the rank).
    pub const fn dims(&self) -> [u32; MAX_RANK] {
        self.dims
    }

    /// The used dimensions, `dims[..rank]`.
    pub fn shape(&self) -> &[u32] {
        self.dims.get(..usize::from(self.rank)).unwrap_or(&[])
    }

    /// The raw payload bytes.
    pub const fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Number of elements (`product(shape)`, 1 for a scalar; rows · cols for
    /// packed sections).
    pub fn element_count(&self) -> usize {
        self.shape().iter().fold(1usize, |acc, &dim| {
            acc.saturating_mul(usize::try_from(dim).unwrap_or(usize::MAX))
        })
    }

    /// A packed section as a [`PackedMatrix`].
    pub fn as_packed(&self) -> Result<PackedMatrix<'a>, SectionError> {
        let (Some(bits), &[rows, cols]) = (self.bits, self.shape()) else {
            return Err(SectionError::DtypeMismatch {
                expected: Dtype::Packed,
                actual: self.dtype,
            });
        };
        // Padding was validated by Container::parse; only the O(1) length
        // check is repeated.
        PackedMatrix::from_len_checked(PackedLayout::new(bits, rows, cols), self.data)
            .map_err(SectionError::Packed)
    }

    /// Iterator over the elements, decoded from little-endian.
    pub fn elements<T: Element>(&self) -> Result<Elements<'a, T>, SectionError> {
        if self.dtype != T::DTYPE {
            return Err(SectionError::DtypeMismatch {
                expected: T::DTYPE,
                actual: self.dtype,
            });
        }
        Ok(Elements {
            chunks: self.data.chunks_exact(T::SIZE),
            element: PhantomData,
        })
    }

    /// Element `index`.
    pub fn read<T: Element>(&self, index: usize) -> Result<T, SectionError> {
        let mut elements = self.elements::<T>()?;
        let len = elements.len();
        elements
            .nth(index)
            .ok_or(SectionError::IndexOutOfBounds { index, len })
    }

    /// Element `index` of an `I32` section.
    pub fn read_i32(&self, index: usize) -> Result<i32, SectionError> {
        self.read(index)
    }

    /// The elements of a `U8` section.
    pub fn u8s(&self) -> Result<Elements<'a, u8>, SectionError> {
        self.elements()
    }

    /// The elements of an `I8` section.
    pub fn i8s(&self) -> Result<Elements<'a, i8>, SectionError> {
        self.elements()
    }

    /// The elements of an `I16` section.
    pub fn i16s(&self) -> Result<Elements<'a, i16>, SectionError> {
        self.elements()
    }

    /// The elements of an `I32` section.
    pub fn i32s(&self) -> Result<Elements<'a, i32>, SectionError> {
        self.elements()
    }

    /// The elements of an `F32` section.
    pub fn f32s(&self) -> Result<Elements<'a, f32>, SectionError> {
        self.elements()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
    impl Sealed for f32 {}
}

/// A scalar type a section can hold (`u8`, `i8`, `i16`, `i32`, `f32`).
pub trait Element: sealed::Sealed + Copy {
    /// The dtype whose payload holds this type.
    const DTYPE: Dtype;
    /// Bytes per element.
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` little-endian bytes (missing
    /// bytes read as zero, extra bytes are ignored).
    fn from_le_slice(bytes: &[u8]) -> Self;
}

fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (dst, src) in out.iter_mut().zip(bytes) {
        *dst = *src;
    }
    out
}

macro_rules! impl_element {
    ($ty:ty, $dtype:expr) => {
        impl Element for $ty {
            const DTYPE: Dtype = $dtype;
            const SIZE: usize = core::mem::size_of::<$ty>();
            fn from_le_slice(bytes: &[u8]) -> Self {
                <$ty>::from_le_bytes(le_array(bytes))
            }
        }
    };
}

impl_element!(u8, Dtype::U8);
impl_element!(i8, Dtype::I8);
impl_element!(i16, Dtype::I16);
impl_element!(i32, Dtype::I32);
impl_element!(f32, Dtype::F32);

/// Iterator over the little-endian elements of a section.
#[derive(Clone, Debug)]
pub struct Elements<'a, T> {
    chunks: ChunksExact<'a, u8>,
    element: PhantomData<T>,
}

impl<T: Element> Iterator for Elements<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.chunks.next().map(T::from_le_slice)
    }

    fn nth(&mut self, n: usize) -> Option<T> {
        self.chunks.nth(n).map(T::from_le_slice)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl<T: Element> DoubleEndedIterator for Elements<'_, T> {
    fn next_back(&mut self) -> Option<T> {
        self.chunks.next_back().map(T::from_le_slice)
    }
}

impl<T: Element> ExactSizeIterator for Elements<'_, T> {}
impl<T: Element> FusedIterator for Elements<'_, T> {}

// ---------------------------------------------------------------------------
// Writer.

/// One section to write: a name, element type, shape and raw payload.
///
/// `data` is the exact payload: little-endian elements for plain dtypes, or
/// the output of [`pack_codes`](crate::packed::pack_codes) for packed ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionSpec<'a> {
    /// Section name (1..=32 ASCII graphic characters, unique).
    pub name: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Code width for [`Dtype::Packed`] (2, 3, 4 or 8); 0 for other dtypes.
    pub bits: u8,
    /// Dimensions (at most 4; `[rows, cols]` for packed).
    pub shape: &'a [u32],
    /// Payload bytes.
    pub data: &'a [u8],
}

impl<'a> SectionSpec<'a> {
    /// A plain (non-packed) section.
    pub const fn new(name: &'a str, dtype: Dtype, shape: &'a [u32], data: &'a [u8]) -> Self {
        Self {
            name,
            dtype,
            bits: 0,
            shape,
            data,
        }
    }

    /// A packed section of shape `[rows, cols]`.
    pub const fn packed(
        name: &'a str,
        bits: BitWidth,
        shape: &'a [u32; 2],
        data: &'a [u8],
    ) -> Self {
        Self {
            name,
            dtype: Dtype::Packed,
            bits: bits.bits(),
            shape,
            data,
        }
    }
}

/// Writes `.tdq` files into caller-provided buffers, without allocating.
///
/// ```
/// use tdquant_core::{Container, ContainerWriter, Dtype, SectionSpec};
///
/// let bias: [u8; 8] = [1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]; // i32 [1, -1]
/// let specs = [SectionSpec::new("fc.bias", Dtype::I32, &[2], &bias)];
/// let mut buffer = [0u8; 128];
/// let len = ContainerWriter::write(&specs, &mut buffer).unwrap();
/// let file = Container::parse(&buffer[..len]).unwrap();
/// assert_eq!(file.get("fc.bias").unwrap().read_i32(1), Ok(-1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerWriter;

impl ContainerWriter {
    /// Validates `specs` and returns the exact file size `write` produces.
    pub fn required_len(specs: &[SectionSpec<'_>]) -> Result<usize, ContainerError> {
        let count = u32::try_from(specs.len())
            .ok()
            .filter(|&count| count <= MAX_SECTIONS)
            .ok_or(ContainerError::TooManySections {
                count: u32::try_from(specs.len()).unwrap_or(u32::MAX),
            })?;
        let mut cursor = table_end(count);
        for (section, spec) in (0..count).zip(specs) {
            Self::validate(section, spec, specs)?;
            let offset = align_up(cursor).ok_or(ContainerError::FileTooLarge)?;
            let len = u64::try_from(spec.data.len()).map_err(|_| ContainerError::FileTooLarge)?;
            cursor = offset
                .checked_add(len)
                .ok_or(ContainerError::FileTooLarge)?;
        }
        u32::try_from(cursor)
            .ok()
            .and_then(|len| usize::try_from(len).ok())
            .ok_or(ContainerError::FileTooLarge)
    }

    fn validate(
        section: u32,
        spec: &SectionSpec<'_>,
        specs: &[SectionSpec<'_>],
    ) -> Result<(), ContainerError> {
        if !name_str_is_valid(spec.name) {
            return Err(ContainerError::BadSectionName { section });
        }
        if let Some(first) = (0..section)
            .zip(specs)
            .find(|(_, other)| other.name == spec.name)
            .map(|(first, _)| first)
        {
            return Err(ContainerError::DuplicateSectionName { section, first });
        }
        let width = check_bits(section, spec.dtype, spec.bits)?;
        let len = u64::try_from(spec.data.len()).unwrap_or(u64::MAX);
        check_shape(section, spec.dtype, width, spec.shape, len)?;
        check_packed_payload(section, width, spec.shape, spec.data)
    }

    /// Writes the file for `specs` into the start of `out` and returns its
    /// length. `out` may be longer than needed; bytes past the returned
    /// length are left untouched. Every padding byte is written as zero, so
    /// the output depends only on `specs`.
    pub fn write(specs: &[SectionSpec<'_>], out: &mut [u8]) -> Result<usize, ContainerError> {
        let file_len = Self::required_len(specs)?;
        let too_small = ContainerError::OutputTooSmall {
            needed: file_len,
            actual: out.len(),
        };
        let file = out.get_mut(..file_len).ok_or(too_small)?;
        file.fill(0);
        // required_len proved the count and length fit u32.
        let count = u32::try_from(specs.len()).map_err(|_| too_small)?;
        let file_len_u32 = u32::try_from(file_len).map_err(|_| too_small)?;

        put(file, 0, &MAGIC, too_small)?;
        put(file, VERSION_AT, &FORMAT_VERSION.to_le_bytes(), too_small)?;
        put(file, COUNT_AT, &count.to_le_bytes(), too_small)?;
        put(file, FILE_LEN_AT, &file_len_u32.to_le_bytes(), too_small)?;

        let mut cursor = table_end(count);
        let entries = (HEADER_LEN..).step_by(SECTION_ENTRY_LEN);
        for (spec, entry_at) in specs.iter().zip(entries) {
            let offset = align_up(cursor).ok_or(too_small)?;
            let offset_u32 = u32::try_from(offset).map_err(|_| too_small)?;
            let len_u32 = u32::try_from(spec.data.len()).map_err(|_| too_small)?;
            cursor = offset.saturating_add(u64::from(len_u32));

            let mut entry = [0u8; SECTION_ENTRY_LEN];
            put(&mut entry, 0, spec.name.as_bytes(), too_small)?;
            put(
                &mut entry,
                ENTRY_DTYPE_AT,
                &[spec.dtype as u8, spec.bits],
                too_small,
            )?;
            let rank = u8::try_from(spec.shape.len()).map_err(|_| too_small)?;
            put(&mut entry, ENTRY_RANK_AT, &[rank], too_small)?;
            for (dim, at) in spec.shape.iter().zip((ENTRY_DIMS_AT..).step_by(4)) {
                put(&mut entry, at, &dim.to_le_bytes(), too_small)?;
            }
            put(
                &mut entry,
                ENTRY_OFFSET_AT,
                &offset_u32.to_le_bytes(),
                too_small,
            )?;
            put(&mut entry, ENTRY_LEN_AT, &len_u32.to_le_bytes(), too_small)?;
            put(file, entry_at, &entry, too_small)?;
            put(
                file,
                usize_from(offset).ok_or(too_small)?,
                spec.data,
                too_small,
            )?;
        }
        let crc = checksum_with_zeroed_field(file);
        put(file, CRC_AT, &crc.to_le_bytes(), too_small)?;
        Ok(file_len)
    }
}

/// Copies `bytes` to `out[at..]`; `error` if it does not fit (which the
/// writer's size computation rules out).
fn put(
    out: &mut [u8],
    at: usize,
    bytes: &[u8],
    error: ContainerError,
) -> Result<(), ContainerError> {
    let end = at.checked_add(bytes.len()).ok_or(error)?;
    out.get_mut(at..end).ok_or(error)?.copy_from_slice(bytes);
    Ok(())
}
