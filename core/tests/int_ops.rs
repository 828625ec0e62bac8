//! The integer operators of `tdquant_core::int` against `f64` references.
//!
//! Each test builds the operator's integer constants from real-valued
//! parameters the way the exporter does, runs the integer operator, and
//! compares with the real-valued computation: exact where the operator is
//! exact, within the documented bound otherwise, and for quantized outputs
//! "identical except next to a rounding tie, never more than one code apart".

mod common;

use common::Rng;
use proptest::prelude::*;
use tdquant_core::int::arith::{isqrt_u128, rshift_round, rshift_round_i128};
use tdquant_core::int::attention::{
    rpb_index, AvCall, AvParams, QkParams, SoftmaxCall, MASK_Z, PROB_FRAC,
};
use tdquant_core::int::conv::{Conv, ConvWeights};
use tdquant_core::int::exp2::{exp2_neg_q31, EXP2_LUT, LN2_Q32};
use tdquant_core::int::layernorm::{normalize, FixedQuant, LnParams};
use tdquant_core::int::linear::{linear_codes, CodeAffine, LinearCall};
use tdquant_core::int::{LeI16, OpError, RPB_ROWS, STREAM_LIMIT, TOKENS};
use tdquant_core::{pack_codes, BitWidth, PackedLayout, PackedMatrix, Requantizer};

// ---------------------------------------------------------------------------
// Helpers

fn words_i64(v: &[i64]) -> Vec<i32> {
    v.iter()
        .flat_map(|&x| [x as u32 as i32, (x >> 32) as i32])
        .collect()
}

fn frac_for(max_abs: f64, bits: i32) -> i32 {
    if max_abs > 0.0 {
        (f64::from(bits) - max_abs.log2()).floor() as i32
    } else {
        1000
    }
}

/// Code agreement tally: integer vs exact real-valued code.
#[derive(Default, Debug)]
struct Tally {
    total: usize,
    equal: usize,
    max_diff: i32,
}
impl Tally {
    fn add(&mut self, got: u8, want: u8) {
        self.total += 1;
        let d = (i32::from(got) - i32::from(want)).abs();
        if d == 0 {
            self.equal += 1;
        }
        self.max_diff = self.max_diff.max(d);
    }
    fn rate(&self) -> f64 {
        self.equal as f64 / self.total.max(1) as f64
    }
    /// Prints the tally of `what` and asserts at least `min_rate` exact and
    /// none more than one code off.
    fn assert_close(&self, what: &str, min_rate: f64) {
        println!("{what}: {self:?} ({:.6})", self.rate());
        assert!(
            self.rate() >= min_rate && self.max_diff <= 1,
            "{what}: {self:?}"
        );
    }
}

/// `clamp(round((x − l)/s), 0, N)` in f64 (ties up, as the integer path).
fn code_f64(x: f64, l: f64, s: f64, n: u8) -> u8 {
    ((x - l) / s + 0.5).floor().clamp(0.0, f64::from(n)) as u8
}

// ---------------------------------------------------------------------------
// arith

proptest! {
    #[test]
    fn rshift_round_is_half_up(v in any::<i64>(), k in 0u32..70) {
        let got = rshift_round(v, k);
        let want = if k >= 64 {
            0
        } else {
            // floor((v + 2^(k−1)) / 2^k) in i128.
            let half = if k == 0 { 0 } else { 1i128 << (k - 1) };
            ((i128::from(v) + half) >> k) as i64
        };
        prop_assert_eq!(got, want);
        prop_assert_eq!(rshift_round_i128(i128::from(v), k.min(127)) as i64, if k >= 64 { rshift_round_i128(i128::from(v), k) as i64 } else { want });
    }

    #[test]
    fn isqrt_is_floor_sqrt(n in any::<u128>()) {
        let r = isqrt_u128(n);
        prop_assert!(r.checked_mul(r).is_some_and(|sq| sq <= n));
        let r1 = r + 1;
        prop_assert!(r1.checked_mul(r1).is_none_or(|sq| sq > n));
    }
}

// ---------------------------------------------------------------------------
// exp2

#[test]
fn exp2_constants() {
    for (i, &v) in EXP2_LUT.iter().enumerate() {
        let want = (2f64.powi(31) * (-(i as f64) / 256.0).exp2()).round() as u32;
        assert_eq!(v, want, "EXP2_LUT[{i}]");
    }
    assert_eq!(
        LN2_Q32,
        (std::f64::consts::LN_2 * 2f64.powi(32)).round() as u64
    );
    assert_eq!(
        MASK_Z,
        (-100.0 * std::f64::consts::LOG2_E * 2f64.powi(32)).round() as i64
    );
}

fn exp2_error(d: u64) -> f64 {
    let want = 2f64.powi(31) * (-(d as f64) / 2f64.powi(32)).exp2();
    (f64::from(exp2_neg_q31(d)) - want).abs()
}

#[test]
fn exp2_dense_within_two_units() {
    let mut worst = 0f64;
    // Every LUT cell at 1024 offsets, integer parts 0..34.
    for n in 0..34u64 {
        for i in 0..256u64 {
            for r in (0..(1u64 << 24)).step_by(1 << 14) {
                let d = (n << 32) | (i << 24) | r;
                worst = worst.max(exp2_error(d));
            }
        }
    }
    println!("exp2 worst error on the dense grid: {worst:.3} units of 2^-31");
    assert!(worst <= 2.0, "exp2 error {worst}");
    assert_eq!(exp2_neg_q31(0), 1 << 31);
    assert_eq!(exp2_neg_q31(32 << 32), 0);
    assert_eq!(exp2_neg_q31(u64::MAX), 0);
}

proptest! {
    #[test]
    fn exp2_random_within_two_units(d in 0u64..(40u64 << 32)) {
        prop_assert!(exp2_error(d) <= 2.0);
    }

    #[test]
    fn exp2_is_monotone(d in 0u64..(34u64 << 32), step in 1u64..1_000_000) {
        prop_assert!(exp2_neg_q31(d) >= exp2_neg_q31(d + step));
    }
}

// ---------------------------------------------------------------------------
// LayerNorm

const F: i32 = 15;

fn eps_t() -> i64 {
    (3600.0 * 1e-5 * 2f64.powi(2 * F)).round() as i64
}

fn ln_reference(x: &[i32]) -> Vec<f64> {
    let v: Vec<f64> = x
        .iter()
        .map(|&q| f64::from(q.clamp(-STREAM_LIMIT, STREAM_LIMIT)) / 2f64.powi(F))
        .collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
    // E = round(n²·eps·2^(2F)) is the integer path's term for n channels;
    // eps_t() is built for n = 60, so the eps it stands for depends on n.
    let eps = eps_t() as f64 / (n * n) / 2f64.powi(2 * F);
    v.iter().map(|a| (a - mean) / (var + eps).sqrt()).collect()
}

fn check_ln(x: &[i32]) -> Result<(), TestCaseError> {
    let mut xh = vec![0i32; x.len()];
    normalize(x, eps_t(), &mut xh).unwrap();
    for (got, want) in xh.iter().zip(ln_reference(x)) {
        let err = (f64::from(*got) - want * 2f64.powi(24)).abs();
        // ρ has relative error < 2^−29.5; plus the final rounding.
        prop_assert!(
            err <= 1.0 + want.abs() * 2f64.powi(24 - 29),
            "x̂ error {err} for {want}"
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn layernorm_matches_f64(
        scale in 0.0f64..12.0,
        offset in -1.0e6f64..1.0e6,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed | 1);
        let amp = 2f64.powf(scale);
        let x: Vec<i32> = (0..60)
            .map(|_| (offset + rng.range(-amp, amp)).round().clamp(-2e9, 2e9) as i32)
            .collect();
        check_ln(&x)?;
    }

    #[test]
    fn layernorm_extremes(v in prop::collection::vec(prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(0), any::<i32>()], 1..64)) {
        check_ln(&v)?;
    }
}

#[test]
fn layernorm_rejects_bad_arguments() {
    let mut out = [0i32; 4];
    assert!(matches!(
        normalize(&[], 1, &mut []),
        Err(OpError::Param { .. })
    ));
    assert!(matches!(
        normalize(&[1, 2, 3], 1, &mut out),
        Err(OpError::Shape { .. })
    ));
    assert!(matches!(
        normalize(&[1, 2, 3, 4], 0, &mut out),
        Err(OpError::Param { .. })
    ));
    let x = [7i32; 65];
    let mut o = [0i32; 65];
    assert!(normalize(&x, 1, &mut o).is_err());
    // Constant tokens normalise to zero.
    normalize(&[123_456; 4], eps_t(), &mut out).unwrap();
    assert_eq!(out, [0; 4]);
}

#[test]
fn ln_affine_and_fixed_quantizer_match_f64() {
    let mut rng = Rng(0x5eed);
    let mut tally = Tally::default();
    for bits in [2u8, 3, 4] {
        let n = (1u8 << bits) - 1;
        for _ in 0..200 {
            let gamma: Vec<f64> = (0..60).map(|_| rng.range(-2.5, 2.5)).collect();
            let beta: Vec<f64> = (0..60).map(|_| rng.range(-1.0, 1.0)).collect();
            let (l, u) = (rng.range(-4.0, -0.5), rng.range(0.5, 4.0));
            let s = f64::from(((u - l) as f32) / f32::from(n));
            let g_frac = frac_for(2.5, 30);
            let y_frac = 28.min(frac_for(s * f64::from(n), 31));
            let gw: Vec<i32> = gamma
                .iter()
                .map(|g| (g * 2f64.powi(g_frac)).round() as i32)
                .collect();
            let bw: Vec<i32> = beta
                .iter()
                .map(|b| (b * 2f64.powi(y_frac)).round() as i32)
                .collect();
            let p = LnParams {
                gamma: &gw[..],
                beta: &bw[..],
                g_frac: g_frac as u32,
                y_frac: y_frac as u32,
                eps_t: eps_t(),
            };
            p.validate(60).unwrap();
            let shift = y_frac + s.log2().floor() as i32 + 30;
            let fq = FixedQuant {
                offset: (l * 2f64.powi(y_frac)).round() as i64,
                mult: (2f64.powi(shift - y_frac) / s).round() as i64,
                shift: shift as u32,
                levels: n,
            };
            fq.validate().unwrap();
            let amp = rng.range(1.0, 3000.0);
            let x: Vec<i32> = (0..60)
                .map(|_| (rng.range(-amp, amp) * 32.0) as i32)
                .collect();
            let mut xh = [0i32; 60];
            normalize(&x, eps_t(), &mut xh).unwrap();
            let reference = ln_reference(&x);
            for c in 0..60 {
                let y = p.output(c, xh[c]);
                let want = reference[c] * gamma[c] + beta[c];
                let yr = y as f64 / 2f64.powi(y_frac);
                assert!(
                    (yr - want).abs() < 1e-6 * (1.0 + want.abs()),
                    "LN output {yr} vs {want}"
                );
                tally.add(fq.code(y), code_f64(want, l, s, n));
            }
        }
    }
    tally.assert_close("LN → quantizer", 0.999);
}

#[test]
fn fixed_quantizer_rejects_unsafe_constants() {
    let ok = FixedQuant {
        offset: 0,
        mult: 1 << 30,
        shift: 40,
        levels: 15,
    };
    ok.validate().unwrap();
    for bad in [
        FixedQuant { mult: 0, ..ok },
        FixedQuant {
            mult: 1 << 31,
            ..ok
        },
        FixedQuant { shift: 0, ..ok },
        FixedQuant { shift: 63, ..ok },
        FixedQuant {
            offset: i64::MAX,
            ..ok
        },
        // 2^32·M < N·2^S: the clamp could change codes.
        FixedQuant { shift: 62, ..ok },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    // Extreme inputs saturate instead of overflowing.
    assert_eq!(ok.code(i64::MAX), 15);
    assert_eq!(ok.code(i64::MIN), 0);
}

// ---------------------------------------------------------------------------
// Linear

struct Grid {
    l: f64,
    s: f64,
    n: u8,
}

fn random_grid(rng: &mut Rng, n: u8, lo: (f64, f64), hi: (f64, f64)) -> Grid {
    let (l, u) = (rng.range(lo.0, lo.1) as f32, rng.range(hi.0, hi.1) as f32);
    Grid {
        l: f64::from(l),
        s: f64::from((u - l) / f32::from(n)),
        n,
    }
}

fn pack(codes: &[u8], rows: usize, cols: usize, bits: BitWidth) -> Vec<u8> {
    let layout = PackedLayout::new(bits, rows as u32, cols as u32);
    let mut out = vec![0u8; layout.byte_len().unwrap()];
    pack_codes(layout, codes, &mut out).unwrap();
    out
}

fn fold(a: f64, b: f64, c: &[f64]) -> (CodeAffine, Vec<i32>) {
    let mut frac = 48.min(frac_for(a.abs().max(b.abs()), 37));
    let c_room = frac_for(c.iter().fold(0f64, |m, x| m.max(x.abs())), 30);
    let mut c_shift = (frac - c_room).max(0);
    if c_shift > 29 {
        frac -= c_shift - 29;
        c_shift = 29;
    }
    let aff = CodeAffine {
        a: (a * 2f64.powi(frac)).round() as i64,
        b: (b * 2f64.powi(frac)).round() as i64,
        c_shift: c_shift as u32,
        frac: frac as u32,
    };
    let rows = c
        .iter()
        .map(|x| (x * 2f64.powi(frac - c_shift)).round() as i32)
        .collect();
    (aff, rows)
}

#[test]
fn linear_with_correction_matches_f64() {
    let mut rng = Rng(42);
    for (bits, width) in [(2u8, BitWidth::B2), (3, BitWidth::B3), (4, BitWidth::B4)] {
        let n = width.levels();
        let mut tally = Tally::default();
        for trial in 0..60 {
            let (k, rows, tokens) = if trial % 2 == 0 {
                (60, 60, 64)
            } else {
                (120, 60, 37)
            };
            let gi = random_grid(&mut rng, n, (-3.0, -0.1), (0.1, 3.0));
            let gw = random_grid(&mut rng, n, (-0.3, -0.01), (0.01, 0.3));
            let go = random_grid(&mut rng, n, (-5.0, -0.5), (0.5, 5.0));
            let sigma = if trial % 3 == 0 {
                f64::from(10f32.powf(-0.5))
            } else {
                1.0
            };
            let w: Vec<u8> = (0..rows * k)
                .map(|_| rng.below(u64::from(n) + 1) as u8)
                .collect();
            let x: Vec<u8> = (0..tokens * k)
                .map(|_| rng.below(u64::from(n) + 1) as u8)
                .collect();
            let bias: Vec<f64> = (0..rows).map(|_| rng.range(-0.5, 0.5)).collect();
            let c: Vec<f64> = (0..rows)
                .map(|j| {
                    let rowsum: f64 = w[j * k..(j + 1) * k].iter().map(|&v| f64::from(v)).sum();
                    (sigma * (gi.l * gw.s * rowsum + k as f64 * gi.l * gw.l + bias[j]) - go.l)
                        / go.s
                })
                .collect();
            let (aff, cw) = fold(sigma * gi.s * gw.s / go.s, sigma * gi.s * gw.l / go.s, &c);
            let packed = pack(&w, rows, k, width);
            let m = PackedMatrix::new(PackedLayout::new(width, rows as u32, k as u32), &packed)
                .unwrap();
            let mut out = vec![0u8; tokens * rows];
            let call = LinearCall::new(&x, k, &m, 0, rows, &aff, &cw[..]);
            linear_codes(&call, n, &mut out).unwrap();
            for t in 0..tokens {
                for j in 0..rows {
                    let y: f64 = (0..k)
                        .map(|i| {
                            (gi.l + gi.s * f64::from(x[t * k + i]))
                                * (gw.l + gw.s * f64::from(w[j * k + i]))
                        })
                        .sum::<f64>()
                        + bias[j];
                    tally.add(out[t * rows + j], code_f64(sigma * y, go.l, go.s, n));
                }
            }
        }
        tally.assert_close(&format!("W{bits} linear codes"), 0.9995);
    }
}

#[test]
fn linear_rejects_bad_shapes() {
    let packed = pack(&[0u8; 60 * 60], 60, 60, BitWidth::B4);
    let m = PackedMatrix::new(PackedLayout::new(BitWidth::B4, 60, 60), &packed).unwrap();
    let aff = CodeAffine {
        a: 1,
        b: 1,
        c_shift: 0,
        frac: 0,
    };
    let c = [0i32; 60];
    let mut out = vec![0u8; 60];
    let mut codes = |input: &[u8], row0: u32, aff: &CodeAffine, c: &[i32]| {
        let call = LinearCall::new(input, 60, &m, row0, 60, aff, c);
        linear_codes(&call, 15, &mut out)
    };
    assert!(codes(&[0u8; 59], 0, &aff, &c[..]).is_err());
    assert!(codes(&[0u8; 60], 1, &aff, &c[..]).is_err());
    assert!(codes(&[0u8; 60], 0, &aff, &c[..59]).is_err());
    let bad = CodeAffine { a: 1 << 39, ..aff };
    assert!(codes(&[0u8; 60], 0, &bad, &c[..]).is_err());
    // Garbage codes (≤ 255) stay within the bound proof: no overflow.
    let aff = CodeAffine {
        a: 1 << 38,
        b: -(1 << 38),
        c_shift: 29,
        frac: 62,
    };
    let cmax = [i32::MAX; 60];
    codes(&[255u8; 60], 0, &aff, &cmax[..]).unwrap();
}

// ---------------------------------------------------------------------------
// Attention

struct AttnCase {
    q: Vec<u8>,
    k: Vec<u8>,
    v: Vec<u8>,
    gq: Grid,
    gk: Grid,
    gv: Grid,
    gp: Grid,
    go: Grid,
    rpb: Vec<f64>, // [225]
    labels: Option<Vec<u8>>,
}

fn attn_case(rng: &mut Rng, n: u8, masked: bool) -> AttnCase {
    let codes = |rng: &mut Rng| {
        (0..TOKENS * 60)
            .map(|_| rng.below(u64::from(n) + 1) as u8)
            .collect()
    };
    AttnCase {
        q: codes(rng),
        k: codes(rng),
        v: codes(rng),
        gq: random_grid(rng, n, (-1.5, -0.2), (0.2, 1.5)),
        gk: random_grid(rng, n, (-3.0, -0.5), (0.5, 3.0)),
        gv: random_grid(rng, n, (-2.0, -0.2), (0.2, 2.0)),
        gp: random_grid(rng, n, (0.0, 0.0), (0.1, 0.9)),
        go: random_grid(rng, n, (-1.0, -0.1), (0.1, 1.0)),
        rpb: (0..RPB_ROWS).map(|_| rng.range(-4.0, 4.0)).collect(),
        labels: masked.then(|| (0..TOKENS).map(|_| rng.below(4) as u8).collect()),
    }
}

fn softmax_reference(c: &AttnCase, head: usize) -> Vec<f64> {
    let mut p = vec![0f64; TOKENS * TOKENS];
    for i in 0..TOKENS {
        let mut z = [0f64; TOKENS];
        for (j, zj) in z.iter_mut().enumerate() {
            let dot: f64 = (0..10)
                .map(|d| {
                    (c.gq.l + c.gq.s * f64::from(c.q[i * 60 + head * 10 + d]))
                        * (c.gk.l + c.gk.s * f64::from(c.k[j * 60 + head * 10 + d]))
                })
                .sum();
            let mask = match &c.labels {
                Some(l) if l[i] != l[j] => -100.0,
                _ => 0.0,
            };
            *zj = dot + c.rpb[rpb_index(i, j)] + mask;
        }
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
        for j in 0..TOKENS {
            p[i * TOKENS + j] = (z[j] - m).exp() / sum;
        }
    }
    p
}

fn qk_constants(c: &AttnCase) -> (QkParams, Vec<u8>, Vec<i32>) {
    let log2e = std::f64::consts::LOG2_E;
    let r_frac = frac_for(c.rpb.iter().fold(0f64, |m, v| m.max(v.abs())) * log2e, 15).min(32);
    let table: Vec<u8> = c
        .rpb
        .iter()
        .flat_map(|v| ((v * log2e * 2f64.powi(r_frac)).round() as i16).to_le_bytes())
        .collect();
    let qk = QkParams {
        a: (c.gq.s * c.gk.s * log2e * 2f64.powi(32)).round() as i64,
        b: (c.gq.l * c.gk.s * log2e * 2f64.powi(32)).round() as i64,
        rpb_shift: (32 - r_frac) as u32,
    };
    let levels: Vec<i64> = (1..=c.gp.n)
        .map(|k| {
            ((c.gp.l + (f64::from(k) - 0.5) * c.gp.s) * 2f64.powi(PROB_FRAC as i32)).round() as i64
        })
        .collect();
    (qk, table, words_i64(&levels))
}

/// For activations of 2, 3 and 4 bits (top code `n`): `trials(rng, n,
/// tally)`, then the tally checked as `A{bits} {what}`.
fn check_widths(
    seed: u64,
    what: &str,
    min_rate: f64,
    mut trials: impl FnMut(&mut Rng, u8, &mut Tally),
) {
    let mut rng = Rng(seed);
    for bits in [2u8, 3, 4] {
        let n = (1u8 << bits) - 1;
        let mut tally = Tally::default();
        trials(&mut rng, n, &mut tally);
        tally.assert_close(&format!("A{bits} {what}"), min_rate);
    }
}

#[test]
fn softmax_codes_match_f64() {
    check_widths(7, "softmax codes", 0.999, |rng, n, tally| {
        for trial in 0..12 {
            let case = attn_case(rng, n, trial % 2 == 1);
            let (qk, table, thresholds) = qk_constants(&case);
            let mut probs = vec![0u8; TOKENS * TOKENS];
            for head in 0..6 {
                SoftmaxCall {
                    q: &case.q,
                    k: &case.k,
                    stride: 60,
                    col: head * 10,
                    qk: &qk,
                    rpb: LeI16::new(&table),
                    labels: case.labels.as_deref(),
                    thresholds: &thresholds[..],
                }
                .run(&mut probs)
                .unwrap();
                let reference = softmax_reference(&case, head);
                for (got, want) in probs.iter().zip(reference) {
                    tally.add(*got, code_f64(want, case.gp.l, case.gp.s, n));
                }
            }
        }
    });
}

#[test]
fn av_codes_match_f64() {
    check_widths(9, "P·v codes", 0.9995, |rng, n, tally| {
        for _ in 0..20 {
            let case = attn_case(rng, n, false);
            let probs: Vec<u8> = (0..TOKENS * TOKENS)
                .map(|_| rng.below(u64::from(n) + 1) as u8)
                .collect();
            let (gp, gv, go) = (&case.gp, &case.gv, &case.go);
            let xa = gp.s * gv.s / go.s;
            let xb = gp.s * gv.l / go.s;
            let xc = gp.l * gv.s / go.s;
            let xd = (64.0 * gp.l * gv.l - go.l) / go.s;
            let frac = 48
                .min(frac_for(xa.abs(), 37))
                .min(frac_for(xb.abs().max(xc.abs()), 43))
                .min(frac_for(xd.abs(), 59));
            let sc = 2f64.powi(frac);
            let av = AvParams {
                a: (xa * sc).round() as i64,
                b: (xb * sc).round() as i64,
                c: (xc * sc).round() as i64,
                d: (xd * sc).round() as i64,
                frac: frac as u32,
            };
            let mut out = vec![0u8; TOKENS * 60];
            for head in 0..6 {
                AvCall {
                    probs: &probs,
                    v: &case.v,
                    stride: 60,
                    col: head * 10,
                    av: &av,
                    levels: n,
                    out_stride: 60,
                }
                .run(&mut out)
                .unwrap();
            }
            for i in 0..TOKENS {
                for ch in 0..60 {
                    let o: f64 = (0..TOKENS)
                        .map(|j| {
                            (gp.l + gp.s * f64::from(probs[i * TOKENS + j]))
                                * (gv.l + gv.s * f64::from(case.v[j * 60 + ch]))
                        })
                        .sum();
                    tally.add(out[i * 60 + ch], code_f64(o, go.l, go.s, n));
                }
            }
        }
    });
}

#[test]
fn attention_rejects_bad_arguments() {
    let codes = vec![0u8; TOKENS * 60];
    let table = vec![0u8; RPB_ROWS * 2];
    let qk = QkParams {
        a: 1,
        b: 1,
        rpb_shift: 0,
    };
    let th = [0i32; 6];
    let mut probs = vec![0u8; TOKENS * TOKENS];
    let run = |col: usize, q: &[u8], table: &[u8], th: &[i32], qk: &QkParams, probs: &mut [u8]| {
        SoftmaxCall {
            q,
            k: &codes,
            stride: 60,
            col,
            qk,
            rpb: LeI16::new(table),
            labels: None,
            thresholds: th,
        }
        .run(probs)
    };
    assert!(run(0, &codes, &table, &th, &qk, &mut probs).is_ok());
    assert!(run(51, &codes, &table, &th, &qk, &mut probs).is_err());
    assert!(run(0, &codes[1..], &table, &th, &qk, &mut probs).is_err());
    assert!(run(0, &codes, &table[2..], &th, &qk, &mut probs).is_err());
    assert!(run(0, &codes, &table, &th[1..], &qk, &mut probs).is_err());
    assert!(run(
        0,
        &codes,
        &table,
        &th,
        &QkParams { a: 1 << 41, ..qk },
        &mut probs
    )
    .is_err());
    assert!(run(0, &codes, &table, &th, &qk, &mut probs[1..]).is_err());
    // Extreme codes and constants: no overflow, codes in range.
    let full = vec![255u8; TOKENS * 60];
    let big = QkParams {
        a: -(1 << 40),
        b: 1 << 40,
        rpb_shift: 40,
    };
    let th: Vec<i32> = words_i64(&[-(1 << 40), 0, 1 << 29, 1 << 40]);
    let t16: Vec<u8> = (0..RPB_ROWS)
        .flat_map(|i| if i % 2 == 0 { i16::MIN } else { i16::MAX }.to_le_bytes())
        .collect();
    SoftmaxCall {
        q: &full,
        k: &full,
        stride: 60,
        col: 50,
        qk: &big,
        rpb: LeI16::new(&t16),
        labels: Some(&[0u8; 64]),
        thresholds: &th[..],
    }
    .run(&mut probs)
    .unwrap();
    assert!(probs.iter().all(|&p| p <= 4));
}

// ---------------------------------------------------------------------------
// Convolution

#[test]
fn conv_matches_direct_reference() {
    let mut rng = Rng(3);
    for (h, w, cin, cout, wide) in [
        (5, 7, 3, 4, false),
        (8, 8, 60, 60, false),
        (3, 1, 2, 5, true),
        (1, 1, 64, 64, true),
    ] {
        let input: Vec<i32> = (0..h * w * cin)
            .map(|_| rng.below(70000) as i32 - 35000)
            .collect();
        let weights: Vec<i32> = (0..cout * 9 * cin)
            .map(|_| {
                if wide {
                    rng.below(65536) as i32 - 32768
                } else {
                    rng.below(256) as i32 - 128
                }
            })
            .collect();
        let bytes: Vec<u8> = if wide {
            weights
                .iter()
                .flat_map(|&v| (v as i16).to_le_bytes())
                .collect()
        } else {
            weights.iter().map(|&v| v as i8 as u8).collect()
        };
        let mut quant = Vec::new();
        let mut reqs = Vec::new();
        for _ in 0..cout {
            let r = Requantizer::from_scale(rng.range(1e-6, 10.0)).unwrap();
            let bias = rng.below(2000) as i32 - 1000;
            quant.extend([r.multiplier(), i32::from(r.shift()), bias]);
            reqs.push((r, i64::from(bias)));
        }
        let conv = Conv {
            cin,
            cout,
            weights: if wide {
                ConvWeights::I16(LeI16::new(&bytes))
            } else {
                ConvWeights::I8(&bytes)
            },
            quant: &quant[..],
        };
        let mut got = vec![0i64; h * w * cout];
        conv.run(&input, h, w, |p, o, v| got[p * cout + o] = v)
            .unwrap();
        for y in 0..h {
            for x in 0..w {
                for o in 0..cout {
                    let mut acc = 0i128;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (yy, xx) = (y as i64 + ky as i64 - 1, x as i64 + kx as i64 - 1);
                            if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
                                continue;
                            }
                            for c in 0..cin {
                                let a = input[(yy as usize * w + xx as usize) * cin + c]
                                    .clamp(-32768, 32767);
                                acc += i128::from(a)
                                    * i128::from(weights[o * 9 * cin + (ky * 3 + kx) * cin + c]);
                            }
                        }
                    }
                    let (r, b) = reqs[o];
                    let want = r.apply_i64(acc as i64) + b;
                    assert_eq!(got[(y * w + x) * cout + o], want, "{h}x{w} ({y},{x}) o={o}");
                    // And against the real-valued product.
                    let real = acc as f64 * r.scale() + b as f64;
                    assert!((want as f64 - real).abs() <= 0.5 + real.abs() * 1e-9);
                }
            }
        }
    }
}

#[test]
fn conv_rejects_bad_arguments() {
    let quant = [1 << 30, 0, 0];
    let bad_q = [1, 0, 0];
    let w = [0u8; 27];
    // A 3 → 1 channel conv with int8 weights.
    let conv = |w, quant| Conv {
        cin: 3,
        cout: 1,
        weights: ConvWeights::I8(w),
        quant,
    };
    let run = |conv: Conv<'_, &[i32]>, input: &[i32]| conv.run(input, 2, 2, |_, _, _| {});
    assert!(run(conv(&w, &quant[..]), &[0; 12]).is_ok());
    assert!(run(conv(&w, &quant[..]), &[0; 11]).is_err());
    assert!(run(conv(&w, &bad_q[..]), &[0; 12]).is_err());
    assert!(run(conv(&w[..26], &quant[..]), &[0; 12]).is_err());
}

// ---------------------------------------------------------------------------
// gelu: the decoded table against the oracle's per-call reading

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn gelu_table_matches_gelu_code(
        words in proptest::collection::vec(any::<i32>(), 0..=64),
        t in prop_oneof![any::<i64>(), -(1i64 << 40)..(1i64 << 40), Just(i64::MIN), Just(i64::MAX)],
    ) {
        use tdquant_core::int::gelu::{gelu_code, GeluTable, GELU_TABLE_LEVELS};
        let words: &[i32] = &words;
        match GeluTable::new(words) {
            Some(table) => prop_assert_eq!(table.code(t), gelu_code(t, words), "table {:?}", words),
            None => prop_assert!(words.len() / 4 > GELU_TABLE_LEVELS),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    /// Nested intervals (the shape of a real GELU table), with "always"
    /// levels first: the binary-search path against the oracle.
    #[test]
    fn gelu_table_matches_gelu_code_on_nested_tables(
        always in 0usize..=15,
        mut his in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 15),
        mut los in proptest::collection::vec(prop_oneof![Just(i64::MIN), -(1i64 << 40)..0], 15),
        n in 0usize..=15,
        t in prop_oneof![any::<i64>(), -(1i64 << 41)..(1i64 << 41)],
        probe in 0usize..15,
    ) {
        use tdquant_core::int::gelu::{gelu_code, GeluTable};
        his.sort_unstable();
        los.sort_unstable_by(|a, b| b.cmp(a));
        let mut words = Vec::new();
        for k in 0..n {
            let (hi, lo) = if k < always { (i64::MIN, i64::MIN) } else { (his[k], los[k]) };
            for v in [hi, lo] {
                words.push(v as u32 as i32);
                words.push((v >> 32) as i32);
            }
        }
        let words: &[i32] = &words;
        let table = GeluTable::new(words).expect("at most 15 levels");
        prop_assert_eq!(table.code(t), gelu_code(t, words), "table {:?}", words);
        // Right on the edges of one level.
        if probe < n && probe >= always {
            for t in [his[probe] - 1, his[probe], los[probe], los[probe].saturating_add(1)] {
                prop_assert_eq!(table.code(t), gelu_code(t, words), "t {} table {:?}", t, words);
            }
        }
    }
}
