//! CPU parity of the kernels' per-element arithmetic: `tdq_arith.cuh`,
//! compiled for the host by build.rs, against the `tdquant-core` oracle with
//! `==`. Proptest (≥ 1,000 cases per function) plus exhaustive grids of
//! extremes. No GPU needed: this is the CI half of the GPU parity proof.

mod common;

use common::*;
use proptest::prelude::*;
use tdquant_core::requant::{MAX_SHIFT, MIN_SHIFT};
use tdquant_core::{
    apply_parts, apply_parts_i32, BitWidth, PackedLayout, PackedWord, Requantizer, RoundingMode,
};
use tdquant_gpu::host_arith;

const CASES: u32 = 4_000;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        ..ProptestConfig::default()
    }
}

/// The mask `PackedMatrix::new` checks on word `word` of a row (core's
/// logic, restated from core/src/packed.rs `check_padding`).
fn core_row_word_padding(bits: BitWidth, cols: u32, word: u32) -> Option<u32> {
    let layout = PackedLayout::new(bits, 1, cols);
    let wpr = layout.words_per_row();
    if word >= wpr {
        return None;
    }
    let cpw = bits.codes_per_word();
    let last_used = match bits.locate(cols).1 {
        0 => cpw,
        partial => partial,
    };
    let used = if word + 1 == wpr { last_used } else { cpw };
    Some(PackedWord::padding_mask(bits, used))
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn apply_parts_match_core(
        a32 in acc_i32(), a64 in acc_i64(), m in multiplier(), ts in total_shift(), r in rounding()
    ) {
        let case = format!("multiplier={m}, total_shift={ts}, {r:?}");
        prop_assert_eq!(host_arith::apply_parts_i32(a32, m, ts, r), apply_parts_i32(a32, m, ts, r), "apply_parts_i32(acc={}, {})", a32, case);
        prop_assert_eq!(host_arith::apply_parts(a64, m, ts, r), apply_parts(a64, m, ts, r), "apply_parts(acc={}, {})", a64, case);
    }

    #[test]
    fn requantizer_methods_match_core(
        rq in requantizer(), a32 in acc_i32(), a64 in acc_i64(), (lo, hi) in clamp_bounds()
    ) {
        prop_assert_eq!(host_arith::requant_i32(rq, a32), rq.apply_i32(a32), "apply_i32({}) with {:?}", a32, rq);
        prop_assert_eq!(host_arith::requant_i64(rq, a64), rq.apply_i64(a64), "apply_i64({}) with {:?}", a64, rq);
        prop_assert_eq!(
            host_arith::requant_i32_clamp(rq, a32, lo, hi),
            rq.apply_i32_saturating_to(a32, lo, hi),
            "apply_i32_saturating_to({}, {}, {}) with {:?}", a32, lo, hi, rq
        );
    }

    #[test]
    fn word_code_matches_core(word in any::<u32>(), bits in bit_width(), slot in 0u32..20) {
        prop_assert_eq!(
            host_arith::word_code(word, bits, slot),
            PackedWord(word).code(bits, slot),
            "code(word={:#010x}, {}-bit, slot {})", word, bits.bits(), slot
        );
    }

    #[test]
    fn layout_helpers_match_core(bits in bit_width(), cols in prop_oneof![0u32..200, any::<u32>()], used in 0u32..40, word in 0u32..30) {
        prop_assert_eq!(host_arith::codes_per_word(bits), bits.codes_per_word());
        prop_assert_eq!(host_arith::words_per_row(bits, cols), PackedLayout::new(bits, 1, cols).words_per_row(), "words_per_row({}-bit, {})", bits.bits(), cols);
        prop_assert_eq!(host_arith::padding_mask(bits, used), PackedWord::padding_mask(bits, used), "padding_mask({}-bit, used {})", bits.bits(), used);
        let cols = cols % 200;
        prop_assert_eq!(
            host_arith::row_word_padding(bits, cols, word),
            core_row_word_padding(bits, cols, word),
            "row padding mask ({}-bit, cols {}, word {})", bits.bits(), cols, word
        );
    }

    #[test]
    fn load_le32_matches_core(bytes in any::<[u8; 4]>()) {
        prop_assert_eq!(host_arith::load_le32(bytes), PackedWord::from_le_bytes(bytes).0);
    }
}

/// One panic listing every mismatch of a grid (up to 10 shown).
fn assert_grid(name: &str, checked: usize, mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{name}: {} of {checked} inputs differ from core; first ones:\n  {}",
        mismatches.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    println!("{name}: {checked} inputs equal to core");
}

fn shifts_grid() -> Vec<i32> {
    let mut shifts: Vec<i32> = (-70..=130).collect();
    shifts.extend([
        i32::MIN,
        i32::MIN + 1,
        -1_000,
        1_000,
        i32::MAX - 1,
        i32::MAX,
    ]);
    shifts
}

/// `shim` against `core` on every (accumulator, multiplier, shift, rounding)
/// of the extremes grid.
fn check_apply_grid<A: Copy + std::fmt::Display, T: PartialEq + std::fmt::Display>(
    name: &str,
    accs: &[A],
    shim: impl Fn(A, i32, i32, RoundingMode) -> T,
    core: impl Fn(A, i32, i32, RoundingMode) -> T,
) {
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for &acc in accs {
        for m in MULTIPLIER_EXTREMES {
            for ts in shifts_grid() {
                for r in ROUNDINGS {
                    checked += 1;
                    let (got, want) = (shim(acc, m, ts, r), core(acc, m, ts, r));
                    if got != want {
                        mismatches.push(format!(
                            "{name}(acc={acc}, m={m}, ts={ts}, {r:?}): shim {got}, core {want}"
                        ));
                    }
                }
            }
        }
    }
    assert_grid(&format!("{name} extremes"), checked, &mismatches);
}

#[test]
fn apply_parts_i32_extremes_grid() {
    let mut accs: Vec<i32> = I32_EXTREMES.to_vec();
    accs.extend(-40..=40);
    check_apply_grid(
        "apply_parts_i32",
        &accs,
        host_arith::apply_parts_i32,
        apply_parts_i32,
    );
}

#[test]
fn apply_parts_i64_extremes_grid() {
    let mut accs: Vec<i64> = I64_EXTREMES.to_vec();
    accs.extend(I32_EXTREMES.iter().map(|&a| i64::from(a)));
    accs.extend(-20..=20);
    check_apply_grid("apply_parts", &accs, host_arith::apply_parts, apply_parts);
}

/// Exact ties k + 1/2 for every right shift the 64-bit fast path takes and
/// the 128-bit path next to it: acc · 2^(ts−1) · odd / 2^ts.
#[test]
fn ties_every_shift() {
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for ts in 1..=126 {
        for m in [1i32 << 30, 3 << 29, i32::MAX, -(1 << 30)] {
            for acc in -257i32..=257 {
                for r in ROUNDINGS {
                    checked += 2;
                    let got = host_arith::apply_parts_i32(acc, m, ts, r);
                    let want = apply_parts_i32(acc, m, ts, r);
                    if got != want {
                        mismatches.push(format!(
                            "i32 acc={acc} m={m} ts={ts} {r:?}: {got} vs {want}"
                        ));
                    }
                    let wide = i64::from(acc) << 31 | 1 << 30;
                    let got = host_arith::apply_parts(wide, m, ts, r);
                    let want = apply_parts(wide, m, ts, r);
                    if got != want {
                        mismatches.push(format!(
                            "i64 acc={wide} m={m} ts={ts} {r:?}: {got} vs {want}"
                        ));
                    }
                }
            }
        }
    }
    assert_grid("ties at every shift", checked, &mismatches);
}

#[test]
fn every_requantizer_shift() {
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for shift in MIN_SHIFT..=MAX_SHIFT {
        for m in [1 << 30, (1 << 30) + 12_345, i32::MAX] {
            for r in ROUNDINGS {
                let rq = Requantizer::from_parts(m, shift, r).unwrap();
                for acc in I32_EXTREMES {
                    checked += 2;
                    if host_arith::requant_i32(rq, acc) != rq.apply_i32(acc) {
                        mismatches.push(format!("apply_i32({acc}) with {rq:?}"));
                    }
                    if host_arith::requant_i32_clamp(rq, acc, -128, 127)
                        != rq.apply_i32_saturating_to(acc, -128, 127)
                    {
                        mismatches.push(format!(
                            "apply_i32_saturating_to({acc}, -128, 127) with {rq:?}"
                        ));
                    }
                }
                for acc in I64_EXTREMES {
                    checked += 1;
                    if host_arith::requant_i64(rq, acc) != rq.apply_i64(acc) {
                        mismatches.push(format!("apply_i64({acc}) with {rq:?}"));
                    }
                }
            }
        }
    }
    assert_grid("every requantizer shift", checked, &mismatches);
}

#[test]
fn every_code_slot_and_padding_mask() {
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let words = [
        0u32,
        u32::MAX,
        0xAAAA_AAAA,
        0x5555_5555,
        0x8000_0001,
        0x3FFF_FFFF,
        0xDEAD_BEEF,
    ];
    for bits in BitWidth::ALL {
        for slot in 0..=bits.codes_per_word() + 1 {
            for word in words {
                checked += 1;
                if host_arith::word_code(word, bits, slot) != PackedWord(word).code(bits, slot) {
                    mismatches.push(format!("code({word:#x}, {}-bit, slot {slot})", bits.bits()));
                }
            }
        }
        for used in 0..=bits.codes_per_word() + 2 {
            checked += 1;
            if host_arith::padding_mask(bits, used) != PackedWord::padding_mask(bits, used) {
                mismatches.push(format!("padding_mask({}-bit, used {used})", bits.bits()));
            }
        }
        for cols in 0..=4 * bits.codes_per_word() + 1 {
            for word in 0..6 {
                checked += 1;
                if host_arith::row_word_padding(bits, cols, word)
                    != core_row_word_padding(bits, cols, word)
                {
                    mismatches.push(format!(
                        "row padding({}-bit, cols {cols}, word {word})",
                        bits.bits()
                    ));
                }
            }
        }
    }
    assert_grid("code slots and padding masks", checked, &mismatches);
}
