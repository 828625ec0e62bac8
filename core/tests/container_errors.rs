//! One precisely constructed malformed file (or writer input) per
//! `ContainerError` variant, plus the typed-accessor errors.

mod common;

use common::*;
use tdquant_core::container::{ALIGN, MAX_SECTIONS};
use tdquant_core::{
    BitWidth, Container, ContainerError, ContainerWriter, Dtype, PackError, SectionError,
    SectionSpec, ShapeIssue,
};

/// Parses after fixing the CRC (so the targeted structural check is the
/// one that fires).
fn parse_fixed(mut bytes: Vec<u8>) -> Result<(), ContainerError> {
    fix_crc(&mut bytes);
    Container::parse(&bytes).map(|_| ())
}

/// A table row: what is patched, the patch of the reference file, and the
/// error it must give.
type Patch = (&'static str, fn(&mut Vec<u8>), ContainerError);

/// Applies each row's patch to a fresh reference file and checks that
/// `parse` gives the row's error.
fn check_patches(cases: &[Patch], parse: fn(Vec<u8>) -> Result<(), ContainerError>) {
    for &(what, patch, error) in cases {
        let mut bytes = reference_file();
        patch(&mut bytes);
        assert_eq!(parse(bytes), Err(error), "{what}");
    }
}

#[test]
fn reference_file_layout() {
    let bytes = reference_file();
    assert_eq!(bytes.len(), 276);
    let container = Container::parse(&bytes).unwrap();
    assert_eq!(container.section_count(), 3);
    let offsets: Vec<usize> = container
        .sections()
        .map(|s| s.data().as_ptr() as usize - bytes.as_ptr() as usize)
        .collect();
    assert_eq!(offsets, [224, 256, 272]);
    assert_eq!(&bytes[0..8], b"TDQMODEL");
    assert_eq!(
        container.checksum(),
        u32::from_le_bytes(bytes[20..24].try_into().unwrap())
    );
}

#[test]
fn truncated() {
    let bytes = reference_file();
    for len in [0, 1, 7, 8, 31] {
        assert_eq!(
            Container::parse(&bytes[..len]),
            Err(ContainerError::Truncated {
                needed: 32,
                actual: len
            })
        );
    }
}

/// Header fields, checked before the checksum: each row's patch is parsed
/// as it is.
#[test]
#[rustfmt::skip]
fn patched_header_errors() {
    use ContainerError::*;
    let cases: [Patch; 5] = [
        ("magic", |b| b[7] = b'X', BadMagic { found: *b"TDQMODEX" }),
        ("version", |b| put_u16(b, 8, 2), UnsupportedVersion { version: 2 }),
        ("flags", |b| put_u16(b, 10, 0x8000), UnsupportedFlags { flags: 0x8000 }),
        ("a byte appended", |b| b.push(0), LengthMismatch { header: 276, actual: 277 }),
        ("the last byte cut", |b| b.truncate(275), LengthMismatch { header: 276, actual: 275 }),
    ];
    check_patches(&cases, |bytes| Container::parse(&bytes).map(|_| ()));
}

#[test]
fn checksum_mismatch() {
    let mut bytes = reference_file();
    let stored = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    bytes[260] ^= 0x01;
    let Err(ContainerError::ChecksumMismatch {
        stored: got_stored,
        computed,
    }) = Container::parse(&bytes)
    else {
        panic!("expected a checksum mismatch");
    };
    assert_eq!(got_stored, stored);
    assert_ne!(computed, stored);
    // The CRC field itself is excluded from the checksum: fixing it up
    // makes the (still valid) mutated payload parse.
    fix_crc(&mut bytes);
    assert!(Container::parse(&bytes).is_ok());
}

/// The structural checks after the checksum: each row's patch is parsed
/// with the CRC fixed, so that the row's check is the one that fires.
#[test]
#[rustfmt::skip]
fn patched_file_errors() {
    use ContainerError::*;
    let cases: [Patch; 13] = [
        ("reserved header byte", |b| b[31] = 1, NonZeroReserved { section: None }),
        ("section count", |b| put_u32(b, 12, MAX_SECTIONS + 1), TooManySections { count: MAX_SECTIONS + 1 }),
        ("table past the file", |b| put_u32(b, 12, 5), SectionTableOutOfBounds { table_end: 32 + 5 * 64, file_len: 276 }),
        ("name of a later section", |b| b[entry(2)] = b'w', DuplicateSectionName { section: 2, first: 0 }),
        ("dtype", |b| b[entry(1) + 32] = 6, UnsupportedDtype { section: 1, dtype: 6 }),
        ("bits of a packed section", |b| b[entry(0) + 33] = 5, UnsupportedBitWidth { section: 0, bits: 5 }),
        ("bits of a non-packed section (must be 0)", |b| b[entry(1) + 33] = 4, UnsupportedBitWidth { section: 1, bits: 4 }),
        ("offset off the alignment", |b| put_u32(b, entry(1) + 52, 260), MisalignedSection { section: 1, offset: 260 }),
        ("offset past the end of the file", |b| put_u32(b, entry(2) + 52, 288), SectionOutOfBounds { section: 2, offset: 288, len: 4 }),
        ("offset inside the section table", |b| put_u32(b, entry(0) + 52, 208), SectionOutOfBounds { section: 0, offset: 208, len: 24 }),
        ("offset + len overflowing u32 (out of bounds, not wrapped)", |b| put_u32(b, entry(2) + 52, 0xFFFF_FFF0), SectionOutOfBounds { section: 2, offset: 0xFFFF_FFF0, len: 4 }),
        ("offset before the previous section", |b| put_u32(b, entry(2) + 52, 224), UnorderedSections { section: 2, offset: 224, previous_offset: 256 }),
        ("offset inside the previous section", |b| put_u32(b, entry(1) + 52, 240), OverlappingSections { section: 1, offset: 240, previous_end: 248 }),
    ];
    check_patches(&cases, parse_fixed);
    assert_eq!(ALIGN, 16);
}

#[test]
fn bad_section_name() {
    let cases: [(usize, &[u8]); 5] = [
        (0, b"\0"),         // empty
        (0, b" w"),         // space
        (0, b"w\0x"),       // data after the NUL padding
        (1, b"\x7f"),       // DEL is not graphic
        (2, &[0xC3, 0xA9]), // non-ASCII
    ];
    for (section, name) in cases {
        let mut bytes = reference_file();
        let at = entry(section);
        bytes[at..at + 32].fill(0);
        bytes[at..at + name.len()].copy_from_slice(name);
        assert_eq!(
            parse_fixed(bytes),
            Err(ContainerError::BadSectionName {
                section: section as u32
            }),
            "name {name:?}"
        );
    }
    // A full 32-character name without any NUL is valid.
    let long = "n".repeat(32);
    let data = [0u8; 1];
    let specs = [SectionSpec::new(&long, Dtype::U8, &[1], &data)];
    let file = write_vec(&specs);
    assert_eq!(
        Container::parse(&file).unwrap().get(&long).unwrap().name(),
        long
    );
}

#[test]
fn non_zero_reserved_in_entry() {
    for byte in [35, 60, 63] {
        let mut bytes = reference_file();
        bytes[entry(1) + byte] = 0x10;
        assert_eq!(
            parse_fixed(bytes),
            Err(ContainerError::NonZeroReserved { section: Some(1) }),
            "entry byte {byte}"
        );
    }
}

#[test]
fn shape_mismatch() {
    let shape = |mutate: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = reference_file();
        mutate(&mut bytes);
        parse_fixed(bytes)
    };
    assert_eq!(
        shape(&|b| b[entry(1) + 34] = 5),
        Err(ContainerError::ShapeMismatch {
            section: 1,
            issue: ShapeIssue::RankTooLarge { rank: 5 }
        })
    );
    assert_eq!(
        shape(&|b| put_u32(b, entry(1) + 36 + 8, 1)),
        Err(ContainerError::ShapeMismatch {
            section: 1,
            issue: ShapeIssue::UnusedDimNonZero { dim: 2 }
        })
    );
    assert_eq!(
        shape(&|b| {
            b[entry(0) + 34] = 3;
            put_u32(b, entry(0) + 36 + 8, 1);
        }),
        Err(ContainerError::ShapeMismatch {
            section: 0,
            issue: ShapeIssue::PackedRankNotTwo { rank: 3 }
        })
    );
    assert_eq!(
        shape(&|b| put_u32(b, entry(1) + 56, 8)),
        Err(ContainerError::ShapeMismatch {
            section: 1,
            issue: ShapeIssue::LengthMismatch {
                expected: 12,
                actual: 8
            }
        })
    );
    // 3 · 11 packed codes claimed as [3, 12] (still 2 words per row: OK),
    // and as [3, 21] (3 words per row: 36 bytes, not 24).
    assert!(shape(&|b| put_u32(b, entry(0) + 40, 12)).is_ok());
    assert_eq!(
        shape(&|b| put_u32(b, entry(0) + 40, 21)),
        Err(ContainerError::ShapeMismatch {
            section: 0,
            issue: ShapeIssue::LengthMismatch {
                expected: 36,
                actual: 24
            }
        })
    );
    assert_eq!(
        shape(&|b| {
            b[entry(1) + 34] = 2;
            put_u32(b, entry(1) + 36, u32::MAX);
            put_u32(b, entry(1) + 40, 2);
        }),
        Err(ContainerError::ShapeMismatch {
            section: 1,
            issue: ShapeIssue::TooLarge
        })
    );
}

#[test]
fn non_zero_padding() {
    // Gap between two payloads.
    let mut bytes = reference_file();
    bytes[250] = 1;
    assert_eq!(
        parse_fixed(bytes),
        Err(ContainerError::NonZeroPadding { offset: 250 })
    );
    // Trailing bytes after the last payload: zeros are accepted, anything
    // else is not.
    let mut bytes = reference_file();
    bytes.extend_from_slice(&[0; 5]);
    fix_len_and_crc(&mut bytes);
    assert!(Container::parse(&bytes).is_ok());
    bytes[279] = 9;
    fix_crc(&mut bytes);
    assert_eq!(
        Container::parse(&bytes),
        Err(ContainerError::NonZeroPadding { offset: 279 })
    );
}

#[test]
fn invalid_packed_section() {
    // Set bit 31 of word 0 of row 0: a 3-bit padding bit.
    let mut bytes = reference_file();
    bytes[224 + 3] |= 0x80;
    let word = u32::from_le_bytes(bytes[224..228].try_into().unwrap());
    assert_eq!(
        parse_fixed(bytes),
        Err(ContainerError::InvalidPackedSection {
            section: 0,
            error: PackError::NonZeroPadding {
                row: 0,
                word: 0,
                value: word
            }
        })
    );
}

#[test]
fn writer_output_too_small() {
    let owned = reference_sections();
    let specs: Vec<SectionSpec<'_>> = owned.iter().map(OwnedSection::spec).collect();
    let mut out = vec![0u8; 275];
    assert_eq!(
        ContainerWriter::write(&specs, &mut out),
        Err(ContainerError::OutputTooSmall {
            needed: 276,
            actual: 275
        })
    );
    // Nothing was written.
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn writer_file_too_large() {
    // calloc'd: the pages are never touched, so this costs no real memory.
    let huge = vec![0u8; u32::MAX as usize];
    let specs = [SectionSpec::new("huge", Dtype::U8, &[u32::MAX], &huge)];
    assert_eq!(
        ContainerWriter::required_len(&specs),
        Err(ContainerError::FileTooLarge)
    );
}

#[test]
fn writer_rejects_what_the_parser_rejects() {
    let data = [0u8; 12];
    let too_long = "x".repeat(33);
    let cases: Vec<(Vec<SectionSpec<'_>>, ContainerError)> = vec![
        (
            vec![SectionSpec::new("", Dtype::U8, &[0], &[])],
            ContainerError::BadSectionName { section: 0 },
        ),
        (
            vec![SectionSpec::new("has space", Dtype::U8, &[0], &[])],
            ContainerError::BadSectionName { section: 0 },
        ),
        (
            vec![SectionSpec::new(&too_long, Dtype::U8, &[0], &[])],
            ContainerError::BadSectionName { section: 0 },
        ),
        (
            vec![
                SectionSpec::new("a", Dtype::U8, &[0], &[]),
                SectionSpec::new("b", Dtype::U8, &[0], &[]),
                SectionSpec::new("a", Dtype::U8, &[0], &[]),
            ],
            ContainerError::DuplicateSectionName {
                section: 2,
                first: 0,
            },
        ),
        (
            vec![SectionSpec {
                name: "p",
                dtype: Dtype::Packed,
                bits: 5,
                shape: &[1, 1],
                data: &data[..4],
            }],
            ContainerError::UnsupportedBitWidth {
                section: 0,
                bits: 5,
            },
        ),
        (
            vec![SectionSpec {
                name: "i",
                dtype: Dtype::I32,
                bits: 4,
                shape: &[3],
                data: &data,
            }],
            ContainerError::UnsupportedBitWidth {
                section: 0,
                bits: 4,
            },
        ),
        (
            vec![SectionSpec::new("r", Dtype::U8, &[1, 1, 1, 1, 12], &data)],
            ContainerError::ShapeMismatch {
                section: 0,
                issue: ShapeIssue::RankTooLarge { rank: 5 },
            },
        ),
        (
            vec![SectionSpec::new("l", Dtype::I16, &[5], &data)],
            ContainerError::ShapeMismatch {
                section: 0,
                issue: ShapeIssue::LengthMismatch {
                    expected: 10,
                    actual: 12,
                },
            },
        ),
        (
            vec![SectionSpec {
                name: "p",
                dtype: Dtype::Packed,
                bits: 4,
                shape: &[12],
                data: &data,
            }],
            ContainerError::ShapeMismatch {
                section: 0,
                issue: ShapeIssue::PackedRankNotTwo { rank: 1 },
            },
        ),
        (
            vec![SectionSpec::packed(
                "p",
                BitWidth::B4,
                &[1, 7],
                &[0, 0, 0, 0xF0],
            )],
            ContainerError::InvalidPackedSection {
                section: 0,
                error: PackError::NonZeroPadding {
                    row: 0,
                    word: 0,
                    value: 0xF000_0000,
                },
            },
        ),
    ];
    for (specs, expected) in cases {
        assert_eq!(
            ContainerWriter::required_len(&specs),
            Err(expected),
            "{specs:?}"
        );
        let mut out = vec![0u8; 4096];
        assert_eq!(ContainerWriter::write(&specs, &mut out), Err(expected));
    }
    // A full word has no padding bits to get wrong.
    let full_word = [SectionSpec::packed("p", BitWidth::B4, &[1, 8], &[0xFF; 4])];
    assert_eq!(ContainerWriter::required_len(&full_word), Ok(32 + 64 + 4));
    let too_many: Vec<SectionSpec<'_>> = (0..=MAX_SECTIONS)
        .map(|_| SectionSpec::new("x", Dtype::U8, &[0], &[]))
        .collect();
    assert_eq!(
        ContainerWriter::required_len(&too_many),
        Err(ContainerError::TooManySections {
            count: MAX_SECTIONS + 1
        })
    );
}

#[test]
fn section_accessor_errors() {
    let bytes = reference_file();
    let container = Container::parse(&bytes).unwrap();
    let weights = container.get("w").unwrap();
    let bias = container.get("b").unwrap();
    let scalar = container.get("s").unwrap();
    assert!(container.get("missing").is_none());

    assert_eq!(bias.read_i32(2), Ok(300));
    assert_eq!(
        bias.read_i32(3),
        Err(SectionError::IndexOutOfBounds { index: 3, len: 3 })
    );
    assert_eq!(
        scalar.read_i32(0),
        Err(SectionError::DtypeMismatch {
            expected: Dtype::I32,
            actual: Dtype::F32
        })
    );
    assert_eq!(scalar.f32s().unwrap().collect::<Vec<_>>(), [0.25]);
    assert_eq!(scalar.shape(), &[] as &[u32]);
    assert_eq!(scalar.element_count(), 1);
    assert_eq!(
        bias.as_packed(),
        Err(SectionError::DtypeMismatch {
            expected: Dtype::Packed,
            actual: Dtype::I32
        })
    );
    assert!(matches!(
        weights.i8s(),
        Err(SectionError::DtypeMismatch { .. })
    ));
    let matrix = weights.as_packed().unwrap();
    assert_eq!(
        (matrix.rows(), matrix.cols(), matrix.bits()),
        (3, 11, BitWidth::B3)
    );
    let codes: Vec<u8> = (0..3).flat_map(|r| matrix.row_codes(r).unwrap()).collect();
    assert_eq!(codes, (0..33).map(|i| (i % 8) as u8).collect::<Vec<_>>());
    assert_eq!(weights.element_count(), 33);
    assert_eq!(weights.bit_width(), Some(BitWidth::B3));
    assert_eq!(bias.i32s().unwrap().rev().collect::<Vec<_>>(), [300, -2, 1]);
}

#[test]
fn every_error_displays() {
    let errors = [
        ContainerError::Truncated {
            needed: 32,
            actual: 3,
        },
        ContainerError::BadMagic {
            found: *b"ABCDEFGH",
        },
        ContainerError::UnsupportedVersion { version: 9 },
        ContainerError::UnsupportedFlags { flags: 1 },
        ContainerError::LengthMismatch {
            header: 1,
            actual: 2,
        },
        ContainerError::ChecksumMismatch {
            stored: 1,
            computed: 2,
        },
        ContainerError::NonZeroReserved { section: None },
        ContainerError::NonZeroReserved { section: Some(3) },
        ContainerError::TooManySections { count: 5000 },
        ContainerError::SectionTableOutOfBounds {
            table_end: 96,
            file_len: 40,
        },
        ContainerError::BadSectionName { section: 0 },
        ContainerError::DuplicateSectionName {
            section: 1,
            first: 0,
        },
        ContainerError::UnsupportedDtype {
            section: 0,
            dtype: 9,
        },
        ContainerError::UnsupportedBitWidth {
            section: 0,
            bits: 5,
        },
        ContainerError::ShapeMismatch {
            section: 0,
            issue: ShapeIssue::TooLarge,
        },
        ContainerError::MisalignedSection {
            section: 0,
            offset: 3,
        },
        ContainerError::SectionOutOfBounds {
            section: 0,
            offset: 3,
            len: 4,
        },
        ContainerError::UnorderedSections {
            section: 1,
            offset: 0,
            previous_offset: 16,
        },
        ContainerError::OverlappingSections {
            section: 1,
            offset: 16,
            previous_end: 20,
        },
        ContainerError::NonZeroPadding { offset: 7 },
        ContainerError::InvalidPackedSection {
            section: 0,
            error: PackError::NonZeroPadding {
                row: 0,
                word: 0,
                value: 1 << 31,
            },
        },
        ContainerError::OutputTooSmall {
            needed: 2,
            actual: 1,
        },
        ContainerError::FileTooLarge,
    ];
    for error in errors {
        let text = error.to_string();
        assert!(
            !text.is_empty() && !text.contains("{"),
            "{error:?} → {text:?}"
        );
    }
    assert_eq!(
        ContainerError::MisalignedSection {
            section: 2,
            offset: 20
        }
        .to_string(),
        "section 2 starts at offset 20, not a multiple of 16"
    );
    let nested = ContainerError::InvalidPackedSection {
        section: 0,
        error: PackError::NonZeroPadding {
            row: 0,
            word: 0,
            value: 1,
        },
    };
    assert!(std::error::Error::source(&nested).is_some());
}
