//! Parity harness shared by the host-kernel tests (CI, no GPU) and the CUDA
//! tests: strategies, the comparisons against `CpuReference`, and readable
//! diffs. Each `check_*` returns `Err(report)` on the first difference.
#![allow(dead_code)] // each test crate uses a subset

use std::fmt::{Debug, Display, LowerHex};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tdquant_core::requant::{MAX_SHIFT, MIN_SHIFT};
use tdquant_core::{pack_codes, BitWidth, PackedLayout, PackedWord, Requantizer, RoundingMode};
use tdquant_gpu::{CpuReference, GpuError, GpuOperators, Operator};

/// Accumulators that stress rounding and saturation.
pub const I32_EXTREMES: [i32; 17] = [
    i32::MIN,
    i32::MIN + 1,
    i32::MIN / 2,
    -(1 << 24) - 1,
    -65_537,
    -3,
    -2,
    -1,
    0,
    1,
    2,
    3,
    65_537,
    1 << 24,
    i32::MAX / 2,
    i32::MAX - 1,
    i32::MAX,
];

/// 64-bit accumulators that stress the 95-bit product and saturation.
pub const I64_EXTREMES: [i64; 15] = [
    i64::MIN,
    i64::MIN + 1,
    i64::MIN / 2,
    -(1 << 62) - 1,
    -(1 << 32),
    i32::MIN as i64 - 1,
    -1,
    0,
    1,
    i32::MAX as i64 + 1,
    1 << 32,
    (1 << 62) + 1,
    i64::MAX / 2,
    i64::MAX - 1,
    i64::MAX,
];

/// Multipliers at the edges of i32 and of the normalized range.
pub const MULTIPLIER_EXTREMES: [i32; 12] = [
    i32::MIN,
    i32::MIN + 1,
    -(1 << 30),
    -1,
    0,
    1,
    3,
    1 << 30,
    (1 << 30) + 1,
    3 << 29,
    i32::MAX - 1,
    i32::MAX,
];

/// Both tie rules.
pub const ROUNDINGS: [RoundingMode; 2] = [RoundingMode::HalfUp, RoundingMode::HalfEven];

pub fn rounding() -> impl Strategy<Value = RoundingMode> {
    prop_oneof![Just(RoundingMode::HalfUp), Just(RoundingMode::HalfEven)]
}

pub fn acc_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => any::<i32>(),
        2 => -5_000i32..5_000,
        1 => proptest::sample::select(I32_EXTREMES.to_vec()),
    ]
}

pub fn acc_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        2 => any::<i32>().prop_map(i64::from),
        1 => -5_000i64..5_000,
        1 => proptest::sample::select(I64_EXTREMES.to_vec()),
    ]
}

/// Any multiplier (apply_parts is total), biased to the normalized range.
pub fn multiplier() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => (1i32 << 30)..=i32::MAX,
        2 => any::<i32>(),
        1 => proptest::sample::select(MULTIPLIER_EXTREMES.to_vec()),
    ]
}

/// Any total shift, biased to the range requantizers use (−32..=126) and
/// its edges.
pub fn total_shift() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => -70i32..=130,
        1 => any::<i32>(),
        1 => proptest::sample::select(vec![i32::MIN, -65, -64, -63, -1, 0, 1, 62, 63, 64, 126, 127, i32::MAX]),
    ]
}

/// A valid requantizer: every shift, multipliers across [2^30, 2^31), or
/// one built from a real scale.
pub fn requantizer() -> impl Strategy<Value = Requantizer> {
    prop_oneof![
        3 => ((1i32 << 30)..=i32::MAX, MIN_SHIFT..=MAX_SHIFT, rounding()).prop_map(
            |(m, s, r)| Requantizer::from_parts(m, s, r).expect("valid parts")
        ),
        1 => (-39.0f64..19.0, rounding()).prop_map(|(e, r)| {
            Requantizer::from_scale_with_rounding(2f64.powf(e), r).expect("scale in range")
        }),
    ]
}

/// Clamp bounds, including `min > max` (min wins) and the int8/int16 ones.
pub fn clamp_bounds() -> impl Strategy<Value = (i32, i32)> {
    prop_oneof![
        2 => Just((-128, 127)),
        1 => Just((-32_768, 32_767)),
        1 => Just((0, 255)),
        2 => (any::<i32>(), any::<i32>()),
        1 => (-100i32..100, -100i32..100),
    ]
}

pub fn bit_width() -> impl Strategy<Value = BitWidth> {
    proptest::sample::select(BitWidth::ALL.to_vec())
}

/// A packed matrix: shape, valid codes (biased to 0 and the maximum), and
/// optionally one padding bit set (chosen among the matrix's padding bits
/// by `corrupt`, if it has any).
#[derive(Debug, Clone)]
pub struct PackedCase {
    pub layout: PackedLayout,
    pub packed: Vec<u8>,
    /// (byte, bit) set on purpose in a padding position, if any.
    pub corrupted: Option<(usize, u8)>,
}

pub fn packed_case(max_rows: u32, max_cols: u32) -> impl Strategy<Value = PackedCase> {
    (bit_width(), 0..=max_rows, 0..=max_cols)
        .prop_flat_map(|(bits, rows, cols)| {
            let n = (rows * cols) as usize;
            let max = bits.max_code();
            let code = prop_oneof![
                3 => 0..=max,
                1 => Just(max),
                1 => Just(0u8),
            ];
            (
                Just(PackedLayout::new(bits, rows, cols)),
                proptest::collection::vec(code, n),
                proptest::option::weighted(0.3, any::<u64>()),
            )
        })
        .prop_map(|(layout, codes, corrupt)| make_case(layout, &codes, corrupt))
}

/// Packs `codes` with the core packer and sets padding bit number
/// `corrupt % (number of padding bits)` if asked and possible.
pub fn make_case(layout: PackedLayout, codes: &[u8], corrupt: Option<u64>) -> PackedCase {
    let mut packed = vec![0u8; layout.byte_len().expect("small layout")];
    pack_codes(layout, codes, &mut packed).expect("valid codes");
    let corrupted = corrupt.and_then(|seed| {
        let padding = padding_bits(layout);
        let count = padding.len() as u64;
        let (byte, bit) = *padding.get((seed % count.max(1)) as usize)?;
        packed[byte] |= 1 << bit;
        Some((byte, bit))
    });
    PackedCase {
        layout,
        packed,
        corrupted,
    }
}

/// Every padding bit of the packed form of `layout`, as (byte, bit).
pub fn padding_bits(layout: PackedLayout) -> Vec<(usize, u8)> {
    let cpw = layout.codes_per_word();
    let wpr = layout.words_per_row();
    let mut out = Vec::new();
    for row in 0..layout.rows {
        for word in 0..wpr {
            let used = (layout.cols - word * cpw).min(cpw);
            let mask = PackedWord::padding_mask(layout.bits, used);
            let base = ((row * wpr + word) * 4) as usize;
            for bit in 0..32u8 {
                if mask & (1 << bit) != 0 {
                    out.push((base + usize::from(bit / 8), bit % 8));
                }
            }
        }
    }
    out
}

/// `Err` naming the first differing element (with its input), how many
/// differ, and a few more indices.
pub fn diff_slices<T: PartialEq + Debug>(
    what: &str,
    got: &[T],
    want: &[T],
    input: impl Fn(usize) -> String,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: length {} (backend) vs {} (oracle)",
            got.len(),
            want.len()
        ));
    }
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    let Some(&first) = bad.first() else {
        return Ok(());
    };
    let more: Vec<String> = bad.iter().skip(1).take(8).map(|i| i.to_string()).collect();
    Err(format!(
        "{what}: {} of {} elements differ.\n  first at [{first}] ({})\n    backend: {:?}\n    oracle:  {:?}\n  next differing indices: [{}]",
        bad.len(),
        got.len(),
        input(first),
        got[first],
        want[first],
        more.join(", ")
    ))
}

fn compare_results(
    what: &str,
    got: &Result<(), GpuError>,
    want: &Result<(), GpuError>,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: result differs\n    backend: {got:?}\n    oracle:  {want:?}"
        ))
    }
}

/// Unpack with `backend` and with the oracle into sentinel-filled buffers
/// of `out_len` bytes (normally `rows · cols`): same result, same bytes
/// (on error: both untouched).
pub fn check_unpack(
    backend: &dyn GpuOperators,
    case: &PackedCase,
    out_len: usize,
) -> Result<(), String> {
    let mut got = vec![0xA5u8; out_len];
    let mut want = vec![0xA5u8; out_len];
    let unpack = |out| Operator::UnpackCodes {
        layout: case.layout,
        packed: &case.packed,
        out,
    };
    let r_got = backend.run_operator(unpack(&mut got));
    let r_want = CpuReference.run_operator(unpack(&mut want));
    let what = format!(
        "unpack {}-bit [{}, {}] (corrupted padding bit: {:?})",
        case.layout.bits.bits(),
        case.layout.rows,
        case.layout.cols,
        case.corrupted
    );
    compare_results(&what, &r_got, &r_want)?;
    let cols = case.layout.cols.max(1) as usize;
    diff_slices(&what, &got, &want, |i| {
        format!("row {}, col {}", i / cols, i % cols)
    })
}

/// `op` and the requantizer, for failure messages.
fn requant_case(op: &str, rq: Requantizer) -> String {
    format!("{op} with {rq:?} (total shift {})", rq.total_shift())
}

/// `check_requant_i32` and `check_requant_i64`: the plain requantizations,
/// which differ only in the accumulator type and the operator.
macro_rules! check_requant_plain {
    ($name:ident, $acc:ty, $op:literal, $variant:ident) => {
        pub fn $name(
            backend: &dyn GpuOperators,
            rq: Requantizer,
            acc: &[$acc],
        ) -> Result<(), String> {
            let what = requant_case($op, rq);
            check_requant(backend, &what, acc, 0x5A5Ai64, |acc, out| {
                Operator::$variant { rq, acc, out }
            })
        }
    };
}

check_requant_plain!(check_requant_i32, i32, "requantize_i32", RequantizeI32);
check_requant_plain!(check_requant_i64, i64, "requantize_i64", RequantizeI64);

pub fn check_requant_i32_clamped(
    backend: &dyn GpuOperators,
    rq: Requantizer,
    acc: &[i32],
    (min, max): (i32, i32),
) -> Result<(), String> {
    let what = requant_case(&format!("requantize_i32_clamped to [{min}, {max}]"), rq);
    check_requant(backend, &what, acc, 0x5A5Ai32, |acc, out| {
        Operator::RequantizeI32Clamped {
            rq,
            acc,
            clamp: (min, max),
            out,
        }
    })
}

/// One requantization on `backend` and on the oracle, into outputs filled
/// with `sentinel`: same result, same values (on error: both untouched).
fn check_requant<A: Copy + Display + LowerHex, T: Copy + Debug + PartialEq>(
    backend: &dyn GpuOperators,
    what: &str,
    acc: &[A],
    sentinel: T,
    op: impl for<'o> Fn(&'o [A], &'o mut [T]) -> Operator<'o>,
) -> Result<(), String> {
    let mut got = vec![sentinel; acc.len()];
    let mut want = vec![sentinel; acc.len()];
    compare_results(
        what,
        &backend.run_operator(op(acc, &mut got)),
        &CpuReference.run_operator(op(acc, &mut want)),
    )?;
    diff_slices(what, &got, &want, |i| {
        format!("acc = {} = {:#x}", acc[i], acc[i])
    })
}

/// Runs `cases` proptest cases of `check` over `strategy`; panics with the
/// minimal failing input and the check's report.
pub fn run_prop<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), String>,
) where
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(err) = runner.run(&strategy, |value| check(value).map_err(TestCaseError::fail)) {
        panic!("{name}: {err}");
    }
}

/// Whole-op parity of `backend` against the oracle: proptest over random
/// shapes and values (`cases` each) plus the hand-picked extremes.
pub mod suite {
    use super::*;

    /// Random packed matrices, odd row lengths, corrupted padding, and
    /// wrong output lengths.
    pub fn unpack(backend: &dyn GpuOperators, cases: u32) {
        run_prop(
            &format!("{} unpack", label(backend)),
            cases,
            packed_case(6, 90),
            |case| {
                let n = (case.layout.rows * case.layout.cols) as usize;
                check_unpack(backend, &case, n)
            },
        );
        run_prop(
            &format!("{} unpack, wrong lengths", label(backend)),
            cases / 4,
            (packed_case(3, 40), 0usize..3, any::<bool>()),
            |(mut case, delta, longer_packed)| {
                let n = (case.layout.rows * case.layout.cols) as usize;
                if longer_packed {
                    case.packed.extend(std::iter::repeat_n(0, delta + 1));
                    check_unpack(backend, &case, n)
                } else {
                    check_unpack(backend, &case, n + delta + 1)?;
                    check_unpack(backend, &case, n.saturating_sub(delta + 1))
                }
            },
        );
    }

    /// Every width, every row length up to three words plus one, maximal
    /// and mixed codes, each padding bit of a small matrix set in turn.
    pub fn unpack_extremes(backend: &dyn GpuOperators) {
        let mut failures = Vec::new();
        for bits in BitWidth::ALL {
            let cpw = bits.codes_per_word();
            for rows in [0u32, 1, 2, 3] {
                for cols in 0..=3 * cpw + 1 {
                    let layout = PackedLayout::new(bits, rows, cols);
                    let n = (rows * cols) as usize;
                    let max = vec![bits.max_code(); n];
                    let mixed: Vec<u8> = (0..n)
                        .map(|i| (i as u8).wrapping_mul(37) & bits.max_code())
                        .collect();
                    for codes in [&max, &mixed] {
                        let case = make_case(layout, codes, None);
                        if let Err(e) = check_unpack(backend, &case, n) {
                            failures.push(e);
                        }
                    }
                    if rows <= 2 && cols <= cpw + 1 {
                        for (byte, bit) in padding_bits(layout) {
                            let mut case = make_case(layout, &max, None);
                            case.packed[byte] |= 1 << bit;
                            case.corrupted = Some((byte, bit));
                            if let Err(e) = check_unpack(backend, &case, n) {
                                failures.push(e);
                            }
                        }
                    }
                }
            }
        }
        report(&format!("{} unpack extremes", label(backend)), failures);
    }

    /// Random requantizers over random vectors (random lengths, so block
    /// edges move), for all three requantization entry points.
    pub fn requant(backend: &dyn GpuOperators, cases: u32, max_len: usize) {
        let name = |op: &str| format!("{} {op}", label(backend));
        let acc32 = || proptest::collection::vec(acc_i32(), 0..max_len);
        let acc64 = proptest::collection::vec(acc_i64(), 0..max_len);
        run_prop(
            &name("requantize_i32"),
            cases,
            (requantizer(), acc32()),
            |(rq, acc)| check_requant_i32(backend, rq, &acc),
        );
        run_prop(
            &name("requantize_i32_clamped"),
            cases,
            (requantizer(), acc32(), clamp_bounds()),
            |(rq, acc, bounds)| check_requant_i32_clamped(backend, rq, &acc, bounds),
        );
        run_prop(
            &name("requantize_i64"),
            cases,
            (requantizer(), acc64),
            |(rq, acc)| check_requant_i64(backend, rq, &acc),
        );
    }

    /// Every shift MIN_SHIFT..=MAX_SHIFT × edge multipliers × both tie
    /// rules, over all extreme accumulators plus a run of small ones (ties).
    pub fn requant_extremes(backend: &dyn GpuOperators) {
        let mut acc32: Vec<i32> = I32_EXTREMES.to_vec();
        acc32.extend(-300..=300);
        let mut acc64: Vec<i64> = I64_EXTREMES.to_vec();
        acc64.extend(acc32.iter().map(|&a| i64::from(a)));
        let mut failures = Vec::new();
        for shift in MIN_SHIFT..=MAX_SHIFT {
            for multiplier in [1 << 30, (1 << 30) + 1, 3 << 29, i32::MAX] {
                for rounding in ROUNDINGS {
                    let rq = Requantizer::from_parts(multiplier, shift, rounding).unwrap();
                    let checks = [
                        check_requant_i32(backend, rq, &acc32),
                        check_requant_i32_clamped(backend, rq, &acc32, (-128, 127)),
                        check_requant_i32_clamped(backend, rq, &acc32, (i32::MIN, i32::MAX)),
                        check_requant_i32_clamped(backend, rq, &acc32, (5, -5)),
                        check_requant_i64(backend, rq, &acc64),
                    ];
                    failures.extend(checks.into_iter().filter_map(Result::err));
                }
            }
        }
        report(&format!("{} requant extremes", label(backend)), failures);
    }

    /// Every width, 28 words per row (the last one short by a code) and
    /// over 2^22 words in all: more words than the CUDA backend launches
    /// threads (16384 blocks · 256), so the grid-stride loop wraps. Then a
    /// padding bit in the very last word.
    pub fn unpack_large(backend: &dyn GpuOperators) {
        for bits in BitWidth::ALL {
            let cols = 28 * bits.codes_per_word() - 1;
            let rows = (1 << 22) / 28 + 101;
            let layout = PackedLayout::new(bits, rows, cols);
            let n = (rows * cols) as usize;
            let codes: Vec<u8> = (0..n)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8 & bits.max_code())
                .collect();
            let mut case = make_case(layout, &codes, None);
            check_unpack(backend, &case, n).unwrap_or_else(|e| panic!("{e}"));
            let last = case.packed.len() - 1;
            case.packed[last] |= 0x80; // top bit of the last word: padding
            case.corrupted = Some((last, 7));
            check_unpack(backend, &case, n).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Over 2^22 elements (more than one grid-stride pass per thread) for
    /// three requantizers and all three entry points.
    pub fn requant_large(backend: &dyn GpuOperators) {
        let n = (1usize << 22) + 12_345;
        let acc32: Vec<i32> = (0..n)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) as i32)
            .collect();
        let acc64: Vec<i64> = (0..n)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as i64)
            .collect();
        for (m, shift, r) in [
            (1 << 30, -1, RoundingMode::HalfUp),
            (1_518_500_250, 8, RoundingMode::HalfEven),
            (i32::MAX, 40, RoundingMode::HalfUp),
        ] {
            let rq = Requantizer::from_parts(m, shift, r).unwrap();
            for result in [
                check_requant_i32(backend, rq, &acc32),
                check_requant_i32_clamped(backend, rq, &acc32, (-128, 127)),
                check_requant_i64(backend, rq, &acc64),
            ] {
                result.unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }

    fn report(name: &str, failures: Vec<String>) {
        if !failures.is_empty() {
            let shown: Vec<&String> = failures.iter().take(5).collect();
            panic!(
                "{name}: {} failing checks; the first {}:\n{}",
                failures.len(),
                shown.len(),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            );
        }
    }
}

/// The device a backend under test runs on, for failure messages.
pub fn label(backend: &dyn GpuOperators) -> String {
    backend
        .device()
        .map_or_else(|e| format!("unavailable backend ({e})"), |d| d.name)
}
