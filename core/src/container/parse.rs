//! The parser: [`Container::parse`] validates a whole file, after which
//! [`Container`] hands out [`Section`]s without further structural checks.

use core::iter::FusedIterator;

use super::error::{ContainerError, ShapeIssue};
use super::format::{
    Dtype, ALIGN, COUNT_AT, CRC_AT, ENTRY_BITS_AT, ENTRY_DIMS_AT, ENTRY_DTYPE_AT, ENTRY_LEN_AT,
    ENTRY_OFFSET_AT, ENTRY_RANK_AT, ENTRY_RESERVED_AT, ENTRY_TAIL_AT, FILE_LEN_AT, FLAGS_AT,
    FORMAT_VERSION, HEADER_LEN, HEADER_RESERVED_AT, MAGIC, MAX_RANK, MAX_SECTIONS,
    SECTION_ENTRY_LEN, SECTION_NAME_LEN, VERSION_AT,
};
use super::rules::{
    check_bits, check_packed_payload, check_shape, checksum_with_zeroed_field, name_field_len,
    table_end, usize_from,
};
use super::section::Section;
use crate::quant::BitWidth;

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

fn first_nonzero(bytes: &[u8], start: usize) -> Option<usize> {
    bytes
        .iter()
        .position(|&b| b != 0)
        .and_then(|pos| start.checked_add(pos))
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
    /// Validates `bytes` as a whole `.tdq` file (see the [module docs](crate::container)
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
