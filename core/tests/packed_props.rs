//! Packing layout tests: exhaustive row lengths, property tests, edge cases
//! and hand-checked bytes, all against a naive bit-by-bit reference.

mod common;

use common::Rng;
use proptest::prelude::*;
use tdquant_core::{
    get_code, pack_codes, unpack_codes, BitWidth, PackError, PackedLayout, PackedMatrix,
};

/// The layout spelled out bit by bit, independently of the crate: element j
/// of row r sits at bit (j % cpw)·b of word j / cpw of that row.
fn reference_pack(layout: PackedLayout, codes: &[u8]) -> Vec<u8> {
    let b = usize::from(layout.bits.bits());
    let cpw = 32 / b;
    let cols = layout.cols as usize;
    let words_per_row = cols.div_ceil(cpw);
    let mut out = vec![0u8; layout.rows as usize * words_per_row * 4];
    for r in 0..layout.rows as usize {
        for j in 0..cols {
            let code = codes[r * cols + j];
            for bit in 0..b {
                if code >> bit & 1 == 1 {
                    let word = r * words_per_row + j / cpw;
                    let bit_in_word = (j % cpw) * b + bit;
                    out[word * 4 + bit_in_word / 8] |= 1 << (bit_in_word % 8);
                }
            }
        }
    }
    out
}

/// Fails with the first differing index (and its row/column), expected vs
/// got, and a few neighbours, instead of two unreadable dumps.
fn assert_same(what: &str, layout: PackedLayout, expected: &[u8], got: &[u8], per_row: usize) {
    if expected == got {
        return;
    }
    let first = expected
        .iter()
        .zip(got)
        .position(|(e, g)| e != g)
        .unwrap_or(expected.len().min(got.len()));
    // per_row == 0 means "not a code matrix": report the flat index.
    let (row, col) = first
        .checked_div(per_row)
        .map_or((0, first), |row| (row, first % per_row));
    let lo = first.saturating_sub(4);
    let hi_e = (first + 5).min(expected.len());
    let hi_g = (first + 5).min(got.len());
    panic!(
        "{what} differs for {layout:?}: lengths expected {} got {}; first difference at index {first} (row {row}, col/byte {col}): expected {:?}, got {:?}\n  expected[{lo}..]: {:?}\n  got     [{lo}..]: {:?}",
        expected.len(),
        got.len(),
        expected.get(first),
        got.get(first),
        &expected[lo.min(hi_e)..hi_e],
        &got[lo.min(hi_g)..hi_g],
    );
}

/// Packs, unpacks and reads back every code in every way the crate offers.
fn check_round_trip(layout: PackedLayout, codes: &[u8]) {
    let bytes = layout.byte_len().unwrap();
    let mut packed = vec![0xA5u8; bytes];
    pack_codes(layout, codes, &mut packed).unwrap();
    assert_same(
        "packed bytes",
        layout,
        &reference_pack(layout, codes),
        &packed,
        0,
    );

    let mut unpacked = vec![0xA5u8; codes.len()];
    unpack_codes(layout, &packed, &mut unpacked).unwrap();
    let cols = layout.cols as usize;
    assert_same("unpacked codes", layout, codes, &unpacked, cols);

    let matrix = PackedMatrix::new(layout, &packed).unwrap();
    let mut via_get = Vec::with_capacity(codes.len());
    let mut via_matrix = Vec::with_capacity(codes.len());
    let mut via_rows = Vec::with_capacity(codes.len());
    for row in 0..layout.rows {
        let row_codes = matrix.row_codes(row).unwrap();
        assert_eq!(row_codes.len(), cols);
        via_rows.extend(row_codes);
        for col in 0..layout.cols {
            via_get.push(get_code(layout, &packed, row, col).unwrap());
            via_matrix.push(matrix.code(row, col).unwrap());
        }
    }
    assert_same("get_code", layout, codes, &via_get, cols);
    assert_same("PackedMatrix::code", layout, codes, &via_matrix, cols);
    assert_same("PackedMatrix::row_codes", layout, codes, &via_rows, cols);
    let via_typed: Vec<u8> = match layout.bits {
        BitWidth::B2 => typed_codes::<2>(&matrix),
        BitWidth::B3 => typed_codes::<3>(&matrix),
        BitWidth::B4 => typed_codes::<4>(&matrix),
        BitWidth::B8 => typed_codes::<8>(&matrix),
    };
    assert_same("TypedPackedMatrix::code", layout, codes, &via_typed, cols);

    // One past the end in each direction is rejected, not wrapped.
    assert_eq!(
        get_code(layout, &packed, layout.rows, 0),
        Err(PackError::IndexOutOfBounds {
            row: layout.rows,
            col: 0,
            rows: layout.rows,
            cols: layout.cols
        })
    );
    assert!(get_code(layout, &packed, 0, layout.cols).is_err());
    assert_eq!(matrix.code(0, layout.cols), None);
    assert!(matrix.row_codes(layout.rows).is_none());
}

fn typed_codes<const BITS: u8>(matrix: &PackedMatrix<'_>) -> Vec<u8> {
    let typed = matrix.typed::<BITS>().unwrap();
    let layout = typed.layout();
    (0..layout.rows)
        .flat_map(|row| (0..layout.cols).map(move |col| (row, col)))
        .map(|(row, col)| typed.code(row, col).unwrap())
        .collect()
}

/// Deterministic pseudo-random codes (xorshift), so the exhaustive sweep
/// needs no proptest runner.
fn pseudo_random_codes(seed: u64, count: usize, max: u8) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..count)
        .map(|_| rng.below(u64::from(max) + 1) as u8)
        .collect()
}

#[test]
fn every_width_and_row_length_1_to_257() {
    for bits in BitWidth::ALL {
        for cols in 1..=257u32 {
            for rows in [1u32, 3] {
                let layout = PackedLayout::new(bits, rows, cols);
                let codes = pseudo_random_codes(
                    u64::from(cols) * 31 + u64::from(bits.bits()),
                    (rows * cols) as usize,
                    bits.max_code(),
                );
                check_round_trip(layout, &codes);
            }
        }
    }
}

#[test]
fn edge_shapes() {
    for bits in BitWidth::ALL {
        let cpw = bits.codes_per_word();
        let max = bits.max_code();
        for cols in [1, cpw - 1, cpw, cpw + 1, 2 * cpw, 2 * cpw + 1, 7 * cpw] {
            for rows in [1u32, 2, 4] {
                let layout = PackedLayout::new(bits, rows, cols);
                let n = (rows * cols) as usize;
                // All-max codes: every code bit set, padding still zero.
                check_round_trip(layout, &vec![max; n]);
                check_round_trip(layout, &vec![0; n]);
                // Alternating extremes expose shifted-by-one-slot bugs.
                let alternating: Vec<u8> =
                    (0..n).map(|i| if i % 2 == 0 { max } else { 0 }).collect();
                check_round_trip(layout, &alternating);
                let ramp: Vec<u8> = (0..n).map(|i| (i % (usize::from(max) + 1)) as u8).collect();
                check_round_trip(layout, &ramp);
            }
        }
        // Words per row is exact at multiples of cpw and rounds up otherwise.
        assert_eq!(PackedLayout::new(bits, 1, cpw).words_per_row(), 1);
        assert_eq!(PackedLayout::new(bits, 1, cpw + 1).words_per_row(), 2);
        assert_eq!(PackedLayout::new(bits, 1, cpw - 1).words_per_row(), 1);
        assert_eq!(PackedLayout::new(bits, 1, 0).words_per_row(), 0);
    }
}

#[test]
fn hand_checked_bytes() {
    // 2-bit: codes 0,1,2,3 repeated → each byte is 0b11_10_01_00 = 0xE4.
    let layout = PackedLayout::new(BitWidth::B2, 1, 16);
    let codes: Vec<u8> = (0..16).map(|i| (i % 4) as u8).collect();
    let mut out = [0u8; 4];
    pack_codes(layout, &codes, &mut out).unwrap();
    assert_eq!(out, [0xE4; 4]);

    // 3-bit, all max, 10 codes → 0x3FFF_FFFF (top two bits padding).
    let layout = PackedLayout::new(BitWidth::B3, 2, 10);
    let mut out = [0u8; 8];
    pack_codes(layout, &[7; 20], &mut out).unwrap();
    assert_eq!(out, [0xFF, 0xFF, 0xFF, 0x3F, 0xFF, 0xFF, 0xFF, 0x3F]);

    // 3-bit codes crossing byte boundaries: c0=5 (bits 0-2), c1=3 (3-5),
    // c2=6 (6-8: crosses into byte 1) → 0b1_10_011_101 = 0x19D.
    let layout = PackedLayout::new(BitWidth::B3, 1, 3);
    let mut out = [0u8; 4];
    pack_codes(layout, &[5, 3, 6], &mut out).unwrap();
    assert_eq!(u32::from_le_bytes(out), 0b110_011_101);

    // 8-bit: plain bytes, tail zero-padded, each row word-aligned.
    let layout = PackedLayout::new(BitWidth::B8, 2, 5);
    let mut out = [0u8; 16];
    pack_codes(layout, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &mut out).unwrap();
    assert_eq!(out, [1, 2, 3, 4, 5, 0, 0, 0, 6, 7, 8, 9, 10, 0, 0, 0]);
}

#[test]
fn empty_matrices() {
    for bits in BitWidth::ALL {
        for (rows, cols) in [(0, 0), (0, 5), (5, 0)] {
            let layout = PackedLayout::new(bits, rows, cols);
            assert_eq!(layout.byte_len(), Ok(0));
            pack_codes(layout, &[], &mut []).unwrap();
            unpack_codes(layout, &[], &mut []).unwrap();
            let matrix = PackedMatrix::new(layout, &[]).unwrap();
            assert_eq!(matrix.code(0, 0), None);
        }
    }
}

#[test]
fn length_errors() {
    let layout = PackedLayout::new(BitWidth::B4, 2, 9); // 2 words per row
    let mut out = [0u8; 16];
    assert_eq!(
        pack_codes(layout, &[0; 17], &mut out),
        Err(PackError::CodesLengthMismatch {
            expected: 18,
            actual: 17
        })
    );
    assert_eq!(
        pack_codes(layout, &[0; 18], &mut [0u8; 15]),
        Err(PackError::OutputLengthMismatch {
            expected: 16,
            actual: 15
        })
    );
    assert_eq!(
        unpack_codes(layout, &[0; 17], &mut [0u8; 18]),
        Err(PackError::PackedLengthMismatch {
            expected: 16,
            actual: 17
        })
    );
    assert_eq!(
        unpack_codes(layout, &[0; 16], &mut [0u8; 19]),
        Err(PackError::OutputLengthMismatch {
            expected: 18,
            actual: 19
        })
    );
    assert!(matches!(
        get_code(layout, &[0; 12], 0, 0),
        Err(PackError::PackedLengthMismatch { .. })
    ));
}

#[test]
fn nonzero_padding_is_rejected() {
    // 3-bit, 11 columns: word 0 has 2 padding bits, word 1 has 29.
    let layout = PackedLayout::new(BitWidth::B3, 2, 11);
    let mut packed = [0u8; 16];
    pack_codes(layout, &[7; 22], &mut packed).unwrap();
    assert!(PackedMatrix::new(layout, &packed).is_ok());
    for (byte, bit, row, word) in [
        (3, 6, 0, 0),
        (3, 7, 0, 0),
        (4, 3, 0, 1),
        (7, 7, 0, 1),
        (15, 0, 1, 1),
        (11, 7, 1, 0),
    ] {
        let mut bad = packed;
        bad[byte] ^= 1 << bit;
        let value = u32::from_le_bytes(bad[byte / 4 * 4..byte / 4 * 4 + 4].try_into().unwrap());
        let expected = Err(PackError::NonZeroPadding { row, word, value });
        assert_eq!(
            PackedMatrix::new(layout, &bad).map(|_| ()),
            expected,
            "byte {byte} bit {bit}"
        );
        assert_eq!(unpack_codes(layout, &bad, &mut [0u8; 22]), expected);
        // get_code is O(1) and deliberately does not scan padding.
        assert_eq!(get_code(layout, &bad, 0, 0), Ok(7));
    }
}

fn layout_and_codes() -> impl Strategy<Value = (PackedLayout, Vec<u8>)> {
    (
        prop::sample::select(BitWidth::ALL.to_vec()),
        1u32..=4,
        1u32..=257,
    )
        .prop_flat_map(|(bits, rows, cols)| {
            let layout = PackedLayout::new(bits, rows, cols);
            let n = (rows * cols) as usize;
            (Just(layout), prop::collection::vec(0..=bits.max_code(), n))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn round_trip((layout, codes) in layout_and_codes()) {
        check_round_trip(layout, &codes);
    }

    #[test]
    fn out_of_range_codes_are_rejected(
        (layout, mut codes) in layout_and_codes(),
        position in any::<prop::sample::Index>(),
        excess in any::<u8>(),
    ) {
        let max = layout.bits.max_code();
        prop_assume!(max < u8::MAX);
        let index = position.index(codes.len());
        // Any value in max+1..=255.
        let value = max + 1 + excess % (u8::MAX - max);
        codes[index] = value;
        let mut out = vec![0x5Au8; layout.byte_len().unwrap()];
        let result = pack_codes(layout, &codes, &mut out);
        let cols = layout.cols as usize;
        prop_assert_eq!(
            result,
            Err(PackError::CodeOutOfRange {
                row: (index / cols) as u32,
                col: (index % cols) as u32,
                value,
                max,
            })
        );
        // Nothing was written.
        prop_assert!(out.iter().all(|&b| b == 0x5A));
    }

    #[test]
    fn get_code_agrees_with_unpack(
        (layout, codes) in layout_and_codes(),
        row in 0u32..6,
        col in 0u32..300,
    ) {
        let mut packed = vec![0u8; layout.byte_len().unwrap()];
        pack_codes(layout, &codes, &mut packed).unwrap();
        let mut unpacked = vec![0u8; codes.len()];
        unpack_codes(layout, &packed, &mut unpacked).unwrap();
        let got = get_code(layout, &packed, row, col);
        if row < layout.rows && col < layout.cols {
            prop_assert_eq!(got, Ok(unpacked[(row * layout.cols + col) as usize]));
        } else {
            prop_assert_eq!(got, Err(PackError::IndexOutOfBounds {
                row, col, rows: layout.rows, cols: layout.cols,
            }));
        }
    }

    #[test]
    fn flipping_any_bit_is_caught_or_changes_exactly_one_code(
        (layout, codes) in layout_and_codes(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut packed = vec![0u8; layout.byte_len().unwrap()];
        pack_codes(layout, &codes, &mut packed).unwrap();
        let bit = bit.index(packed.len() * 8);
        packed[bit / 8] ^= 1 << (bit % 8);
        let mut unpacked = vec![0u8; codes.len()];
        match unpack_codes(layout, &packed, &mut unpacked) {
            Err(PackError::NonZeroPadding { .. }) => {}
            Ok(()) => {
                let differing = codes.iter().zip(&unpacked).filter(|(a, b)| a != b).count();
                prop_assert_eq!(differing, 1);
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}
