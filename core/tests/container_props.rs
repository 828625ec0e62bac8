//! Property tests of the `.tdq` container: write → parse round trips, and
//! "Ok or Err, never panic" on arbitrary and mutated inputs.

mod common;

use common::*;
use proptest::prelude::*;
use tdquant_core::container::ALIGN;
use tdquant_core::{BitWidth, Container, ContainerWriter, Dtype, PackedMatrix, SectionSpec};

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
    let Ok(container) = Container::parse(bytes) else {
        return Ok(());
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
