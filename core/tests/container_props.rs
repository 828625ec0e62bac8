//! Property tests of the `.tdq` container: write → parse round trips, and
//! on arbitrary, mutated and hostile inputs (to the parser and to the
//! writer) an `Ok` that keeps every promise or an error that names a real
//! problem at a real place; never a panic.

mod common;

use common::*;
use proptest::prelude::*;
use tdquant_core::container::{ALIGN, HEADER_LEN, MAX_SECTIONS, SECTION_ENTRY_LEN};
use tdquant_core::int::{IntModel, IntModelError};
use tdquant_core::{
    crc32, BitWidth, Container, ContainerError, ContainerWriter, Dtype, PackedMatrix, SectionSpec,
};

fn dtype() -> impl Strategy<Value = Dtype> {
    prop::sample::select(vec![
        Dtype::U8,
        Dtype::I8,
        Dtype::I16,
        Dtype::I32,
        Dtype::F32,
        Dtype::Packed,
    ])
}

/// One section with a random dtype, shape and payload; the name gets a
/// unique prefix later.
fn section(suffix: String) -> impl Strategy<Value = OwnedSection> {
    dtype().prop_flat_map(move |dtype| {
        let suffix = suffix.clone();
        if dtype == Dtype::Packed {
            (
                prop::sample::select(BitWidth::ALL.to_vec()),
                0u32..=4,
                0u32..=40,
            )
                .prop_flat_map(move |(bits, rows, cols)| {
                    let suffix = suffix.clone();
                    prop::collection::vec(0..=bits.max_code(), (rows * cols) as usize).prop_map(
                        move |codes| OwnedSection::packed(&suffix, bits, rows, cols, &codes),
                    )
                })
                .boxed()
        } else {
            let size = dtype.element_size().unwrap();
            prop::collection::vec(0u32..=5, 0..=4)
                .prop_flat_map(move |shape| {
                    let suffix = suffix.clone();
                    let n = shape.iter().product::<u32>() as usize * size;
                    prop::collection::vec(any::<u8>(), n)
                        .prop_map(move |data| OwnedSection::plain(&suffix, dtype, &shape, data))
                })
                .boxed()
        }
    })
}

fn sections() -> impl Strategy<Value = Vec<OwnedSection>> {
    prop::collection::vec("[a-zA-Z0-9_./-]{0,20}", 0..=8).prop_flat_map(|suffixes| {
        suffixes
            .into_iter()
            .enumerate()
            .map(|(i, suffix)| section(format!("{i}:{suffix}")))
            .collect::<Vec<_>>()
    })
}

fn specs(owned: &[OwnedSection]) -> Vec<SectionSpec<'_>> {
    owned.iter().map(OwnedSection::spec).collect()
}

/// Everything a successful parse promises: payloads inside the file and
/// aligned, accessors consistent and infallible on structure, and a rewrite
/// that parses to the same sections.
fn check_parsed(bytes: &[u8]) -> Result<(), TestCaseError> {
    let parsed = Container::parse(bytes);
    // The model parser reports a container error as exactly that error.
    if let Err(error) = parsed {
        prop_assert_eq!(
            IntModel::parse(bytes).err(),
            Some(IntModelError::Container(error))
        );
    }
    let container = match parsed {
        Ok(container) => container,
        Err(error) => return check_error(bytes, error),
    };
    let base = bytes.as_ptr() as usize;
    prop_assert_eq!(
        container.sections().len(),
        container.section_count() as usize
    );
    let mut count = 0;
    for section in container.sections() {
        count += 1;
        let data = section.data();
        let start = data.as_ptr() as usize - base;
        prop_assert!(start >= 32 && start + data.len() <= bytes.len());
        prop_assert_eq!(start % ALIGN, 0);
        prop_assert_eq!(container.get(section.name()), Some(section));
        match section.dtype() {
            Dtype::Packed => {
                let matrix = section.as_packed().unwrap();
                let mut codes = vec![0u8; section.element_count()];
                matrix.unpack_into(&mut codes).unwrap();
                prop_assert_eq!(matrix, PackedMatrix::new(matrix.layout(), data).unwrap());
            }
            Dtype::U8 => prop_assert_eq!(section.u8s().unwrap().count(), section.element_count()),
            Dtype::I8 => prop_assert_eq!(section.i8s().unwrap().count(), section.element_count()),
            Dtype::I16 => prop_assert_eq!(section.i16s().unwrap().count(), section.element_count()),
            Dtype::I32 => prop_assert_eq!(section.i32s().unwrap().count(), section.element_count()),
            Dtype::F32 => prop_assert_eq!(section.f32s().unwrap().count(), section.element_count()),
        }
    }
    prop_assert_eq!(count, container.section_count());

    // Rewriting what was parsed gives a file with the same sections.
    let parsed: Vec<_> = container.sections().collect();
    let respecs: Vec<SectionSpec<'_>> = parsed
        .iter()
        .map(|s| SectionSpec {
            name: s.name(),
            dtype: s.dtype(),
            bits: s.bit_width().map_or(0, |b| b.bits()),
            shape: s.shape(),
            data: s.data(),
        })
        .collect::<Vec<_>>();
    let rewritten = write_vec(&respecs);
    let reparsed = Container::parse(&rewritten).unwrap();
    prop_assert!(reparsed.sections().eq(container.sections()));
    Ok(())
}

fn u32_le(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u16_le(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
}

/// A section-table entry's raw fields, read independently of the crate.
struct RawEntry<'a> {
    name: &'a [u8],
    dtype: u8,
    bits: u8,
    reserved: u8,
    offset: u32,
    len: u32,
    tail: &'a [u8],
}

fn raw_entry(bytes: &[u8], section: u32) -> RawEntry<'_> {
    let at = HEADER_LEN + SECTION_ENTRY_LEN * section as usize;
    let e = &bytes[at..at + SECTION_ENTRY_LEN];
    RawEntry {
        name: &e[..32],
        dtype: e[32],
        bits: e[33],
        reserved: e[35],
        offset: u32_le(e, 52),
        len: u32_le(e, 56),
        tail: &e[60..],
    }
}

fn name_is_valid(field: &[u8]) -> bool {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    len > 0 && field[..len].iter().all(u8::is_ascii_graphic) && field[len..].iter().all(|&b| b == 0)
}

/// The bits field a dtype allows: a packed width, or 0 for plain dtypes.
fn bits_fit(packed: bool, bits: u8) -> bool {
    if packed {
        [2, 3, 4, 8].contains(&bits)
    } else {
        bits == 0
    }
}

/// The error `Container::parse` returned for `bytes` describes the file:
/// the values it reports are the ones stored, at the places it names, and
/// they really break the rule the variant stands for.
fn check_error(bytes: &[u8], error: ContainerError) -> Result<(), TestCaseError> {
    prop_assert!(!error.to_string().is_empty());
    let len = bytes.len();
    if let ContainerError::Truncated { needed, actual } = error {
        prop_assert_eq!((needed, actual), (HEADER_LEN, len));
        prop_assert!(len < HEADER_LEN);
        return Ok(());
    }
    // Every other error comes from a file with a whole header.
    prop_assert!(len >= HEADER_LEN, "{error:?} for a {len}-byte file");
    let count = u32_le(bytes, 12);
    let table_end = HEADER_LEN as u64 + SECTION_ENTRY_LEN as u64 * u64::from(count);
    // Section errors come after the table checks: the table is in the file.
    let entry = |section: u32| -> Result<RawEntry<'_>, TestCaseError> {
        prop_assert!(section < count && count <= MAX_SECTIONS && table_end <= len as u64);
        Ok(raw_entry(bytes, section))
    };
    match error {
        ContainerError::BadMagic { found } => {
            prop_assert_eq!(&found[..], &bytes[..8]);
            prop_assert_ne!(&found, b"TDQMODEL");
        }
        ContainerError::UnsupportedVersion { version } => {
            prop_assert_eq!(version, u16_le(bytes, 8));
            prop_assert_ne!(version, 1);
        }
        ContainerError::UnsupportedFlags { flags } => {
            prop_assert_eq!(flags, u16_le(bytes, 10));
            prop_assert_ne!(flags, 0);
        }
        ContainerError::LengthMismatch { header, actual } => {
            prop_assert_eq!((header, actual), (u32_le(bytes, 16), len));
            prop_assert_ne!(header as usize, len);
        }
        ContainerError::ChecksumMismatch { stored, computed } => {
            let mut zeroed = bytes.to_vec();
            zeroed[20..24].fill(0);
            prop_assert_eq!((stored, computed), (u32_le(bytes, 20), crc32(&zeroed)));
            prop_assert_ne!(stored, computed);
        }
        ContainerError::NonZeroReserved { section: None } => {
            prop_assert!(bytes[24..32].iter().any(|&b| b != 0));
        }
        ContainerError::NonZeroReserved {
            section: Some(section),
        } => {
            let e = entry(section)?;
            prop_assert!(e.reserved != 0 || e.tail.iter().any(|&b| b != 0));
        }
        ContainerError::TooManySections { count: reported } => {
            prop_assert_eq!(reported, count);
            prop_assert!(count > MAX_SECTIONS);
        }
        ContainerError::SectionTableOutOfBounds {
            table_end: reported,
            file_len,
        } => {
            prop_assert_eq!((reported, file_len), (table_end, len));
            prop_assert!(table_end > len as u64);
        }
        ContainerError::BadSectionName { section } => {
            prop_assert!(!name_is_valid(entry(section)?.name));
        }
        ContainerError::DuplicateSectionName { section, first } => {
            prop_assert!(first < section);
            prop_assert_eq!(entry(section)?.name, entry(first)?.name);
        }
        ContainerError::UnsupportedDtype { section, dtype } => {
            prop_assert_eq!(dtype, entry(section)?.dtype);
            prop_assert!(dtype > 5);
        }
        ContainerError::UnsupportedBitWidth { section, bits } => {
            let e = entry(section)?;
            prop_assert_eq!(bits, e.bits);
            prop_assert!(!bits_fit(e.dtype == Dtype::Packed as u8, bits));
        }
        ContainerError::ShapeMismatch { section, .. } => {
            entry(section)?;
        }
        ContainerError::MisalignedSection { section, offset } => {
            prop_assert_eq!(offset, entry(section)?.offset);
            prop_assert_ne!(offset as usize % ALIGN, 0);
        }
        ContainerError::SectionOutOfBounds {
            section,
            offset,
            len: payload,
        } => {
            let e = entry(section)?;
            prop_assert_eq!((offset, payload), (e.offset, e.len));
            let end = u64::from(offset) + u64::from(payload);
            prop_assert!(u64::from(offset) < table_end || end > len as u64);
        }
        ContainerError::UnorderedSections {
            section,
            offset,
            previous_offset,
        } => {
            prop_assert!(section > 0);
            prop_assert_eq!(offset, entry(section)?.offset);
            prop_assert_eq!(previous_offset, entry(section - 1)?.offset);
            prop_assert!(offset < previous_offset);
        }
        ContainerError::OverlappingSections {
            section,
            offset,
            previous_end,
        } => {
            prop_assert!(section > 0);
            let previous = entry(section - 1)?;
            prop_assert_eq!(offset, entry(section)?.offset);
            prop_assert_eq!(
                previous_end,
                u64::from(previous.offset) + u64::from(previous.len)
            );
            prop_assert!(u64::from(offset) < previous_end);
        }
        ContainerError::NonZeroPadding { offset } => {
            prop_assert!(offset as u64 >= table_end && offset < len);
            prop_assert_ne!(bytes[offset], 0);
        }
        ContainerError::InvalidPackedSection { section, .. } => {
            prop_assert_eq!(entry(section)?.dtype, Dtype::Packed as u8);
        }
        ContainerError::Truncated { .. }
        | ContainerError::OutputTooSmall { .. }
        | ContainerError::FileTooLarge => {
            prop_assert!(false, "{error:?} is not a parse error of a whole header");
        }
    }
    Ok(())
}

/// The writer's error names a spec that really breaks the rule.
fn check_writer_error(
    specs: &[SectionSpec<'_>],
    error: ContainerError,
) -> Result<(), TestCaseError> {
    let spec = |section: u32| -> Result<&SectionSpec<'_>, TestCaseError> {
        prop_assert!((section as usize) < specs.len(), "{error:?}");
        Ok(&specs[section as usize])
    };
    match error {
        ContainerError::BadSectionName { section } => {
            let name = spec(section)?.name.as_bytes();
            prop_assert!(name.len() > 32 || !name_is_valid(name), "{error:?}");
        }
        ContainerError::DuplicateSectionName { section, first } => {
            prop_assert!(first < section);
            prop_assert_eq!(spec(section)?.name, spec(first)?.name);
        }
        ContainerError::UnsupportedBitWidth { section, bits } => {
            let s = spec(section)?;
            prop_assert_eq!(bits, s.bits);
            prop_assert!(!bits_fit(s.dtype == Dtype::Packed, bits));
        }
        ContainerError::ShapeMismatch { section, .. } => {
            let s = spec(section)?;
            prop_assert_ne!(implied_len(s.dtype, s.bits, s.shape), Some(s.data.len()));
        }
        ContainerError::InvalidPackedSection { section, .. } => {
            prop_assert_eq!(spec(section)?.dtype, Dtype::Packed);
        }
        other => prop_assert!(false, "unexpected writer error {other:?}"),
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    SetU32(prop::sample::Index, u32),
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => (any::<prop::sample::Index>(), prop_oneof![
                any::<u32>(),
                0u32..600,
                Just(u32::MAX),
                Just(0x8000_0000),
            ]).prop_map(|(i, v)| Mutation::SetU32(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::Extend),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Flip(at, xor) if !bytes.is_empty() => {
            let at = at.index(bytes.len());
            bytes[at] ^= xor;
        }
        Mutation::SetU32(at, value) if bytes.len() >= 4 => {
            // Aligned to 4 so header and entry fields are hit squarely.
            let at = at.index(bytes.len() / 4) * 4;
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        Mutation::Truncate(at) if !bytes.is_empty() => {
            let len = at.index(bytes.len());
            bytes.truncate(len);
        }
        Mutation::Extend(extra) => bytes.extend_from_slice(extra),
        _ => {}
    }
}

/// A field of the header or of a section-table entry: its offset in the
/// header (or in the entry) and its width in bytes.
#[derive(Clone, Copy, Debug)]
enum Field {
    Header(usize, usize),
    Entry(usize, usize),
    /// The whole name field, set to the next entry's name.
    NameOfNext,
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        // version, flags, section count, file_len, reserved.
        2 => prop::sample::select(vec![(8, 2), (10, 2), (12, 4), (16, 4), (24, 4), (28, 4)])
            .prop_map(|(at, width)| Field::Header(at, width)),
        // name bytes, dtype, bits, rank, reserved, dims, tail.
        3 => prop::sample::select(vec![
            (0, 1),
            (1, 1),
            (31, 1),
            (32, 1),
            (33, 1),
            (34, 1),
            (35, 1),
            (36, 4),
            (40, 4),
            (44, 4),
            (48, 4),
            (60, 4),
        ])
        .prop_map(|(at, width)| Field::Entry(at, width)),
        // offset and len, where ordering and overlap are decided.
        3 => prop::sample::select(vec![(52, 4), (56, 4)])
            .prop_map(|(at, width)| Field::Entry(at, width)),
        1 => Just(Field::NameOfNext),
    ]
}

/// What to store in the field: an edge value, or the stored value moved by
/// a small amount (an offset one alignment step off, a length one byte off).
#[derive(Clone, Copy, Debug)]
enum Edit {
    Set(u32),
    Add(i32),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => prop_oneof![
            Just(0u32), Just(1), Just(2), Just(3), Just(4), Just(5), Just(6), Just(8), Just(9),
            Just(15), Just(16), Just(0x20), Just(0x7F), Just(0x80), Just(0xFF), Just(0x100),
            Just(MAX_SECTIONS), Just(MAX_SECTIONS + 1), Just(0x7FFF_FFFF), Just(0x8000_0000),
            Just(u32::MAX - 15), Just(u32::MAX), 0u32..1024, any::<u32>(),
        ].prop_map(Edit::Set),
        2 => prop_oneof![Just(-16i32), Just(-1), Just(1), Just(16), -64i32..64].prop_map(Edit::Add),
    ]
}

fn apply_edit(bytes: &mut [u8], at: usize, width: usize, edit: Edit) {
    let mut word = [0u8; 4];
    word[..width].copy_from_slice(&bytes[at..at + width]);
    let value = match edit {
        Edit::Set(value) => value,
        Edit::Add(delta) => u32::from_le_bytes(word).wrapping_add_signed(delta),
    };
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// One writer input, hostile or not: any printable name (duplicates likely,
/// empty and over-long ones possible), any dtype, bits and rank, edge dims,
/// and a payload of the implied length (zero or random) or of any length.
fn hostile_spec() -> impl Strategy<Value = OwnedSection> {
    let name = prop_oneof![
        prop::sample::select(vec!["a", "b", "w.0"]).prop_map(str::to_owned),
        "[ -~]{0,34}",
        Just("x".repeat(32)),
    ];
    // `None`: the width the dtype needs (0, or a packed width).
    let bits = prop_oneof![4 => Just(None), 1 => any::<u8>().prop_map(Some)];
    let dim = prop_oneof![
        4 => 0u32..=9,
        1 => prop::sample::select(vec![1u32 << 16, 1 << 31, u32::MAX]),
    ];
    let payload = prop_oneof![Just(None), Just(Some(false)), Just(Some(true))];
    (
        name,
        dtype(),
        bits,
        prop::sample::select(BitWidth::ALL.to_vec()),
        prop::collection::vec(dim, 0..=5),
        payload,
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(name, dtype, bits, width, shape, payload, random)| {
            let bits = match (bits, dtype) {
                (Some(bits), _) => bits,
                (None, Dtype::Packed) => width.bits(),
                (None, _) => 0,
            };
            let implied = implied_len(dtype, bits, &shape).filter(|&n| n <= 4096);
            let data = match (payload, implied) {
                (Some(false), Some(n)) => vec![0u8; n],
                (Some(true), Some(n)) => random.iter().copied().cycle().take(n).collect(),
                _ => random,
            };
            OwnedSection {
                name,
                dtype,
                bits,
                shape,
                data,
            }
        })
}

/// Payload bytes the format implies for this dtype, bits and shape; `None`
/// where no payload is valid (rank above 4, a size past `u32`, a packed
/// section that is not `[rows, cols]` or has no packed bit width).
fn implied_len(dtype: Dtype, bits: u8, shape: &[u32]) -> Option<usize> {
    if shape.len() > 4 {
        return None;
    }
    let len = match dtype.element_size() {
        // Any zero dim makes the tensor empty, whatever the others are.
        Some(_) if shape.contains(&0) => 0,
        Some(size) => shape
            .iter()
            .try_fold(size as u64, |acc, &d| acc.checked_mul(u64::from(d)))?,
        None => {
            let (&[rows, cols], Some(bits)) = (shape, BitWidth::from_bits(bits)) else {
                return None;
            };
            tdquant_core::PackedLayout::new(bits, rows, cols)
                .byte_len()
                .ok()? as u64
        }
    };
    u32::try_from(len).ok().map(|len| len as usize)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn write_then_parse_round_trips(owned in sections(), slack in 0usize..64) {
        let specs = specs(&owned);
        let len = ContainerWriter::required_len(&specs).unwrap();
        let mut out = vec![0xEEu8; len + slack];
        prop_assert_eq!(ContainerWriter::write(&specs, &mut out), Ok(len));
        prop_assert!(out[len..].iter().all(|&b| b == 0xEE), "bytes past the file were touched");

        // Deterministic: independent of the buffer's previous contents.
        prop_assert_eq!(&out[..len], &write_vec(&specs)[..]);

        let container = Container::parse(&out[..len]).unwrap();
        prop_assert_eq!(container.section_count() as usize, owned.len());
        for (section, expected) in container.sections().zip(&owned) {
            prop_assert_eq!(section.name(), expected.name.as_str());
            prop_assert_eq!(section.dtype(), expected.dtype);
            prop_assert_eq!(section.bit_width().map_or(0, |b| b.bits()), expected.bits);
            prop_assert_eq!(section.shape(), &expected.shape[..]);
            prop_assert_eq!(section.data(), &expected.data[..]);
            prop_assert_eq!(container.get(&expected.name), Some(section));
        }
        // A checksum over the exact file.
        prop_assert_eq!(container.checksum(), {
            let mut copy = out[..len].to_vec();
            copy[20..24].fill(0);
            tdquant_core::crc32(&copy)
        });
        check_parsed(&out[..len])?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_parsed(&bytes)?;
    }

    #[test]
    fn arbitrary_tables_behind_a_valid_header_never_panic(
        count in 0u32..6,
        rest in prop::collection::vec(any::<u8>(), 0..700),
        zero_tail in any::<bool>(),
    ) {
        let mut bytes = b"TDQMODEL".to_vec();
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&rest);
        if zero_tail {
            // Zero the payload area so random tables that happen to be valid
            // are not all stopped by the padding check.
            let table_end = (32 + 64 * count as usize).min(bytes.len());
            bytes[table_end..].fill(0);
        }
        fix_len_and_crc(&mut bytes);
        check_parsed(&bytes)?;
    }

    #[test]
    fn mutated_files_never_panic(
        owned in sections(),
        mutations in prop::collection::vec(mutation(), 1..4),
        fixup in 0u8..3,
    ) {
        let mut bytes = write_vec(&specs(&owned));
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        match fixup {
            0 => {}
            1 => fix_crc(&mut bytes),
            _ => fix_len_and_crc(&mut bytes),
        }
        check_parsed(&bytes)?;
    }

    /// One field of the header or of one entry set to an edge value or
    /// nudged, with the CRC recomputed so the structural checks see it.
    #[test]
    fn hostile_fields_give_errors_that_name_them(
        owned in sections(),
        edits in prop::collection::vec((field(), edit(), any::<prop::sample::Index>()), 1..3),
        fix_len in any::<bool>(),
    ) {
        let mut bytes = write_vec(&specs(&owned));
        for (field, edit, pick) in edits {
            let (at, width) = match field {
                Field::Header(at, width) => (at, width),
                _ if owned.is_empty() => continue,
                Field::Entry(at, width) => (entry(pick.index(owned.len())) + at, width),
                Field::NameOfNext => {
                    let to = entry(pick.index(owned.len()));
                    let from = entry((pick.index(owned.len()) + 1) % owned.len());
                    bytes.copy_within(from..from + 32, to);
                    continue;
                }
            };
            apply_edit(&mut bytes, at, width, edit);
        }
        if fix_len {
            fix_len_and_crc(&mut bytes);
        } else {
            fix_crc(&mut bytes);
        }
        check_parsed(&bytes)?;
    }

    /// The writer on arbitrary specs: an error that names a spec which
    /// really breaks a rule (and nothing written), or a file that parses
    /// back to exactly the specs.
    #[test]
    fn writer_accepts_exactly_what_parses(
        owned in prop::collection::vec(hostile_spec(), 0..6),
    ) {
        let specs = specs(&owned);
        let mut out = vec![0xA5u8; 4096 * 6 + 1024];
        let written = ContainerWriter::write(&specs, &mut out);
        prop_assert_eq!(written, ContainerWriter::required_len(&specs));
        match written {
            Ok(len) => {
                let container = Container::parse(&out[..len]).unwrap();
                prop_assert_eq!(container.section_count() as usize, specs.len());
                for (section, spec) in container.sections().zip(&specs) {
                    prop_assert_eq!(section.name(), spec.name);
                    prop_assert_eq!(section.dtype(), spec.dtype);
                    prop_assert_eq!(section.bit_width().map_or(0, |b| b.bits()), spec.bits);
                    prop_assert_eq!(section.shape(), spec.shape);
                    prop_assert_eq!(section.data(), spec.data);
                }
                check_parsed(&out[..len])?;
            }
            Err(error) => {
                prop_assert!(out.iter().all(|&b| b == 0xA5), "{error:?}: bytes were written");
                check_writer_error(&specs, error)?;
            }
        }
    }

}

#[test]
fn empty_container() {
    let bytes = write_vec(&[]);
    assert_eq!(bytes.len(), 32);
    let container = Container::parse(&bytes).unwrap();
    assert_eq!(container.section_count(), 0);
    assert_eq!(container.sections().count(), 0);
}

/// The mutation fuzzing above is only meaningful if fixed-up mutations get
/// past the checksum into the structural checks. This deterministic sweep
/// over the reference file counts which checks fire.
#[test]
fn fixed_up_mutations_reach_structural_checks() {
    use std::collections::BTreeMap;

    let base = reference_file();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut next = move || rng.next();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20_000 {
        let mut bytes = base.clone();
        let at = (next() % bytes.len() as u64) as usize;
        match next() % 3 {
            0 => bytes[at] ^= (next() % 255 + 1) as u8,
            1 => bytes[at] = (next() % 8) as u8,
            _ => {
                let at = at / 4 * 4;
                let value = (next() % 400) as u32;
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        fix_crc(&mut bytes);
        let key = match Container::parse(&bytes) {
            Ok(_) => "Ok".to_owned(),
            Err(error) => format!("{error:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        *seen.entry(key).or_default() += 1;
        check_parsed(&bytes).unwrap();
    }
    println!("{seen:#?}");
    for variant in [
        "Ok",
        "BadMagic",
        "UnsupportedVersion",
        "UnsupportedFlags",
        "LengthMismatch",
        "NonZeroReserved",
        "SectionTableOutOfBounds",
        "TooManySections",
        "BadSectionName",
        "DuplicateSectionName",
        "UnsupportedDtype",
        "UnsupportedBitWidth",
        "ShapeMismatch",
        "MisalignedSection",
        "SectionOutOfBounds",
        "OverlappingSections",
        "NonZeroPadding",
        "InvalidPackedSection",
    ] {
        assert!(
            seen.contains_key(variant),
            "{variant} never reached: {seen:?}"
        );
    }
}

/// The largest table the format allows is accepted, and the duplicate-name
/// check (quadratic, bounded by `MAX_SECTIONS`) still finds a clash between
/// the first and the last entry.
#[test]
fn max_sections_worst_case() {
    let names: Vec<String> = (0..MAX_SECTIONS).map(|i| format!("s{i}")).collect();
    let specs: Vec<SectionSpec<'_>> = names
        .iter()
        .map(|name| SectionSpec::new(name, Dtype::U8, &[0], &[]))
        .collect();
    let mut bytes = write_vec(&specs);
    assert_eq!(
        bytes.len(),
        HEADER_LEN + SECTION_ENTRY_LEN * MAX_SECTIONS as usize
    );
    let start = std::time::Instant::now();
    let container = Container::parse(&bytes).unwrap();
    println!("{MAX_SECTIONS} sections parsed in {:?}", start.elapsed());
    assert_eq!(container.section_count(), MAX_SECTIONS);
    let last = container.get("s4095").unwrap();
    assert_eq!(last.data(), &[] as &[u8]);

    let at = entry(MAX_SECTIONS as usize - 1);
    bytes[at..at + 32].fill(0);
    bytes[at..at + 2].copy_from_slice(b"s0");
    fix_crc(&mut bytes);
    assert_eq!(
        Container::parse(&bytes),
        Err(ContainerError::DuplicateSectionName {
            section: MAX_SECTIONS - 1,
            first: 0
        })
    );
}
