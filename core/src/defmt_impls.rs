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

/// Implements `Format` for an enum from arms `pattern => (format, args…)`,
/// the counterpart of `display_messages!`: the value is matched by copy and
/// the arm's arguments go to one `write!` (defmt takes its arguments by
/// position, with the type hints in the format string).
macro_rules! defmt_messages {
    ($ty:ty { $($pat:pat => ($($msg:tt)+)),+ $(,)? }) => {
        impl Format for $ty {
            fn format(&self, f: Formatter<'_>) {
                match *self {
                    $($pat => write!(f, $($msg)+),)+
                }
            }
        }
    };
}

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

defmt_messages! {
    PackError {
        Self::LayoutTooLarge { rows, cols, bits } => ("LayoutTooLarge {{ rows: {=u32}, cols: {=u32}, bits: {} }}", rows, cols, bits),
        Self::CodesLengthMismatch { expected, actual } => ("CodesLengthMismatch {{ expected: {=usize}, actual: {=usize} }}", expected, actual),
        Self::PackedLengthMismatch { expected, actual } => ("PackedLengthMismatch {{ expected: {=usize}, actual: {=usize} }}", expected, actual),
        Self::OutputLengthMismatch { expected, actual } => ("OutputLengthMismatch {{ expected: {=usize}, actual: {=usize} }}", expected, actual),
        Self::CodeOutOfRange { row, col, value, max } => ("CodeOutOfRange {{ row: {=u32}, col: {=u32}, value: {=u8}, max: {=u8} }}", row, col, value, max),
        Self::NonZeroPadding { row, word, value } => ("NonZeroPadding {{ row: {=u32}, word: {=u32}, value: {=u32:#010x} }}", row, word, value),
        Self::IndexOutOfBounds { row, col, rows, cols } => ("IndexOutOfBounds {{ row: {=u32}, col: {=u32}, rows: {=u32}, cols: {=u32} }}", row, col, rows, cols),
        Self::BitWidthMismatch { expected, actual } => ("BitWidthMismatch {{ expected: {}, actual: {} }}", expected, actual),
    }
}

impl Format for Dtype {
    fn format(&self, f: Formatter<'_>) {
        write!(f, "{=str}", self.name());
    }
}

defmt_messages! {
    ContainerError {
        Self::Truncated { needed, actual } => ("Truncated {{ needed: {=usize}, actual: {=usize} }}", needed, actual),
        Self::BadMagic { found } => ("BadMagic {{ found: {=[u8; 8]:02x} }}", found),
        Self::UnsupportedVersion { version } => ("UnsupportedVersion {{ version: {=u16} }}", version),
        Self::UnsupportedFlags { flags } => ("UnsupportedFlags {{ flags: {=u16:#06x} }}", flags),
        Self::LengthMismatch { header, actual } => ("LengthMismatch {{ header: {=u32}, actual: {=usize} }}", header, actual),
        Self::ChecksumMismatch { stored, computed } => ("ChecksumMismatch {{ stored: {=u32:#010x}, computed: {=u32:#010x} }}", stored, computed),
        Self::NonZeroReserved { section } => ("NonZeroReserved {{ section: {} }}", section),
        Self::TooManySections { count } => ("TooManySections {{ count: {=u32} }}", count),
        Self::SectionTableOutOfBounds { table_end, file_len } => ("SectionTableOutOfBounds {{ table_end: {=u64}, file_len: {=usize} }}", table_end, file_len),
        Self::BadSectionName { section } => ("BadSectionName {{ section: {=u32} }}", section),
        Self::DuplicateSectionName { section, first } => ("DuplicateSectionName {{ section: {=u32}, first: {=u32} }}", section, first),
        Self::UnsupportedDtype { section, dtype } => ("UnsupportedDtype {{ section: {=u32}, dtype: {=u8} }}", section, dtype),
        Self::UnsupportedBitWidth { section, bits } => ("UnsupportedBitWidth {{ section: {=u32}, bits: {=u8} }}", section, bits),
        Self::ShapeMismatch { section, issue } => ("ShapeMismatch {{ section: {=u32}, issue: {} }}", section, issue),
        Self::MisalignedSection { section, offset } => ("MisalignedSection {{ section: {=u32}, offset: {=u32} }}", section, offset),
        Self::SectionOutOfBounds { section, offset, len } => ("SectionOutOfBounds {{ section: {=u32}, offset: {=u32}, len: {=u32} }}", section, offset, len),
        Self::UnorderedSections { section, offset, previous_offset } => ("UnorderedSections {{ section: {=u32}, offset: {=u32}, previous_offset: {=u32} }}", section, offset, previous_offset),
        Self::OverlappingSections { section, offset, previous_end } => ("OverlappingSections {{ section: {=u32}, offset: {=u32}, previous_end: {=u64} }}", section, offset, previous_end),
        Self::NonZeroPadding { offset } => ("NonZeroPadding {{ offset: {=usize} }}", offset),
        Self::InvalidPackedSection { section, error } => ("InvalidPackedSection {{ section: {=u32}, error: {} }}", section, error),
        Self::OutputTooSmall { needed, actual } => ("OutputTooSmall {{ needed: {=usize}, actual: {=usize} }}", needed, actual),
        Self::FileTooLarge => ("FileTooLarge"),
    }
}

defmt_messages! {
    SectionError {
        Self::DtypeMismatch { expected, actual } => ("DtypeMismatch {{ expected: {}, actual: {} }}", expected, actual),
        Self::IndexOutOfBounds { index, len } => ("IndexOutOfBounds {{ index: {=usize}, len: {=usize} }}", index, len),
        Self::Packed(error) => ("Packed({})", error),
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

defmt_messages! {
    crate::int::OpError {
        Self::Shape { what, expected, actual } => ("Shape {{ what: {=str}, expected: {=usize}, actual: {=usize} }}", what, expected, actual),
        Self::Param { what } => ("Param {{ what: {=str} }}", what),
    }
}

defmt_messages! {
    crate::int::IntModelError {
        Self::Container(e) => ("Container({})", e),
        Self::MissingSection { name } => ("MissingSection {{ name: {=str} }}", name),
        Self::BadSection { name, .. } => ("BadSection {{ name: {=str} }}", name),
        Self::BadMeta { index, value } => ("BadMeta {{ index: {=usize}, value: {=i32} }}", index, value),
        Self::BadConstant { section, block, error } => ("BadConstant {{ section: {=str}, block: {=usize}, error: {} }}", section, block, error),
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
