//! CPU parity of the SwinIR-light kernels' per-element arithmetic
//! (`gpu/kernels/tdq_swinir.cuh`, compiled for the host by build.rs through
//! `gpu/csrc/tdq_host_shim.cpp` and exposed as `tdquant_gpu::swinir_arith`)
//! against the `tdquant-core` integer oracle (`core/src/int/*.rs`), compared
//! with `==`.
//!
//! Every wrapper gets proptest properties (at least 1,000 cases each) and
//! hand-picked edge cases: the extreme codes 0 and N = 2^b − 1 for b = 2, 3,
//! 4, the largest magnitudes each operator's documented bounds allow, odd
//! sizes, n = 1 LayerNorm, masked attention rows, all-equal logits and
//! decision levels hit exactly. No GPU needed.
//!
//! Failures are not persisted (no `.proptest-regressions` file): the failing
//! input is printed in full by each assertion instead.

use std::fmt;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};
use tdquant_core::int::attention::{self, AvParams, QkParams, MASK_Z, PROB_FRAC};
use tdquant_core::int::conv::{Conv, ConvWeights};
use tdquant_core::int::layernorm::{self, FixedQuant, LnParams, MAX_EPS_T};
use tdquant_core::int::linear::{self, CodeAffine, LinearCall};
use tdquant_core::int::{
    arith, exp2, gelu, runner, LeI16, LeI32, EMBED, HEAD_DIM, RPB_ROWS, TOKENS,
};
use tdquant_core::requant::{MAX_SHIFT, MIN_SHIFT};
use tdquant_core::{pack_codes, BitWidth, PackedLayout, PackedMatrix};
use tdquant_gpu::swinir::{
    AvParamsC, CodeAffineC, FixedQuantC, LnParamsC, QkParamsC, MAX_LEVELS, STRUCT_SIZES,
};
use tdquant_gpu::swinir_arith as sa;

/// Cases of the cheap scalar properties.
const SCALAR_CASES: u32 = 10_000;
/// Cases of the whole-operator properties (a full window, layer or map each).
const OP_CASES: u32 = 1_000;

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Panics with the assertion's message (edge-case tests share the checks).
fn ok(r: Result<(), TestCaseError>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// Shared strategies and conversions
// ---------------------------------------------------------------------------

const BITS: [BitWidth; 3] = [BitWidth::B2, BitWidth::B3, BitWidth::B4];

fn bit_width() -> impl Strategy<Value = BitWidth> {
    select(BITS.to_vec())
}

/// `N = 2^b − 1` for b = 2, 3, 4.
fn levels() -> impl Strategy<Value = u8> {
    select(vec![3u8, 7, 15])
}

/// Values of `i64` that stress rounding and saturation.
const I64_EDGES: [i64; 17] = [
    i64::MIN,
    i64::MIN + 1,
    i64::MIN / 2,
    -(1 << 62) - 1,
    -(1 << 32),
    -(1 << 31),
    -3,
    -2,
    -1,
    0,
    1,
    2,
    3,
    1 << 31,
    (1 << 62) + 1,
    i64::MAX - 1,
    i64::MAX,
];

const I32_EDGES: [i32; 13] = [
    i32::MIN,
    i32::MIN + 1,
    -(1 << 24) - 1,
    -(1 << 24),
    -32_769,
    -1,
    0,
    1,
    32_768,
    1 << 24,
    (1 << 24) + 1,
    i32::MAX - 1,
    i32::MAX,
];

/// Any `i32`, with its edges over-represented.
fn i32_edgy() -> impl Strategy<Value = i32> {
    prop_oneof![4 => any::<i32>(), 1 => select(I32_EDGES.to_vec())]
}

/// `|v| ≤ 2^bits`, with the bound itself, its negation and small values
/// over-represented (`fits_bits(v, bits)`).
fn bounded(bits: u32) -> impl Strategy<Value = i64> {
    let m = 1i64 << bits;
    prop_oneof![
        6 => -m..=m,
        1 => Just(m),
        1 => Just(-m),
        1 => -1024i64..=1024,
    ]
}

/// `±[2^lo, 2^(hi+1))`: a "realistic" constant of a given magnitude.
fn magnitude(lo: u32, hi: u32) -> impl Strategy<Value = i64> {
    (lo..=hi, any::<u64>(), any::<bool>()).prop_map(|(b, r, neg)| {
        let v = (1i64 << b) + (r % (1u64 << b)) as i64;
        if neg {
            -v
        } else {
            v
        }
    })
}

/// Codes of one map: mostly in `0..=n` with the extremes over-represented,
/// sometimes only extremes, sometimes any byte (the operators accept
/// garbage codes up to 255).
fn codes(n: u8, len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(prop_oneof![6 => 0..=n, 1 => Just(0), 1 => Just(n)], len),
        1 => vec(select(vec![0u8, n]), len),
        1 => vec(any::<u8>(), len),
    ]
}

/// An `i64` as the `(lo, hi)` word pair of a `.tdq` file.
fn i64_words(v: &[i64]) -> Vec<i32> {
    v.iter()
        .flat_map(|&t| [t as i32, (t >> 32) as i32])
        .collect()
}

fn le_bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_bytes_i16(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// 64 × stride head layouts: (stride 60, col = 10·h) or (stride 10, col 0).
fn head_layout() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        3 => (0usize..6).prop_map(|h| (EMBED, h * HEAD_DIM)),
        1 => Just((HEAD_DIM, 0)),
    ]
}

/// Region labels of a real shifted window (`runner::window_tokens`).
fn window_labels(hp: usize, wp: usize, wy: usize, wx: usize) -> Vec<u8> {
    let mut pos = [0usize; TOKENS];
    let mut labels = [0u8; TOKENS];
    runner::window_tokens(wy, wx, hp, wp, true, &mut pos, &mut labels);
    labels.to_vec()
}

fn mask_labels() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        1 => vec(0u8..9, TOKENS).prop_map(Some),
        1 => vec(0u8..2, TOKENS).prop_map(Some),
        2 => (1usize..=8, 1usize..=8)
            .prop_flat_map(|(h, w)| (Just(h), Just(w), 0..h, 0..w))
            .prop_map(|(h, w, wy, wx)| Some(window_labels(8 * h, 8 * w, wy, wx))),
    ]
}

// ---------------------------------------------------------------------------
// rshift_round
// ---------------------------------------------------------------------------

fn check_rshift_round(v: i64, k: u32) -> Result<(), TestCaseError> {
    let got = sa::rshift_round(v, k);
    let want = arith::rshift_round(v, k);
    prop_assert_eq!(
        got,
        want,
        "rshift_round(v={}, k={}): C {} vs core {}",
        v,
        k,
        got,
        want
    );
    Ok(())
}

fn i64_wide() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        2 => (0u32..64, any::<i64>()).prop_map(|(b, v)| v >> b),
        1 => select(I64_EDGES.to_vec()),
    ]
}

proptest! {
    #![proptest_config(cfg(SCALAR_CASES))]

    #[test]
    fn rshift_round_matches_core(v in i64_wide(), k in 0u32..=70) {
        check_rshift_round(v, k)?;
    }

    /// `v = odd·2^(k−1) + δ`: the exact half and its neighbours.
    #[test]
    fn rshift_round_matches_core_at_ties(m in any::<i64>(), k in 1u32..=63, d in -1i64..=1) {
        check_rshift_round(((m | 1) << (k - 1)).wrapping_add(d), k)?;
    }
}

#[test]
fn rshift_round_edges() {
    let mut values = I64_EDGES.to_vec();
    for j in 0..63 {
        for d in -1i64..=1 {
            values.push((1i64 << j) + d);
            values.push(-(1i64 << j) + d);
        }
    }
    for &v in &values {
        for k in 0..=70 {
            ok(check_rshift_round(v, k));
        }
    }
}

// ---------------------------------------------------------------------------
// exp2_neg_q31
// ---------------------------------------------------------------------------

fn check_exp2(d: u64) -> Result<(), TestCaseError> {
    let got = sa::exp2_neg_q31(d);
    let want = exp2::exp2_neg_q31(d);
    prop_assert_eq!(
        got,
        want,
        "exp2_neg_q31(d={} = {:#x}): C {} vs core {}",
        d,
        d,
        got,
        want
    );
    Ok(())
}

fn exp2_arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => any::<u64>(),
        2 => 0u64..(1 << 37),
        1 => (0u64..=33, -4096i64..=4096).prop_map(|(n, d)| (n << 32).wrapping_add_signed(d)),
        1 => (0u64..32, 0u64..256, -64i64..=64)
            .prop_map(|(n, i, d)| ((n << 32) | (i << 24)).wrapping_add_signed(d)),
    ]
}

proptest! {
    #![proptest_config(cfg(SCALAR_CASES))]

    #[test]
    fn exp2_neg_q31_matches_core(d in exp2_arg()) {
        check_exp2(d)?;
    }
}

/// Dense `d` around every `n << 32` (n = 0..=33) and every LUT step
/// `(n << 32) | (i << 24)`, plus the ends of `u64`.
#[test]
fn exp2_neg_q31_dense_boundaries() {
    for n in 0u64..=33 {
        for d in -65_536i64..=65_536 {
            ok(check_exp2((n << 32).wrapping_add_signed(d)));
        }
    }
    for n in 0u64..32 {
        for i in 0u64..256 {
            for d in -16i64..=16 {
                ok(check_exp2(((n << 32) | (i << 24)).wrapping_add_signed(d)));
            }
        }
    }
    for d in [
        0,
        1,
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
        (32 << 32) - 1,
        32 << 32,
    ] {
        ok(check_exp2(d));
    }
}

// ---------------------------------------------------------------------------
// isqrt_u128
// ---------------------------------------------------------------------------

fn check_isqrt(n: u128) -> Result<(), TestCaseError> {
    let got = u128::from(sa::isqrt_u128(n));
    let want = n.isqrt();
    prop_assert_eq!(
        got,
        want,
        "isqrt_u128(n={}): C {} vs isqrt {}",
        n,
        got,
        want
    );
    prop_assert_eq!(want, arith::isqrt_u128(n));
    Ok(())
}

/// `n ≤ 2^126` (every magnitude), and `r² − 1, r², r² + 1` for `r ≤ 2^63`.
fn u128_to_126() -> impl Strategy<Value = u128> {
    prop_oneof![
        3 => (0u32..=126, any::<u128>())
            .prop_map(|(bits, r)| if bits == 0 { 0 } else { r >> (128 - bits) }),
        1 => Just(1u128 << 126),
        3 => (0u64..=(1u64 << 63), -1i128..=1)
            .prop_map(|(r, d)| (u128::from(r) * u128::from(r)).saturating_add_signed(d)),
    ]
}

proptest! {
    #![proptest_config(cfg(SCALAR_CASES))]

    #[test]
    fn isqrt_u128_matches_core(n in u128_to_126()) {
        check_isqrt(n)?;
    }

    /// The wrapper documents `⌊√n⌋` for every `u128`, not only `≤ 2^126`.
    #[test]
    fn isqrt_u128_matches_core_full_range(n in any::<u128>()) {
        check_isqrt(n)?;
    }
}

#[test]
fn isqrt_u128_edges() {
    for r in 0u128..=4096 {
        for d in -1i128..=1 {
            ok(check_isqrt((r * r).saturating_add_signed(d)));
        }
    }
    for j in 0..=64u32 {
        for dr in -2i128..=2 {
            let r = (1u128 << j)
                .saturating_add_signed(dr)
                .min(u128::from(u64::MAX));
            for d in -1i128..=1 {
                ok(check_isqrt((r * r).saturating_add_signed(d)));
            }
        }
    }
    for j in 0..128 {
        ok(check_isqrt(1u128 << j));
        ok(check_isqrt((1u128 << j) - 1));
    }
    ok(check_isqrt(u128::MAX));
}

// ---------------------------------------------------------------------------
// ln_normalize
// ---------------------------------------------------------------------------

fn core_normalize(x: &[i32], eps_t: i64) -> Option<Vec<i32>> {
    let mut out = vec![0i32; x.len()];
    layernorm::normalize(x, eps_t, &mut out).ok().map(|()| out)
}

fn check_normalize(x: &[i32], eps_t: i64) -> Result<(), TestCaseError> {
    let got = sa::ln_normalize(x, eps_t);
    let want = core_normalize(x, eps_t);
    prop_assert_eq!(
        &got,
        &want,
        "ln_normalize(n={}, x={:?}, eps_t={}): C {:?} vs core {:?}",
        x.len(),
        x,
        eps_t,
        &got,
        &want
    );
    Ok(())
}

const STREAM: i32 = 1 << 24;

fn ln_input(n: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<i32>> {
    n.prop_flat_map(|n| {
        prop_oneof![
            2 => vec(any::<i32>(), n),
            3 => vec(-STREAM..=STREAM, n),
            1 => vec(select(vec![-STREAM, STREAM, i32::MIN, i32::MAX, 0, -STREAM - 1, STREAM + 1]), n),
            2 => (-STREAM..=STREAM, vec(-64i32..=64, n))
                .prop_map(|(base, noise)| noise.iter().map(|&d| base + d).collect()),
        ]
    })
}

fn eps_t() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 1i64..=MAX_EPS_T,
        2 => 1i64..=4096,
        1 => Just(1i64),
        1 => Just(MAX_EPS_T),
    ]
}

proptest! {
    #![proptest_config(cfg(OP_CASES * 4))]

    #[test]
    fn ln_normalize_matches_core(x in ln_input(1..=64), eps in eps_t()) {
        check_normalize(&x, eps)?;
    }

    /// Outside `n ∈ 1..=64`, `eps_t ∈ 1..=2^40` both refuse (None / Err).
    #[test]
    fn ln_normalize_rejects_like_core(
        x in prop_oneof![4 => ln_input(1..=80), 1 => Just(Vec::new())],
        eps in prop_oneof![
            any::<i64>(),
            -4i64..=4,
            (MAX_EPS_T - 4)..=(MAX_EPS_T + 4),
            eps_t(),
        ],
    ) {
        check_normalize(&x, eps)?;
    }
}

#[test]
fn ln_normalize_edges() {
    // n = 1: x̂ is 0 whatever the value.
    for &v in &I32_EDGES {
        for eps in [1, 2, MAX_EPS_T] {
            ok(check_normalize(&[v], eps));
            assert_eq!(sa::ln_normalize(&[v], eps), Some(vec![0]));
        }
    }
    for n in 1..=64usize {
        for eps in [1, 7, 1 << 20, MAX_EPS_T] {
            // Constant, alternating extremes, one outlier (the largest |x̂|),
            // a ramp, and values past the stream clamp.
            ok(check_normalize(&vec![STREAM; n], eps));
            ok(check_normalize(&vec![-STREAM; n], eps));
            let alt: Vec<i32> = (0..n)
                .map(|i| if i % 2 == 0 { STREAM } else { -STREAM })
                .collect();
            ok(check_normalize(&alt, eps));
            let alt_wide: Vec<i32> = (0..n)
                .map(|i| if i % 2 == 0 { i32::MAX } else { i32::MIN })
                .collect();
            ok(check_normalize(&alt_wide, eps));
            for outlier in [STREAM, -STREAM, i32::MAX, i32::MIN, 1, -1] {
                let mut x = vec![-outlier.signum() * STREAM; n];
                x[n / 2] = outlier;
                ok(check_normalize(&x, eps));
                let mut x = vec![0; n];
                x[0] = outlier;
                ok(check_normalize(&x, eps));
            }
            let ramp: Vec<i32> = (0..n as i32).map(|i| i * 262_143 - STREAM).collect();
            ok(check_normalize(&ramp, eps));
        }
    }
    // Rejected arguments map to None, as the oracle's Err.
    let x = vec![5i32; 8];
    for eps in [0, -1, i64::MIN, MAX_EPS_T + 1, i64::MAX] {
        ok(check_normalize(&x, eps));
        assert_eq!(sa::ln_normalize(&x, eps), None, "eps_t {eps}");
    }
    for n in [0usize, 65, 100] {
        ok(check_normalize(&vec![1; n], 1));
        assert_eq!(sa::ln_normalize(&vec![1; n], 1), None, "n {n}");
    }
}

// ---------------------------------------------------------------------------
// ln_output
// ---------------------------------------------------------------------------

/// `|x̂| < 2^27` (layernorm module docs).
const XHAT_MAX: i32 = (1 << 27) - 1;

fn check_ln_output(p: &LnParamsC, c: usize, xhat: i32) -> Result<(), TestCaseError> {
    let (gb, bb) = (le_bytes_i32(&p.gamma), le_bytes_i32(&p.beta));
    let ln = LnParams {
        gamma: LeI32::new(&gb),
        beta: LeI32::new(&bb),
        g_frac: p.g_frac,
        y_frac: p.y_frac,
        eps_t: p.eps_t,
    };
    prop_assert!(
        ln.validate(EMBED).is_ok(),
        "generated LnParams fail validate: {:?}",
        p
    );
    let got = sa::ln_output(p, c, xhat);
    let want = ln.output(c, xhat);
    prop_assert_eq!(
        got,
        Some(want),
        "ln_output(c={}, xhat={}, g_frac={}, y_frac={}, G_c={}, B_c={}): C {:?} vs core {}",
        c,
        xhat,
        p.g_frac,
        p.y_frac,
        p.gamma[c],
        p.beta[c],
        got,
        want
    );
    Ok(())
}

fn ln_params() -> impl Strategy<Value = LnParamsC> {
    (
        vec(i32_edgy(), EMBED),
        vec(i32_edgy(), EMBED),
        0u32..=40,
        eps_t(),
    )
        .prop_flat_map(|(g, b, g_frac, eps)| {
            (
                Just(g),
                Just(b),
                Just(g_frac),
                0..=(24 + g_frac).min(40),
                Just(eps),
            )
        })
        .prop_map(|(g, b, g_frac, y_frac, eps_t)| LnParamsC {
            eps_t,
            g_frac,
            y_frac,
            gamma: g.try_into().expect("60 gammas"),
            beta: b.try_into().expect("60 betas"),
        })
}

fn xhat() -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => -XHAT_MAX..=XHAT_MAX,
        2 => -STREAM..=STREAM,
        1 => select(vec![-XHAT_MAX, XHAT_MAX, 0, 1, -1]),
    ]
}

proptest! {
    #![proptest_config(cfg(OP_CASES * 4))]

    #[test]
    fn ln_output_matches_core(p in ln_params(), c in 0usize..EMBED, x in xhat()) {
        check_ln_output(&p, c, x)?;
    }
}

#[test]
fn ln_output_edges() {
    let mut p = LnParamsC {
        eps_t: 1,
        g_frac: 0,
        y_frac: 0,
        gamma: [0; EMBED],
        beta: [0; EMBED],
    };
    let gb = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX];
    for (c, (&g, &b)) in gb.iter().zip(gb.iter().rev()).enumerate() {
        p.gamma[c] = g;
        p.beta[c] = b;
    }
    p.gamma[EMBED - 1] = i32::MAX;
    p.beta[EMBED - 1] = i32::MIN;
    for g_frac in 0..=40 {
        for y_frac in 0..=(24 + g_frac).min(40) {
            p.g_frac = g_frac;
            p.y_frac = y_frac;
            for c in (0..gb.len()).chain([EMBED - 1]) {
                for x in [-XHAT_MAX, -XHAT_MAX + 1, -1, 0, 1, XHAT_MAX] {
                    ok(check_ln_output(&p, c, x));
                }
            }
        }
    }
    assert_eq!(sa::ln_output(&p, EMBED, 1), None);
}

// ---------------------------------------------------------------------------
// fixed_quant_code
// ---------------------------------------------------------------------------

/// `|y| < 2^60` (FixedQuant::code docs).
const Y_MAX: i64 = (1 << 60) - 1;

fn check_fixed_quant(fq: &FixedQuant, y: i64) -> Result<(), TestCaseError> {
    prop_assert!(fq.validate().is_ok(), "invalid {:?}", fq);
    let got = sa::fixed_quant_code(&FixedQuantC::from(fq), y);
    let want = fq.code(y);
    prop_assert_eq!(
        got,
        want,
        "fixed_quant_code(y={}, {:?}): C {} vs core {}",
        y,
        fq,
        got,
        want
    );
    Ok(())
}

/// Smallest multiplier with `2^32·M ≥ N·2^S`.
fn min_mult(levels: u8, shift: u32) -> i64 {
    let need = i128::from(levels) << shift;
    (((need + (1 << 32) - 1) >> 32).max(1)) as i64
}

/// Largest `S` for which some `M < 2^31` passes validate.
fn max_shift(levels: u8) -> u32 {
    (1..=62u32)
        .rev()
        .find(|&s| min_mult(levels, s) < 1 << 31)
        .unwrap_or(1)
}

fn fixed_quant() -> impl Strategy<Value = FixedQuant> {
    (
        prop_oneof![3 => levels(), 1 => Just(1u8), 1 => 1u8..=255],
        bounded(60),
    )
        .prop_flat_map(|(levels, offset)| (Just(levels), Just(offset), 1..=max_shift(levels)))
        .prop_flat_map(|(levels, offset, shift)| {
            let lo = min_mult(levels, shift);
            let pow2 = (lo as u64).next_power_of_two() as i64;
            let pow2 = if pow2 < 1 << 31 { pow2 } else { lo };
            (
                Just(levels),
                Just(offset),
                Just(shift),
                prop_oneof![
                    4 => lo..(1i64 << 31),
                    1 => Just(lo),
                    1 => Just((1i64 << 31) - 1),
                    1 => Just(pow2),
                ],
            )
        })
        .prop_map(|(levels, offset, shift, mult)| FixedQuant {
            offset,
            mult,
            shift,
            levels,
        })
        .prop_filter("FixedQuant::validate", |fq| fq.validate().is_ok())
}

fn clamp_y(v: i128) -> i64 {
    v.clamp(-i128::from(Y_MAX), i128::from(Y_MAX)) as i64
}

/// A quantizer and `y` values that land on every code, on the rounding
/// ties `(c + 1/2)·2^S / M` (±1), anywhere in `|y| < 2^60`, and at edges.
fn fixed_quant_case() -> impl Strategy<Value = (FixedQuant, i64)> {
    fixed_quant().prop_flat_map(|fq| {
        let step = (1i128 << fq.shift) / i128::from(fq.mult) + 1;
        let span = ((i128::from(fq.levels) + 2) * step).min(1 << 61) as i64;
        let offset = i128::from(fq.offset);
        let near = (-span..=span).prop_map(move |d| clamp_y(offset + i128::from(d)));
        let tie = (0..=fq.levels, -1i64..=1).prop_map(move |(c, d)| {
            let half = ((2 * i128::from(c) + 1) << (fq.shift - 1)) / i128::from(fq.mult);
            clamp_y(offset + half + i128::from(d))
        });
        let edges = select(vec![
            -Y_MAX,
            Y_MAX,
            0,
            clamp_y(offset + (1 << 32)),
            clamp_y(offset + (1 << 32) + 1),
            clamp_y(offset - (1 << 32)),
            clamp_y(offset - (1 << 32) - 1),
        ]);
        (
            Just(fq),
            prop_oneof![3 => near, 3 => tie, 1 => -Y_MAX..=Y_MAX, 1 => edges],
        )
    })
}

proptest! {
    #![proptest_config(cfg(SCALAR_CASES))]

    #[test]
    fn fixed_quant_code_matches_core((fq, y) in fixed_quant_case()) {
        check_fixed_quant(&fq, y)?;
    }

    /// `code` is total (saturating subtract, clamp): any `y` at all.
    #[test]
    fn fixed_quant_code_matches_core_any_y(fq in fixed_quant(), y in i64_wide()) {
        check_fixed_quant(&fq, y)?;
    }
}

#[test]
fn fixed_quant_code_edges() {
    let mut cases = 0usize;
    for levels in [1u8, 3, 7, 15, 255] {
        for shift in [1, 2, 31, 32, max_shift(levels)] {
            let lo = min_mult(levels, shift);
            if lo >= 1 << 31 {
                continue;
            }
            for mult in [lo, lo + 1, (1 << 31) - 1] {
                for offset in [-(1i64 << 60), -1, 0, 1, 1 << 60] {
                    let fq = FixedQuant {
                        offset,
                        mult,
                        shift,
                        levels,
                    };
                    let o = i128::from(offset);
                    let mut ys = vec![-Y_MAX, Y_MAX, 0, i64::MIN, i64::MAX];
                    for d in [-(1i128 << 32), 1 << 32] {
                        for e in -1..=1 {
                            ys.push(clamp_y(o + d + e));
                        }
                    }
                    for c in 0..=i128::from(levels) {
                        let half = ((2 * c + 1) << (shift - 1)) / i128::from(mult);
                        for e in -1..=1 {
                            ys.push(clamp_y(o + half + e));
                        }
                    }
                    for y in ys {
                        ok(check_fixed_quant(&fq, y));
                        cases += 1;
                    }
                }
            }
        }
    }
    assert!(cases > 1000, "{cases}");
}

// ---------------------------------------------------------------------------
// linear_t
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct LinearCase {
    bits: BitWidth,
    /// Inputs per output (`cols` of the matrix).
    k: usize,
    /// Rows of the packed matrix.
    rows: usize,
    /// First row the layer runs.
    row0: usize,
    /// `tokens × k` input codes.
    x: Vec<u8>,
    /// `rows × k` weight codes (≤ N).
    w: Vec<u8>,
    /// `rows − row0` per-row constants.
    c: Vec<i32>,
    aff: CodeAffine,
}

fn code_affine() -> impl Strategy<Value = CodeAffine> {
    let coef = || prop_oneof![3 => bounded(38), 2 => magnitude(10, 30)];
    (coef(), coef(), 0u32..=29, 0u32..=62).prop_map(|(a, b, c_shift, frac)| CodeAffine {
        a,
        b,
        c_shift,
        frac,
    })
}

fn linear_case() -> impl Strategy<Value = LinearCase> {
    (
        bit_width(),
        prop_oneof![
            3 => 1usize..=128,
            1 => select(vec![1usize, 2, 15, 16, 17, 31, 33, 60, 63, 65, 120, 127, 128]),
        ],
        1usize..=4,
        1usize..=3,
        code_affine(),
    )
        .prop_flat_map(|(bits, k, rows, tokens, aff)| {
            let n = bits.levels();
            let strict = prop_oneof![
                4 => vec(prop_oneof![4 => 0..=n, 1 => Just(0), 1 => Just(n)], rows * k),
                1 => vec(select(vec![0, n]), rows * k),
            ];
            (
                Just(bits),
                Just(k),
                Just(rows),
                0..rows,
                codes(n, tokens * k),
                strict,
                Just(aff),
            )
        })
        .prop_flat_map(|(bits, k, rows, row0, x, w, aff)| {
            (
                Just(bits),
                Just(k),
                Just(rows),
                Just(row0),
                Just(x),
                Just(w),
                vec(i32_edgy(), rows - row0),
                Just(aff),
            )
        })
        .prop_map(|(bits, k, rows, row0, x, w, c, aff)| LinearCase {
            bits,
            k,
            rows,
            row0,
            x,
            w,
            c,
            aff,
        })
}

fn check_linear(case: &LinearCase) -> Result<(), TestCaseError> {
    let LinearCase {
        bits,
        k,
        rows,
        row0,
        ref x,
        ref w,
        ref c,
        aff,
    } = *case;
    prop_assert!(aff.validate().is_ok(), "invalid {:?}", aff);
    let layout = PackedLayout::new(bits, rows as u32, k as u32);
    let mut packed = vec![0u8; layout.byte_len().expect("layout size")];
    pack_codes(layout, w, &mut packed).expect("codes ≤ N pack");
    let matrix = PackedMatrix::new(layout, &packed).expect("packed matrix");
    let mut emitted = Vec::new();
    let call = LinearCall::new(x, k, &matrix, row0 as u32, rows - row0, &aff, c.as_slice());
    let res = linear::linear(&call, |t, j, v| emitted.push((t, j, v)));
    prop_assert!(res.is_ok(), "core linear refused {:?}: {:?}", case, res);
    let tokens = x.len() / k;
    prop_assert_eq!(emitted.len(), tokens * (rows - row0));
    let ac = CodeAffineC::from(&aff);
    for &(t, j, want) in &emitted {
        let xt = &x[t * k..(t + 1) * k];
        let row = row0 + j;
        let got = sa::linear_t(xt, &matrix, row as u32, &ac, c[j]);
        prop_assert_eq!(
            got,
            Some(want),
            "linear_t({}-bit, k={}, token {}, row {}, x={:?}, w={:?}, {:?}, C_j={}): C {:?} vs core {}",
            bits.bits(),
            k,
            t,
            row,
            xt,
            &w[row * k..(row + 1) * k],
            aff,
            c[j],
            got,
            want
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg(OP_CASES * 2))]

    #[test]
    fn linear_t_matches_core(case in linear_case()) {
        check_linear(&case)?;
    }
}

#[test]
fn linear_t_edges() {
    let m = 1i64 << 38;
    for bits in BITS {
        let n = bits.levels();
        for k in [
            1usize, 2, 3, 5, 15, 16, 17, 31, 32, 33, 60, 63, 64, 65, 120, 127, 128,
        ] {
            for &(xv, wv) in &[(0u8, 0u8), (n, n), (255, n), (n, 0), (0, n), (255, 0)] {
                for (a, b) in [(m, m), (-m, -m), (m, -m), (-m, m), (0, 0)] {
                    for (c, c_shift) in [(i32::MAX, 29), (i32::MIN, 29), (0, 0), (-1, 29)] {
                        let case = LinearCase {
                            bits,
                            k,
                            rows: 2,
                            row0: 0,
                            x: vec![xv; 2 * k],
                            w: [vec![wv; k], (0..k).map(|i| (i % 2) as u8 * n).collect()].concat(),
                            c: vec![c, c],
                            aff: CodeAffine {
                                a,
                                b,
                                c_shift,
                                frac: 62,
                            },
                        };
                        ok(check_linear(&case));
                    }
                }
            }
        }
    }
    // Argument checks of the wrapper.
    let layout = PackedLayout::new(BitWidth::B4, 1, 3);
    let mut packed = vec![0u8; layout.byte_len().unwrap()];
    pack_codes(layout, &[1, 2, 3], &mut packed).unwrap();
    let matrix = PackedMatrix::new(layout, &packed).unwrap();
    let ac = CodeAffineC::default();
    assert_eq!(sa::linear_t(&[1, 2], &matrix, 0, &ac, 0), None);
    assert_eq!(sa::linear_t(&[1, 2, 3], &matrix, 1, &ac, 0), None);
    assert!(sa::linear_t(&[1, 2, 3], &matrix, 0, &ac, 0).is_some());
}

// ---------------------------------------------------------------------------
// gelu_code
// ---------------------------------------------------------------------------

/// The `4N`-word table of `gelu::gelu_code`: `H_k` (lo, hi), `L_k` (lo, hi).
fn gelu_table(hi: &[i64], lo: &[i64]) -> Vec<i32> {
    assert_eq!(gelu::WORDS_PER_LEVEL, 4);
    hi.iter()
        .zip(lo)
        .flat_map(|(&h, &l)| i64_words(&[h, l]))
        .collect()
}

fn check_gelu(t: i64, hi: &[i64], lo: &[i64]) -> Result<(), TestCaseError> {
    let table = gelu_table(hi, lo);
    let got = sa::gelu_code(t, hi, lo);
    let want = gelu::gelu_code(t, table.as_slice());
    prop_assert_eq!(
        got,
        Some(want),
        "gelu_code(t={}, H={:?}, L={:?}): C {:?} vs core {}",
        t,
        hi,
        lo,
        got,
        want
    );
    Ok(())
}

const T_MAX: i64 = 1 << 62;

fn gelu_case() -> impl Strategy<Value = (Vec<i64>, Vec<i64>, i64)> {
    (0usize..=MAX_LEVELS, any::<bool>())
        .prop_flat_map(|(n, sorted)| {
            let thr =
                || prop_oneof![4 => -T_MAX..=T_MAX, 1 => Just(i64::MIN), 1 => -4096i64..=4096];
            (vec(thr(), n), vec(thr(), n), Just(sorted))
        })
        .prop_flat_map(|(mut hi, mut lo, sorted)| {
            if sorted {
                // The exported shape: H_k increasing, L_k decreasing.
                hi.sort_unstable();
                lo.sort_unstable_by(|a, b| b.cmp(a));
            }
            let mut at: Vec<i64> = hi
                .iter()
                .chain(&lo)
                .copied()
                .filter(|&v| v != i64::MIN)
                .collect();
            at.push(0);
            let t = prop_oneof![
                2 => -T_MAX..=T_MAX,
                3 => (select(at), -1i64..=1).prop_map(|(v, d)| v.saturating_add(d)),
                1 => select(vec![i64::MIN, i64::MIN + 1, i64::MAX, -T_MAX, T_MAX]),
            ];
            (Just(hi), Just(lo), t)
        })
}

proptest! {
    #![proptest_config(cfg(SCALAR_CASES))]

    #[test]
    fn gelu_code_matches_core((hi, lo, t) in gelu_case()) {
        check_gelu(t, &hi, &lo)?;
    }
}

#[test]
fn gelu_code_edges() {
    let ts = [i64::MIN, i64::MIN + 1, -T_MAX, -1, 0, 1, T_MAX, i64::MAX];
    for n in 0..=MAX_LEVELS {
        // All "always" (H = MIN, no left branch), all "never", mixed.
        let always = vec![i64::MIN; n];
        let never = vec![i64::MAX; n];
        let ramp: Vec<i64> = (0..n as i64).map(|k| k * 1000 - 7000).collect();
        let left: Vec<i64> = (0..n as i64).map(|k| -20_000 - k * 1000).collect();
        for &t in ts.iter().chain(&ramp).chain(&left) {
            for (hi, lo) in [
                (&always, &always),
                (&never, &always),
                (&ramp, &always),
                (&ramp, &left),
                (&never, &left),
                (&always, &left),
            ] {
                ok(check_gelu(t, hi, lo));
                ok(check_gelu(t.saturating_add(1), hi, lo));
                ok(check_gelu(t.saturating_sub(1), hi, lo));
            }
        }
        assert_eq!(sa::gelu_code(0, &always, &always), Some(n as u8));
    }
    assert_eq!(sa::gelu_code(0, &[1, 2], &[3]), None);
}

// ---------------------------------------------------------------------------
// softmax_row
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct SoftmaxCase {
    /// Code range of q and k.
    n: u8,
    stride: usize,
    col: usize,
    q: Vec<u8>,
    k: Vec<u8>,
    qk: QkParams,
    rpb: Vec<i16>,
    labels: Option<Vec<u8>>,
    /// The levels `T_k`.
    thresholds: Vec<i64>,
}

fn head_rows(m: &[u8], stride: usize, col: usize) -> Vec<&[u8]> {
    (0..TOKENS)
        .map(|t| &m[t * stride + col..t * stride + col + HEAD_DIM])
        .collect()
}

impl fmt::Debug for SoftmaxCase {
    /// The head columns only (the rest of q and k is never read).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftmaxCase")
            .field("n", &self.n)
            .field("stride", &self.stride)
            .field("col", &self.col)
            .field("qk", &self.qk)
            .field("thresholds", &self.thresholds)
            .field("labels", &self.labels)
            .field("q_head", &head_rows(&self.q, self.stride, self.col))
            .field("k_head", &head_rows(&self.k, self.stride, self.col))
            .field("rpb", &self.rpb)
            .finish()
    }
}

fn qk_params() -> impl Strategy<Value = QkParams> {
    prop_oneof![
        2 => (magnitude(20, 30), magnitude(16, 28), 14u32..=24),
        1 => (bounded(40), bounded(40), 0u32..=40),
    ]
    .prop_map(|(a, b, rpb_shift)| QkParams { a, b, rpb_shift })
}

/// `N` increasing levels, `|T_k| ≤ 2^40`: the exported shape
/// `T_k = l + (k − 1/2)·s` (Q30) with a realistic step, or arbitrary.
fn thresholds(n: usize) -> impl Strategy<Value = Vec<i64>> {
    let bound = 1i64 << 40;
    let max_step = ((1i64 << 30) / n.max(1) as i64).max(1 << 16);
    prop_oneof![
        3 => (-(1i64 << 24)..=(1 << 24), (1i64 << 12)..=max_step).prop_map(move |(l, s)| {
            (1..=n as i64).map(|k| l + (2 * k - 1) * s / 2).collect()
        }),
        1 => vec(-bound..=bound, n),
        1 => vec(select(vec![-bound, bound, 0, 1 << 24, 1 << 30]), n),
    ]
    .prop_map(|mut v: Vec<i64>| {
        v.sort_unstable();
        v
    })
}

fn softmax_case() -> impl Strategy<Value = SoftmaxCase> {
    (
        levels(),
        head_layout(),
        prop_oneof![4 => Just(None), 1 => (0usize..=MAX_LEVELS).prop_map(Some)],
    )
        .prop_flat_map(|(n, (stride, col), n_thr)| {
            let rpb = prop_oneof![
                2 => vec(-4096i16..=4096, RPB_ROWS),
                1 => vec(any::<i16>(), RPB_ROWS),
                1 => Just(vec![0i16; RPB_ROWS]),
            ];
            (
                Just((n, stride, col)),
                codes(n, TOKENS * stride),
                codes(n, TOKENS * stride),
                qk_params(),
                rpb,
                mask_labels(),
                thresholds(n_thr.unwrap_or(usize::from(n))),
            )
        })
        .prop_map(
            |((n, stride, col), q, k, qk, rpb, labels, thresholds)| SoftmaxCase {
                n,
                stride,
                col,
                q,
                k,
                qk,
                rpb,
                labels,
                thresholds,
            },
        )
}

/// `softmax_codes` of the oracle (64 × 64).
fn core_softmax(c: &SoftmaxCase) -> Result<Vec<u8>, TestCaseError> {
    prop_assert!(c.qk.validate().is_ok(), "invalid {:?}", c.qk);
    let rpb = le_bytes_i16(&c.rpb);
    let words = i64_words(&c.thresholds);
    let mut probs = vec![0u8; TOKENS * TOKENS];
    let res = attention::SoftmaxCall {
        q: &c.q,
        k: &c.k,
        stride: c.stride,
        col: c.col,
        qk: &c.qk,
        rpb: LeI16::new(&rpb),
        labels: c.labels.as_deref(),
        thresholds: words.as_slice(),
    }
    .run(&mut probs);
    prop_assert!(res.is_ok(), "core softmax_codes refused: {:?}", res);
    Ok(probs)
}

fn check_softmax(c: &SoftmaxCase) -> Result<Vec<u8>, TestCaseError> {
    let want = core_softmax(c)?;
    let qkc = QkParamsC::from(&c.qk);
    for i in 0..TOKENS {
        let got = sa::softmax_row(
            &c.q,
            &c.k,
            c.stride,
            c.col,
            &qkc,
            &c.rpb,
            c.labels.as_deref(),
            &c.thresholds,
            i,
        );
        let want_row = &want[i * TOKENS..(i + 1) * TOKENS];
        prop_assert_eq!(
            got.as_ref().map(|r| r.as_slice()),
            Some(want_row),
            "softmax_row(i={}) of {:?}:\n  C    {:?}\n  core {:?}",
            i,
            c,
            got.as_ref().map(|r| r.to_vec()),
            want_row
        );
    }
    Ok(want)
}

/// `(e_ij, S_i)` of query row `i`, recomputed from the module docs with the
/// oracle's public pieces (to place levels exactly on an `e_ij`).
fn row_exps(c: &SoftmaxCase, i: usize) -> ([u32; TOKENS], u64) {
    let q = head_rows(&c.q, c.stride, c.col);
    let k = head_rows(&c.k, c.stride, c.col);
    let mut z = [0i64; TOKENS];
    for (j, zj) in z.iter_mut().enumerate() {
        let acc: i64 = q[i]
            .iter()
            .zip(k[j])
            .map(|(&a, &b)| i64::from(a) * i64::from(b))
            .sum();
        let kb: i64 = k[j].iter().map(|&b| i64::from(b)).sum();
        let bias = i64::from(c.rpb[attention::rpb_index(i, j)]) << c.qk.rpb_shift;
        let masked = c.labels.as_ref().is_some_and(|l| l[i] != l[j]);
        *zj = acc * c.qk.a + kb * c.qk.b + bias + if masked { MASK_Z } else { 0 };
    }
    let m = z.iter().copied().max().unwrap_or(0);
    let mut e = [0u32; TOKENS];
    for (ej, &zj) in e.iter_mut().zip(&z) {
        *ej = exp2::exp2_neg_q31((m - zj) as u64);
    }
    let sum = e.iter().map(|&v| u64::from(v)).sum();
    (e, sum)
}

/// `⌊e·2^30 / S⌋ + δ`: the level whose edge `⌈S·T/2^30⌉` is at or just above `e`.
fn level_at(e: u32, sum: u64, delta: i64) -> i64 {
    ((i128::from(e) << PROB_FRAC) / i128::from(sum)) as i64 + delta
}

proptest! {
    #![proptest_config(cfg(OP_CASES))]

    #[test]
    fn softmax_row_matches_core(case in softmax_case()) {
        check_softmax(&case)?;
    }

    /// Levels placed on the `e_ij` of one row (`e·2^30 ≥ S·T` decided by
    /// one unit either way), at most 15 of them.
    #[test]
    fn softmax_row_matches_core_at_level_edges(
        mut case in softmax_case(),
        row in 0usize..TOKENS,
        picks in vec((0usize..TOKENS, -1i64..=1), 1..=MAX_LEVELS),
    ) {
        let (e, sum) = row_exps(&case, row);
        let mut t: Vec<i64> = picks.iter().map(|&(j, d)| level_at(e[j], sum, d)).collect();
        t.sort_unstable();
        case.thresholds = t;
        check_softmax(&case)?;
    }
}

/// A window whose every logit is equal: `e = 2^31`, `S = 2^37`, `p = 2^−6`
/// exactly, so `T = 2^24` is an exact tie (rounds up: counted).
#[test]
fn softmax_row_all_equal_logits_and_exact_ties() {
    for n in [3u8, 7, 15] {
        for (stride, col) in [(EMBED, 0), (EMBED, 50), (HEAD_DIM, 0)] {
            for qv in [0u8, n] {
                let mut case = SoftmaxCase {
                    n,
                    stride,
                    col,
                    q: vec![qv; TOKENS * stride],
                    // Equal keys: z_ij is the same for every j.
                    k: vec![n; TOKENS * stride],
                    qk: QkParams {
                        a: 1 << 30,
                        b: -(1 << 28),
                        rpb_shift: 20,
                    },
                    rpb: vec![0; RPB_ROWS],
                    labels: None,
                    thresholds: vec![(1 << 24) - 1, 1 << 24, (1 << 24) + 1],
                };
                let probs = ok_probs(check_softmax(&case));
                assert!(probs.iter().all(|&p| p == 2), "tie must count: {probs:?}");
                // Every token alone in its region: one unmasked key per row,
                // p = 1 exactly; T = 2^30 is a tie.
                case.labels = Some((0..TOKENS as u8).collect());
                case.thresholds = vec![0, (1 << 30) - 1, 1 << 30, (1 << 30) + 1];
                let probs = ok_probs(check_softmax(&case));
                for i in 0..TOKENS {
                    for j in 0..TOKENS {
                        let want = if i == j { 3 } else { 1 };
                        assert_eq!(probs[i * TOKENS + j], want, "row {i} col {j}");
                    }
                }
            }
        }
    }
}

fn ok_probs(r: Result<Vec<u8>, TestCaseError>) -> Vec<u8> {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Extreme codes and the largest constants the bounds allow, with and
/// without masks, for b = 2, 3, 4.
#[test]
fn softmax_row_extremes() {
    let big = 1i64 << 40;
    let labels_sets: Vec<Option<Vec<u8>>> = vec![
        None,
        Some(window_labels(16, 16, 1, 1)),
        Some(window_labels(8, 8, 0, 0)),
        Some(window_labels(24, 64, 2, 7)),
        Some((0..TOKENS).map(|t| (t % 2) as u8).collect()),
    ];
    let mut cases = 0usize;
    for n in [3u8, 7, 15] {
        let th_sets = [
            vec![-big; usize::from(n)],
            vec![big; usize::from(n)],
            (1..=i64::from(n))
                .map(|k| (2 * k - 1) * (1 << 29) / i64::from(n))
                .collect::<Vec<_>>(),
            Vec::new(),
        ];
        for (qv, kv) in [(0u8, 0u8), (n, n), (255, 255), (0, n), (n, 0), (255, 0)] {
            for (a, b, rpb_shift) in [
                (big, big, 40),
                (-big, -big, 40),
                (big, -big, 0),
                (-big, big, 40),
                (1 << 24, 0, 16),
            ] {
                for (rv, labels) in [i16::MIN, i16::MAX, 0]
                    .iter()
                    .zip(labels_sets.iter().cycle())
                {
                    for th in &th_sets {
                        // Alternate the key codes so logits differ per token.
                        let k: Vec<u8> = (0..TOKENS * EMBED)
                            .map(|p| {
                                if (p / EMBED).is_multiple_of(3) {
                                    kv
                                } else {
                                    qv
                                }
                            })
                            .collect();
                        let rpb: Vec<i16> = (0..RPB_ROWS)
                            .map(|r| if r % 2 == 0 { *rv } else { -1 })
                            .collect();
                        let case = SoftmaxCase {
                            n,
                            stride: EMBED,
                            col: 50,
                            q: vec![qv; TOKENS * EMBED],
                            k,
                            qk: QkParams { a, b, rpb_shift },
                            rpb,
                            labels: labels.clone(),
                            thresholds: th.clone(),
                        };
                        ok_probs(check_softmax(&case));
                        cases += 1;
                    }
                }
            }
        }
        // Every labelling, every extreme bias.
        for labels in &labels_sets {
            let case = SoftmaxCase {
                n,
                stride: HEAD_DIM,
                col: 0,
                q: (0..TOKENS * HEAD_DIM)
                    .map(|p| (p % 5) as u8 % (n + 1))
                    .collect(),
                k: (0..TOKENS * HEAD_DIM)
                    .map(|p| (p % 7) as u8 % (n + 1))
                    .collect(),
                qk: QkParams {
                    a: 1 << 26,
                    b: -(1 << 22),
                    rpb_shift: 18,
                },
                rpb: (0..RPB_ROWS).map(|r| (r as i16 - 112) * 37).collect(),
                labels: labels.clone(),
                thresholds: (1..=i64::from(n)).map(|k| k * (1 << 22)).collect(),
            };
            ok_probs(check_softmax(&case));
            cases += 1;
        }
    }
    assert!(cases > 500, "{cases}");
}

/// The generated softmax cases are not degenerate: a good share of them
/// have a row with more than two distinct codes.
#[test]
fn softmax_cases_produce_varied_codes() {
    let mut runner = TestRunner::deterministic();
    let strategy = softmax_case();
    let total = 300;
    let mut varied = 0;
    for _ in 0..total {
        let case = strategy
            .new_tree(&mut runner)
            .expect("softmax case")
            .current();
        let probs = ok_probs(core_softmax(&case));
        let some_row_varies = probs.chunks_exact(TOKENS).any(|row| {
            let mut seen = [false; 256];
            row.iter().for_each(|&p| seen[usize::from(p)] = true);
            seen.iter().filter(|&&s| s).count() > 2
        });
        varied += usize::from(some_row_varies);
    }
    eprintln!("softmax: {varied}/{total} generated cases have a row with > 2 distinct codes");
    assert!(
        varied * 10 >= total,
        "only {varied}/{total} generated softmax cases have a row with > 2 distinct codes"
    );
}

// ---------------------------------------------------------------------------
// av_row
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct AvCase {
    stride: usize,
    col: usize,
    /// 64 × 64 AttnProb codes.
    probs: Vec<u8>,
    /// 64 × stride codes.
    v: Vec<u8>,
    av: AvParams,
    levels: u8,
    /// The output map before the call (columns outside the head must stay).
    out: Vec<u8>,
}

/// `AvParams` within the validate bounds: "realistic" ones (the typical
/// `acc ≈ 16·N²` maps to about `N/2`, so codes spread over `0..=N`), or
/// anything up to the bounds.
fn av_params(n: u8) -> impl Strategy<Value = AvParams> {
    let n = i64::from(n);
    let realistic = (16u32..=40)
        .prop_flat_map(move |frac| {
            let one = 1i64 << frac;
            let a0 = one / (32 * n);
            (
                Just(frac),
                (a0 / 2)..=(2 * a0),
                -(one >> 12)..=(one >> 12),
                -(one >> 12)..=(one >> 12),
                -(n * one / 2)..=(n * one / 2),
            )
        })
        .prop_map(|(frac, a, b, c, d)| AvParams { a, b, c, d, frac });
    let bounds = (
        bounded(38),
        bounded(44),
        bounded(44),
        bounded(60),
        0u32..=62,
    )
        .prop_map(|(a, b, c, d, frac)| AvParams { a, b, c, d, frac });
    prop_oneof![2 => realistic, 1 => bounds]
}

fn av_case() -> impl Strategy<Value = AvCase> {
    (levels(), head_layout())
        .prop_flat_map(|(n, (stride, col))| {
            (
                Just((stride, col)),
                codes(n, TOKENS * TOKENS),
                codes(n, TOKENS * stride),
                av_params(n),
                prop_oneof![4 => Just(n), 1 => any::<u8>()],
                vec(any::<u8>(), TOKENS * stride),
            )
        })
        .prop_map(|((stride, col), probs, v, av, levels, out)| AvCase {
            stride,
            col,
            probs,
            v,
            av,
            levels,
            out,
        })
}

fn core_av(c: &AvCase) -> Result<Vec<u8>, TestCaseError> {
    prop_assert!(c.av.validate().is_ok(), "invalid {:?}", c.av);
    let mut out = c.out.clone();
    let res = attention::AvCall {
        probs: &c.probs,
        v: &c.v,
        stride: c.stride,
        col: c.col,
        av: &c.av,
        levels: c.levels,
        out_stride: c.stride,
    }
    .run(&mut out);
    prop_assert!(res.is_ok(), "core av_codes refused: {:?}", res);
    Ok(out)
}

fn check_av(c: &AvCase) -> Result<Vec<u8>, TestCaseError> {
    let want = core_av(c)?;
    let avc = AvParamsC::from(&c.av);
    for i in 0..TOKENS {
        let mut row = c.out[i * c.stride..(i + 1) * c.stride].to_vec();
        let res = sa::av_row(
            &c.probs[i * TOKENS..(i + 1) * TOKENS],
            &c.v,
            c.stride,
            c.col,
            &avc,
            c.levels,
            &mut row,
        );
        prop_assert_eq!(res, Some(()));
        let want_row = &want[i * c.stride..(i + 1) * c.stride];
        prop_assert_eq!(
            row.as_slice(),
            want_row,
            "av_row(i={}, stride={}, col={}, {:?}, levels={}, probs row={:?}, v head={:?}):\n  C    {:?}\n  core {:?}",
            i,
            c.stride,
            c.col,
            c.av,
            c.levels,
            &c.probs[i * TOKENS..(i + 1) * TOKENS],
            head_rows(&c.v, c.stride, c.col),
            &row,
            want_row
        );
    }
    Ok(want)
}

proptest! {
    #![proptest_config(cfg(OP_CASES))]

    #[test]
    fn av_row_matches_core(case in av_case()) {
        check_av(&case)?;
    }
}

#[test]
fn av_row_extremes() {
    let (a, bc, d) = (1i64 << 38, 1i64 << 44, 1i64 << 60);
    for n in [3u8, 7, 15] {
        for (pv, vv) in [(0u8, 0u8), (n, n), (255, 255), (0, 255), (255, 0), (n, 0)] {
            for av in [
                AvParams {
                    a,
                    b: bc,
                    c: bc,
                    d,
                    frac: 62,
                },
                AvParams {
                    a: -a,
                    b: -bc,
                    c: -bc,
                    d: -d,
                    frac: 62,
                },
                AvParams {
                    a,
                    b: -bc,
                    c: bc,
                    d: -d,
                    frac: 0,
                },
                AvParams {
                    a: 1 << 20,
                    b: 0,
                    c: 0,
                    d: 0,
                    frac: 30,
                },
                AvParams {
                    a: 0,
                    b: 0,
                    c: 0,
                    d: (1 << 30) * i64::from(n) / 2,
                    frac: 30,
                },
            ] {
                for (stride, col) in [(EMBED, 0), (EMBED, 50), (HEAD_DIM, 0)] {
                    for levels in [n, 0, 255] {
                        let case = AvCase {
                            stride,
                            col,
                            probs: (0..TOKENS * TOKENS)
                                .map(|p| if p % 3 == 0 { vv } else { pv })
                                .collect(),
                            v: vec![vv; TOKENS * stride],
                            av,
                            levels,
                            out: (0..TOKENS * stride).map(|p| p as u8).collect(),
                        };
                        ok_probs(check_av(&case));
                    }
                }
            }
        }
    }
}

/// The realistic `AvParams` give more than two distinct codes in a good
/// share of the generated cases.
#[test]
fn av_cases_produce_varied_codes() {
    let mut runner = TestRunner::deterministic();
    let strategy = av_case();
    let total = 300;
    let mut varied = 0;
    for _ in 0..total {
        let case = strategy.new_tree(&mut runner).expect("av case").current();
        let out = ok_probs(core_av(&case));
        let mut seen = [false; 256];
        for row in out.chunks_exact(case.stride) {
            row[case.col..case.col + HEAD_DIM]
                .iter()
                .for_each(|&p| seen[usize::from(p)] = true);
        }
        varied += usize::from(seen.iter().filter(|&&s| s).count() > 2);
    }
    eprintln!("av: {varied}/{total} generated cases have > 2 distinct codes");
    assert!(varied * 10 >= total, "only {varied}/{total} av cases vary");
}

// ---------------------------------------------------------------------------
// conv_output
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ConvCase {
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    /// I16 weights (else I8).
    wide: bool,
    /// The weight section's bytes (`cout·9·cin` I8 or I16 LE).
    weights: Vec<u8>,
    /// `h·w·cin` HWC values.
    input: Vec<i32>,
    /// `cout × [multiplier, shift, bias]`.
    quant: Vec<i32>,
}

impl ConvCase {
    fn weights(&self) -> ConvWeights<'_> {
        if self.wide {
            ConvWeights::I16(LeI16::new(&self.weights))
        } else {
            ConvWeights::I8(&self.weights)
        }
    }

    /// Output channel `o`'s `9·cin` weights widened to i16 (the kernel's form).
    fn row_i16(&self, o: usize) -> Vec<i16> {
        let n = 9 * self.cin;
        if self.wide {
            self.weights[2 * o * n..2 * (o + 1) * n]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect()
        } else {
            self.weights[o * n..(o + 1) * n]
                .iter()
                .map(|&b| i16::from(b as i8))
                .collect()
        }
    }
}

fn quant_words() -> impl Strategy<Value = [i32; 3]> {
    (
        prop_oneof![3 => (1i32 << 30)..=i32::MAX, 1 => select(vec![1i32 << 30, i32::MAX])],
        prop_oneof![
            2 => MIN_SHIFT..=MAX_SHIFT,
            2 => 0i8..=24,
            1 => select(vec![MIN_SHIFT, -32, -1, 0, 1, 31, 32, 63, 64, MAX_SHIFT]),
        ],
        i32_edgy(),
    )
        .prop_map(|(m, s, b)| [m, i32::from(s), b])
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        prop_oneof![2 => 1usize..=8, 2 => 1usize..=64, 1 => Just(64usize)],
        1usize..=4,
        1usize..=6,
        1usize..=6,
        any::<bool>(),
    )
        .prop_flat_map(|(cin, cout, h, w, wide)| {
            let wlen = cout * 9 * cin * if wide { 2 } else { 1 };
            let input = prop_oneof![
                2 => vec(any::<i32>(), h * w * cin),
                3 => vec(-32_768i32..=32_767, h * w * cin),
                1 => vec(select(vec![i32::MIN, -32_769, -32_768, 0, 32_767, 32_768, i32::MAX]), h * w * cin),
            ];
            let weights = prop_oneof![
                3 => vec(any::<u8>(), wlen),
                1 => vec(select(vec![0x00u8, 0x80, 0x7f, 0xff]), wlen),
            ];
            (
                Just((cin, cout, h, w, wide)),
                weights,
                input,
                vec(quant_words(), cout),
            )
        })
        .prop_map(|((cin, cout, h, w, wide), weights, input, quant)| ConvCase {
            cin,
            cout,
            h,
            w,
            wide,
            weights,
            input,
            quant: quant.concat(),
        })
}

fn check_conv(c: &ConvCase) -> Result<(), TestCaseError> {
    let conv = Conv {
        cin: c.cin,
        cout: c.cout,
        weights: c.weights(),
        quant: c.quant.as_slice(),
    };
    let mut emitted = Vec::new();
    let res = conv.run(&c.input, c.h, c.w, |p, o, v| emitted.push((p, o, v)));
    prop_assert!(res.is_ok(), "core Conv::run refused: {:?}", res);
    prop_assert_eq!(emitted.len(), c.h * c.w * c.cout);
    let rows: Vec<Vec<i16>> = (0..c.cout).map(|o| c.row_i16(o)).collect();
    for &(p, o, want) in &emitted {
        let (y, x) = (p / c.w, p % c.w);
        let [m, s, b] = [c.quant[3 * o], c.quant[3 * o + 1], c.quant[3 * o + 2]];
        let got = sa::conv_output(&c.input, c.h, c.w, c.cin, y, x, &rows[o], m, s, b);
        prop_assert_eq!(
            got,
            Some(want),
            "conv_output(y={}, x={}, o={}, multiplier={}, shift={}, bias={}) of {:?}: C {:?} vs core {}",
            y,
            x,
            o,
            m,
            s,
            b,
            c,
            got,
            want
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg(OP_CASES))]

    #[test]
    fn conv_output_matches_core(case in conv_case()) {
        check_conv(&case)?;
    }
}

/// Largest accumulators (`9·64` products of `±2^15`), every shift edge,
/// saturating bias, odd map sizes.
#[test]
fn conv_output_extremes() {
    let shifts = [MIN_SHIFT, -32, -31, -1, 0, 1, 31, 32, 63, 64, MAX_SHIFT];
    for wide in [false, true] {
        for (cin, h, w) in [(64usize, 3usize, 3usize), (1, 1, 1), (3, 1, 5), (7, 5, 1)] {
            for (iv, wv) in [
                (i32::MIN, 0x80u8),
                (i32::MAX, 0x80),
                (-32_768, 0x7f),
                (32_767, 0x7f),
                (-32_768, 0xff),
            ] {
                let mut quant = Vec::new();
                for (i, &s) in shifts.iter().enumerate() {
                    let m = if i % 2 == 0 { i32::MAX } else { 1 << 30 };
                    let b = [i32::MIN, i32::MAX, 0][i % 3];
                    quant.extend_from_slice(&[m, i32::from(s), b]);
                }
                let cout = shifts.len();
                let wlen = cout * 9 * cin * if wide { 2 } else { 1 };
                let case = ConvCase {
                    cin,
                    cout,
                    h,
                    w,
                    wide,
                    weights: vec![wv; wlen],
                    input: vec![iv; h * w * cin],
                    quant,
                };
                ok(check_conv(&case));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// window_token
// ---------------------------------------------------------------------------

fn check_window(
    wy: usize,
    wx: usize,
    hp: usize,
    wp: usize,
    shifted: bool,
) -> Result<(), TestCaseError> {
    let mut pos = [0usize; TOKENS];
    let mut labels = [0u8; TOKENS];
    runner::window_tokens(wy, wx, hp, wp, shifted, &mut pos, &mut labels);
    for t in 0..TOKENS {
        let got = sa::window_token(
            wy as u32, wx as u32, t as u32, hp as u32, wp as u32, shifted,
        );
        let want = (pos[t] as u32, labels[t]);
        prop_assert_eq!(
            got,
            Some(want),
            "window_token(wy={}, wx={}, t={}, hp={}, wp={}, shifted={}): C {:?} vs core {:?}",
            wy,
            wx,
            t,
            hp,
            wp,
            shifted,
            got,
            want
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg(OP_CASES))]

    #[test]
    fn window_token_matches_core(
        (hp, wp, wy, wx) in (1usize..=8, 1usize..=8)
            .prop_flat_map(|(h, w)| (Just(8 * h), Just(8 * w), 0..h, 0..w)),
        shifted in any::<bool>(),
    ) {
        check_window(wy, wx, hp, wp, shifted)?;
    }

    /// Sides that are not multiples of 8 and windows past the map: the
    /// same formula (the runner never calls it so, but it is total).
    #[test]
    fn window_token_matches_core_any_side(
        hp in 1usize..=200, wp in 1usize..=200, wy in 0usize..40, wx in 0usize..40,
        shifted in any::<bool>(),
    ) {
        check_window(wy, wx, hp, wp, shifted)?;
    }
}

#[test]
fn window_token_exhaustive() {
    for hp in (8..=64).step_by(8) {
        for wp in (8..=64).step_by(8) {
            for wy in 0..hp / 8 {
                for wx in 0..wp / 8 {
                    for shifted in [false, true] {
                        ok(check_window(wy, wx, hp, wp, shifted));
                    }
                }
            }
        }
    }
    assert_eq!(sa::window_token(0, 0, TOKENS as u32, 8, 8, true), None);
    assert_eq!(sa::window_token(0, 0, 0, 0, 8, true), None);
    assert_eq!(sa::window_token(0, 0, 0, 8, 0, false), None);
}

// ---------------------------------------------------------------------------
// Struct layouts
// ---------------------------------------------------------------------------

#[test]
fn struct_sizes_match_c() {
    for (i, &(name, size)) in STRUCT_SIZES.iter().enumerate() {
        assert_eq!(
            sa::struct_size(i as u32) as usize,
            size,
            "sizeof({name}) differs between C and Rust"
        );
    }
    assert_eq!(sa::struct_size(STRUCT_SIZES.len() as u32), 0);
    assert_eq!(sa::struct_size(14), 0);
    assert_eq!(sa::struct_size(u32::MAX), 0);
}
