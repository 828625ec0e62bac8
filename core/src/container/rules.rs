//! The rules the parser and the writer both enforce (names, bit widths,
//! shapes, packed padding, alignment, the checksum), written once so that
//! the writer cannot produce a file the parser rejects.

use super::error::{ContainerError, ShapeIssue};
use super::format::{
    Dtype, ALIGN, CRC_AT, HEADER_LEN, MAX_RANK, SECTION_ENTRY_LEN, SECTION_NAME_LEN,
};
use crate::crc32::Crc32;
use crate::packed::{PackedLayout, PackedMatrix};
use crate::quant::BitWidth;

/// `0x21..=0x7E`: printable ASCII without space, so names survive shells,
/// logs and defmt output unambiguously.
const fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_graphic()
}

/// Length of the name in a NUL-padded field, if the field is valid.
pub(super) fn name_field_len(field: &[u8]) -> Option<usize> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (name, padding) = field.split_at_checked(len)?;
    let valid = !name.is_empty()
        && name.iter().all(|&b| is_name_byte(b))
        && padding.iter().all(|&b| b == 0);
    valid.then_some(len)
}

pub(super) fn name_str_is_valid(name: &str) -> bool {
    (1..=SECTION_NAME_LEN).contains(&name.len()) && name.bytes().all(is_name_byte)
}

pub(super) fn check_bits(
    section: u32,
    dtype: Dtype,
    bits: u8,
) -> Result<Option<BitWidth>, ContainerError> {
    match (dtype, BitWidth::from_bits(bits)) {
        (Dtype::Packed, Some(width)) => Ok(Some(width)),
        (Dtype::Packed, None) => Err(ContainerError::UnsupportedBitWidth { section, bits }),
        (_, _) if bits == 0 => Ok(None),
        (_, _) => Err(ContainerError::UnsupportedBitWidth { section, bits }),
    }
}

/// Payload bytes implied by dtype, width and the used dims.
pub(super) fn expected_payload_len(
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

pub(super) fn check_shape(
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

pub(super) fn check_packed_payload(
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
pub(super) fn align_up(value: u64) -> Option<u64> {
    value.checked_next_multiple_of(ALIGN as u64)
}

/// End of the section table for `count` sections (fits easily in u64).
pub(super) fn table_end(count: u32) -> u64 {
    u64::from(count)
        .saturating_mul(SECTION_ENTRY_LEN as u64)
        .saturating_add(HEADER_LEN as u64)
}

/// `value` as `usize`, or `None` where it does not fit (offsets past
/// `usize::MAX` on a 32-bit target).
pub(super) fn usize_from(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

/// The CRC of `bytes` with the CRC field (bytes 20..24) read as zero.
pub(super) fn checksum_with_zeroed_field(bytes: &[u8]) -> u32 {
    let head = bytes.get(..CRC_AT).unwrap_or(bytes);
    let tail = bytes.get(CRC_AT + 4..).unwrap_or(&[]);
    Crc32::new()
        .update(head)
        .update_zeros(4)
        .update(tail)
        .finalize()
}
