//! `defmt::Format` for the public types whose log text is not what
//! `#[derive(defmt::Format)]` would print: hex words and checksums, sizes
//! instead of payload bytes, computed fields, hidden reserved bytes, field
//! orders and unquoted names. Every other public type derives it beside its
//! definition.
//!
//! The output mirrors `Debug`/`Display` closely enough to grep logs with the
//! same patterns.

use defmt::{write, Format, Formatter};

use crate::container::{Container, ContainerError, Dtype, Section, SectionError, SectionSpec};
use crate::crc32::Crc32;
use crate::packed::{PackError, PackedLayout, PackedMatrix, PackedWord, TypedPackedMatrix};
use crate::requant::Requantizer;

impl Format for Requantizer {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "Requantizer {{ multiplier: {=i32}, shift: {=i8}, rounding: {} }}",
            self.multiplier, self.shift, self.rounding
        );
    }
}

impl Format for PackedLayout {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "PackedLayout {{ bits: {}, rows: {=u32}, cols: {=u32} }}",
            self.bits, self.rows, self.cols
        );
    }
}

impl Format for PackedWord {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "PackedWord({=u32:#010x})", self.0);
    }
}

impl Format for PackedMatrix<'_> {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "PackedMatrix {{ layout: {}, bytes: {=usize} }}",
            self.layout,
            self.data.len()
        );
    }
}

impl<const BITS: u8> Format for TypedPackedMatrix<'_, BITS> {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "TypedPackedMatrix<{=u8}>({})", BITS, self.as_untyped());
    }
}

impl Format for PackError {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            PackError::LayoutTooLarge { rows, cols, bits } => write!(
                f,
                "LayoutTooLarge {{ rows: {=u32}, cols: {=u32}, bits: {} }}",
                rows, cols, bits
            ),
            PackError::CodesLengthMismatch { expected, actual } => write!(
                f,
                "CodesLengthMismatch {{ expected: {=usize}, actual: {=usize} }}",
                expected, actual
            ),
            PackError::PackedLengthMismatch { expected, actual } => write!(
                f,
                "PackedLengthMismatch {{ expected: {=usize}, actual: {=usize} }}",
                expected, actual
            ),
            PackError::OutputLengthMismatch { expected, actual } => write!(
                f,
                "OutputLengthMismatch {{ expected: {=usize}, actual: {=usize} }}",
                expected, actual
            ),
            PackError::CodeOutOfRange {
                row,
                col,
                value,
                max,
            } => write!(
                f,
                "CodeOutOfRange {{ row: {=u32}, col: {=u32}, value: {=u8}, max: {=u8} }}",
                row, col, value, max
            ),
            PackError::NonZeroPadding { row, word, value } => write!(
                f,
                "NonZeroPadding {{ row: {=u32}, word: {=u32}, value: {=u32:#010x} }}",
                row, word, value
            ),
            PackError::IndexOutOfBounds {
                row,
                col,
                rows,
                cols,
            } => write!(
                f,
                "IndexOutOfBounds {{ row: {=u32}, col: {=u32}, rows: {=u32}, cols: {=u32} }}",
                row, col, rows, cols
            ),
            PackError::BitWidthMismatch { expected, actual } => write!(
                f,
                "BitWidthMismatch {{ expected: {}, actual: {} }}",
                expected, actual
            ),
        }
    }
}

impl Format for Dtype {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "{=str}", self.name());
    }
}

impl Format for ContainerError {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            ContainerError::Truncated { needed, actual } => write!(
                f,
                "Truncated {{ needed: {=usize}, actual: {=usize} }}",
                needed, actual
            ),
            ContainerError::BadMagic { found } => {
                write!(f, "BadMagic {{ found: {=[u8; 8]:02x} }}", found)
            }
            ContainerError::UnsupportedVersion { version } => {
                write!(f, "UnsupportedVersion {{ version: {=u16} }}", version)
            }
            ContainerError::UnsupportedFlags { flags } => {
                write!(f, "UnsupportedFlags {{ flags: {=u16:#06x} }}", flags)
            }
            ContainerError::LengthMismatch { header, actual } => write!(
                f,
                "LengthMismatch {{ header: {=u32}, actual: {=usize} }}",
                header, actual
            ),
            ContainerError::ChecksumMismatch { stored, computed } => write!(
                f,
                "ChecksumMismatch {{ stored: {=u32:#010x}, computed: {=u32:#010x} }}",
                stored, computed
            ),
            ContainerError::NonZeroReserved { section } => {
                write!(f, "NonZeroReserved {{ section: {} }}", section)
            }
            ContainerError::TooManySections { count } => {
                write!(f, "TooManySections {{ count: {=u32} }}", count)
            }
            ContainerError::SectionTableOutOfBounds {
                table_end,
                file_len,
            } => write!(
                f,
                "SectionTableOutOfBounds {{ table_end: {=u64}, file_len: {=usize} }}",
                table_end, file_len
            ),
            ContainerError::BadSectionName { section } => {
                write!(f, "BadSectionName {{ section: {=u32} }}", section)
            }
            ContainerError::DuplicateSectionName { section, first } => write!(
                f,
                "DuplicateSectionName {{ section: {=u32}, first: {=u32} }}",
                section, first
            ),
            ContainerError::UnsupportedDtype { section, dtype } => write!(
                f,
                "UnsupportedDtype {{ section: {=u32}, dtype: {=u8} }}",
                section, dtype
            ),
            ContainerError::UnsupportedBitWidth { section, bits } => write!(
                f,
                "UnsupportedBitWidth {{ section: {=u32}, bits: {=u8} }}",
                section, bits
            ),
            ContainerError::ShapeMismatch { section, issue } => write!(
                f,
                "ShapeMismatch {{ section: {=u32}, issue: {} }}",
                section, issue
            ),
            ContainerError::MisalignedSection { section, offset } => write!(
                f,
                "MisalignedSection {{ section: {=u32}, offset: {=u32} }}",
                section, offset
            ),
            ContainerError::SectionOutOfBounds {
                section,
                offset,
                len,
            } => write!(
                f,
                "SectionOutOfBounds {{ section: {=u32}, offset: {=u32}, len: {=u32} }}",
                section, offset, len
            ),
            ContainerError::UnorderedSections {
                section,
                offset,
                previous_offset,
            } => write!(
                f,
                "UnorderedSections {{ section: {=u32}, offset: {=u32}, previous_offset: {=u32} }}",
                section, offset, previous_offset
            ),
            ContainerError::OverlappingSections {
                section,
                offset,
                previous_end,
            } => write!(
                f,
                "OverlappingSections {{ section: {=u32}, offset: {=u32}, previous_end: {=u64} }}",
                section, offset, previous_end
            ),
            ContainerError::NonZeroPadding { offset } => {
                write!(f, "NonZeroPadding {{ offset: {=usize} }}", offset)
            }
            ContainerError::InvalidPackedSection { section, error } => write!(
                f,
                "InvalidPackedSection {{ section: {=u32}, error: {} }}",
                section, error
            ),
            ContainerError::OutputTooSmall { needed, actual } => write!(
                f,
                "OutputTooSmall {{ needed: {=usize}, actual: {=usize} }}",
                needed, actual
            ),
            ContainerError::FileTooLarge => write!(f, "FileTooLarge"),
        }
    }
}

impl Format for SectionError {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            SectionError::DtypeMismatch { expected, actual } => write!(
                f,
                "DtypeMismatch {{ expected: {}, actual: {} }}",
                expected, actual
            ),
            SectionError::IndexOutOfBounds { index, len } => write!(
                f,
                "IndexOutOfBounds {{ index: {=usize}, len: {=usize} }}",
                index, len
            ),
            SectionError::Packed(error) => write!(f, "Packed({})", error),
        }
    }
}

impl Format for Container<'_> {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "Container {{ bytes: {=usize}, sections: {=u32}, crc32: {=u32:#010x} }}",
            self.bytes.len(),
            self.section_count,
            self.checksum()
        );
    }
}

impl Format for Section<'_> {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "Section {{ name: {=str}, dtype: {}, bits: {}, shape: {}, bytes: {=usize} }}",
            self.name,
            self.dtype,
            self.bits,
            self.shape(),
            self.data.len()
        );
    }
}

impl Format for SectionSpec<'_> {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "SectionSpec {{ name: {=str}, dtype: {}, bits: {=u8}, shape: {}, bytes: {=usize} }}",
            self.name,
            self.dtype,
            self.bits,
            self.shape,
            self.data.len()
        );
    }
}

impl Format for Crc32 {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "Crc32 {{ value: {=u32:#010x} }}", self.finalize());
    }
}

// Integer SwinIR-light (`int`).

impl Format for crate::int::OpError {
    fn format(&self, f: Formatter<'_>) {
        match *self {
            crate::int::OpError::Shape {
                what,
                expected,
                actual,
            } => write!(
                f,
                "Shape {{ what: {=str}, expected: {=usize}, actual: {=usize} }}",
                what, expected, actual
            ),
            crate::int::OpError::Param { what } => write!(f, "Param {{ what: {=str} }}", what),
        }
    }
}

impl Format for crate::int::IntModelError {
    fn format(&self, f: Formatter<'_>) {
        use crate::int::IntModelError as E;
        match *self {
            E::Container(e) => write!(f, "Container({})", e),
            E::MissingSection { name } => write!(f, "MissingSection {{ name: {=str} }}", name),
            E::BadSection { name, .. } => write!(f, "BadSection {{ name: {=str} }}", name),
            E::BadMeta { index, value } => {
                write!(
                    f,
                    "BadMeta {{ index: {=usize}, value: {=i32} }}",
                    index, value
                )
            }
            E::BadConstant {
                section,
                block,
                error,
            } => write!(
                f,
                "BadConstant {{ section: {=str}, block: {=usize}, error: {} }}",
                section, block, error
            ),
        }
    }
}

impl Format for crate::int::IntModel<'_> {
    fn format(&self, f: Formatter<'_>) {
        write!(
            f,
            "IntModel {{ bits: {}, scale: {=usize}, stream_frac: {=u32} }}",
            self.bits(),
            self.scale(),
            self.stream_frac()
        );
    }
}
