//! The writer: [`ContainerWriter`] lays sections out deterministically
//! into a caller-provided buffer, without allocating.

use super::error::ContainerError;
use super::format::{
    Dtype, COUNT_AT, CRC_AT, ENTRY_DIMS_AT, ENTRY_DTYPE_AT, ENTRY_LEN_AT, ENTRY_OFFSET_AT,
    ENTRY_RANK_AT, FILE_LEN_AT, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_SECTIONS, SECTION_ENTRY_LEN,
    VERSION_AT,
};
use super::rules::{
    align_up, check_bits, check_packed_payload, check_shape, checksum_with_zeroed_field,
    name_str_is_valid, table_end, usize_from,
};
use crate::quant::BitWidth;

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
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
