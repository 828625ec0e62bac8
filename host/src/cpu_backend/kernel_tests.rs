//! Every ISA kernel of the fast CPU backend against core's scalar operator:
//! one test per (kernel, level), ≥ 1,000 proptest cases each (strategies
//! weighted towards the extremes: codes 0 and max, `i32::MIN`/`MAX`
//! inputs, masks, odd lengths), `==` on every output with a readable diff.
//! A level this CPU lacks records `SKIPPED <kernel> <level>` (the skip log); under
//! `TDQ_REQUIRE_AVX512=1` a missing AVX-512 VNNI fails instead.

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use tdquant_core::int::attention::{rpb_index, AvCall, AvParams, QkParams, SoftmaxCall};
use tdquant_core::int::conv::{Conv, ConvWeights};
use tdquant_core::int::exp2::exp2_neg_q31;
use tdquant_core::int::gelu::gelu_code;
use tdquant_core::int::layernorm::{normalize, FixedQuant, LnParams};
use tdquant_core::int::linear::{dot_codes, sum_codes, CodeAffine};
use tdquant_core::int::{LeI16, LeI32, EMBED, HEADS, HEAD_DIM, MLP, RPB_ROWS, TOKENS};
use tdquant_core::requant::Requantizer;

use super::dispatch::Kernels;
use super::model::run_conv;
use super::prepared::{FastConv, LnFast};
#[cfg(target_arch = "x86_64")]
use super::prepared_vnni::{GeluSearch, HeadAv, HeadQk, LinV, SoftmaxV};
use super::scalar::layernorm::{ln_token, quant_token};
#[cfg(target_arch = "x86_64")]
use super::x86_64::{
    avx2::{softmax::exp2_avx2, Avx2Ops},
    avx512::{softmax::exp2_v, Avx512Ops},
    blocks::CodeOps,
};
use crate::cpu_features::Isa;

/// Random cases per (kernel, level).
const CASES: u32 = 1_000;

/// Whether `isa` can run here; records `SKIPPED <kernel> <level>` when not,
/// and fails when TDQ_REQUIRE_AVX512=1 asks for the AVX-512 level.
fn level_or_skip(kernel: &str, isa: Isa) -> bool {
    if isa.available() {
        return true;
    }
    let what = format!("{kernel} {}", isa.name());
    crate::data_root::record_skip(&what, "this CPU lacks it");
    let required = std::env::var("TDQ_REQUIRE_AVX512").is_ok_and(|v| v == "1");
    assert!(
        !(required && isa == Isa::Avx512Vnni),
        "{kernel}: TDQ_REQUIRE_AVX512=1 but this CPU lacks AVX-512 VNNI"
    );
    false
}

/// `Ok` when `got == want`, else the number of differing elements and the
/// first few, with their indices.
fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T]) -> Result<(), TestCaseError> {
    if got == want {
        return Ok(());
    }
    if got.len() != want.len() {
        return Err(TestCaseError::fail(format!(
            "length {} instead of core's {}",
            got.len(),
            want.len()
        )));
    }
    let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    let shown: Vec<String> = diffs
        .iter()
        .take(8)
        .map(|&i| format!("[{i}] kernel {:?} core {:?}", got[i], want[i]))
        .collect();
    Err(TestCaseError::fail(format!(
        "{} of {} elements differ from core: {}",
        diffs.len(),
        got.len(),
        shown.join(", ")
    )))
}

/// One test per listed level, named `<kernel>::<Level>`: the body runs on
/// `CASES` random cases (proptest, shrinking on failure) with `$isa` bound
/// to the level, after `level_or_skip`.
macro_rules! isa_kernel_test {
    (
        fn $name:ident($isa:ident in [$($level:ident),+]; $($arg:ident in $strat:expr),+ $(,)?)
        $(edges [$($edge:expr),* $(,)?])?
        $body:block
    ) => {
        mod $name {
            use super::*;

            fn check($isa: Isa) {
                if !level_or_skip(stringify!($name), $isa) {
                    return;
                }
                let strategy = ($($strat,)+);
                #[allow(unused_variables)]
                let edges = values_of(&strategy, {
                    let none = values_of(&strategy, Vec::new());
                    $(let none = vec![$($edge),*];)?
                    none
                });
                let n_edges = edges.len();
                for (i, ($($arg,)+)) in edges.into_iter().enumerate() {
                    let result = (|| -> Result<(), TestCaseError> {
                        $body
                        #[allow(unreachable_code)]
                        Ok(())
                    })();
                    if let Err(e) = result {
                        panic!("{} at {}: edge case {i}: {e}", stringify!($name), $isa.name());
                    }
                }
                let mut runner = TestRunner::new(ProptestConfig {
                    cases: CASES,
                    failure_persistence: None,
                    ..ProptestConfig::default()
                });
                let result = runner.run(&strategy, |($($arg,)+)| {
                    $body
                    #[allow(unreachable_code)]
                    Ok(())
                });
                if let Err(e) = result {
                    panic!("{} at {}: {e}", stringify!($name), $isa.name());
                }
                println!(
                    "{} at {}: {} edge cases and {CASES} random cases identical to core",
                    stringify!($name),
                    $isa.name(),
                    n_edges
                );
            }

            $(
                #[test]
                #[allow(non_snake_case)]
                fn $level() {
                    check(Isa::$level);
                }
            )+
        }
    };
}

/// `K::$op(args)` for the primitives of the explicit level `isa`.
#[cfg(target_arch = "x86_64")]
macro_rules! on_level {
    ($isa:expr, $op:ident($($arg:expr),* $(,)?)) => {
        match $isa {
            Isa::Avx2 => <Avx2Ops as CodeOps>::$op($($arg),*),
            Isa::Avx512Vnni => <Avx512Ops as CodeOps>::$op($($arg),*),
            Isa::Portable => unreachable!("no explicit portable primitives"),
        }
    };
}

/// `values`, typed as values of `strategy` (the edge cases of a test).
fn values_of<S: Strategy>(_strategy: &S, values: Vec<S::Value>) -> Vec<S::Value> {
    values
}

fn words_bytes(words: &[i32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn i64_words(v: &[i64]) -> Vec<i32> {
    v.iter()
        .flat_map(|&x| [x as u32 as i32, (x >> 32) as i32])
        .collect()
}

isa_kernel_test! {
    fn conv(isa in [Portable, Avx2, Avx512Vnni];
        shape in prop_oneof![Just((3usize, 60usize)), Just((60, 60)), Just((60, 48)), Just((5, 20)), Just((64, 64)), Just((8, 16))],
        h in 1usize..6,
        w in 1usize..11,
        wmax in prop_oneof![Just(1i16), Just(20i16), Just(127i16), Just(i16::MAX)],
        seed in any::<u64>(),
    )
    edges [
        // One pixel; the widest weights (the VNNI layout refuses them); 64 channels, odd width.
        ((3, 60), 1, 1, 1, 0),
        ((60, 60), 1, 7, i16::MAX, 1),
        ((64, 64), 5, 10, 127, 2),
        ((5, 20), 2, 1, 20, 3),
    ]
    {
        let (cin, cout) = shape;
        let mut rng = Rng(seed);
        let weights: Vec<i16> = (0..cout * 9 * cin)
            .map(|_| (rng.next() % (2 * wmax as u64 + 1)) as i16 - wmax)
            .collect();
        let input: Vec<i32> = (0..h * w * cin)
            .map(|i| match i % 5 {
                0 => i32::from(i16::MIN) - 7,
                1 => i32::from(i16::MAX),
                2 => if rng.next().is_multiple_of(2) { i32::MIN } else { i32::MAX },
                _ => (rng.next() as i32) >> 15,
            })
            .collect();
        let quant: Vec<i32> = (0..cout)
            .flat_map(|o| {
                let rq = Requantizer::from_scale(1.0 / (1.5 + o as f64)).unwrap();
                [rq.multiplier(), i32::from(rq.shift()), o as i32 * 1000 - 7]
            })
            .collect();
        let wbytes: Vec<u8> = weights.iter().flat_map(|w| w.to_le_bytes()).collect();
        let qbytes = words_bytes(&quant);
        let conv = Conv {
            cin,
            cout,
            weights: ConvWeights::I16(LeI16::new(&wbytes)),
            quant: LeI32::new(&qbytes),
        };
        let mut want = vec![0i64; h * w * cout];
        conv.run(&input, h, w, |p, o, v| want[p * cout + o] = v).unwrap();
        let fast = FastConv::new(&conv).unwrap();
        let mut got = vec![0i64; h * w * cout];
        run_conv(Kernels::for_isa(isa).unwrap(), &fast, &input, h, w, &mut got, &mut Vec::new());
        same(&got, &want)?;
    }
}

#[cfg(target_arch = "x86_64")]
isa_kernel_test! {
    fn softmax_head(isa in [Avx2, Avx512Vnni];
        levels in prop_oneof![Just(3u8), Just(15u8), Just(127u8)],
        seed in any::<u64>(),
        a in -(1i64 << 40)..=(1i64 << 40),
        b in -(1i64 << 40)..=(1i64 << 40),
        rpb_shift in 0u32..=40,
        head in 0usize..HEADS,
        masked in any::<bool>(),
        sorted in any::<bool>(),
        nlev in 1usize..=20,
        tlev in proptest::collection::vec(-(1i64 << 40)..=(1i64 << 40), 20),
        all_max in proptest::bool::weighted(0.05),
    )
    edges [
        // Extreme A, B and shift, masked and not, one level and unsorted ones.
        (127, 1, 1 << 40, -(1 << 40), 40, HEADS - 1, true, false, 20, vec![1 << 40; 20], false),
        (3, 2, -(1 << 40), 1 << 40, 0, 0, false, true, 1, vec![-(1 << 40); 20], false),
        (15, 3, 0, 0, 17, 2, true, true, 15, (0..20).map(|k| k << 30).collect(), false),
        // Every query code 255, every key code 127.
        (127, 4, 1 << 40, 1 << 40, 40, 0, false, true, 15, (0..20).map(|k| k << 36).collect(), true),
        (127, 5, -1, -(1 << 40), 3, HEADS - 1, true, false, 20, vec![0; 20], true),
    ]
    {
        let mut rng = Rng(seed);
        let (qmax, kmax) = if all_max { (255, levels) } else { (0, 0) };
        let q: Vec<u8> = (0..TOKENS * EMBED).map(|_| rng.code(levels).max(qmax)).collect();
        let k: Vec<u8> = (0..TOKENS * EMBED).map(|_| rng.code(levels).max(kmax)).collect();
        let rpb: Vec<i16> = (0..RPB_ROWS).map(|_| rng.next() as i16).collect();
        let labels: [u8; TOKENS] = core::array::from_fn(|_| (rng.next() % 3) as u8);
        let mut t = tlev[..nlev].to_vec();
        if sorted {
            t.sort_unstable();
        }
        let qk = QkParams { a, b, rpb_shift };
        let rpb_bytes: Vec<u8> = rpb.iter().flat_map(|v| v.to_le_bytes()).collect();
        let thresholds = i64_words(&t);
        let col = head * HEAD_DIM;
        let mut want = vec![0u8; TOKENS * TOKENS];
        SoftmaxCall { q: &q, k: &k, stride: EMBED, col, qk: &qk, rpb: LeI16::new(&rpb_bytes), labels: masked.then_some(&labels[..]), thresholds: &thresholds[..] }
.run(&mut want).unwrap();
        let bias: Vec<i64> = (0..TOKENS * TOKENS)
            .map(|n| i64::from(rpb[rpb_index(n / TOKENS, n % TOKENS)]) << rpb_shift)
            .collect();
        let sm = SoftmaxV {
            a,
            b,
            levels_t: &t,
            search: t.len() <= 15 && t.windows(2).all(|w| w[0] <= w[1]),
            th: core::array::from_fn(|i| t.get(i).map_or(0, |&x| x >> 20)),
            tl: core::array::from_fn(|i| t.get(i).map_or(0, |&x| x & 0xF_FFFF)),
        };
        let mut got = vec![0u8; TOKENS * TOKENS];
        let head = HeadQk {
            q: &q,
            k: &k,
            col,
            sm: &sm,
            bias_h: &bias,
            labels: masked.then_some(&labels),
        };
        // SAFETY: the macro runs this body only where the level is available.
        unsafe { on_level!(isa, softmax_head(&head, &mut got)) };
        same(&got, &want)?;
    }
}

#[cfg(target_arch = "x86_64")]
isa_kernel_test! {
    fn av_head(isa in [Avx2, Avx512Vnni];
        levels in prop_oneof![Just(3u8), Just(15u8), Just(127u8)],
        seed in any::<u64>(),
        a in -(1i64 << 38)..=(1i64 << 38),
        b in -(1i64 << 44)..=(1i64 << 44),
        c in -(1i64 << 44)..=(1i64 << 44),
        d in -(1i64 << 60)..=(1i64 << 60),
        frac in 0u32..=62,
        head in 0usize..HEADS,
        all_max in proptest::bool::weighted(0.05),
    )
    edges [
        (127, 1, 1 << 38, 1 << 44, -(1 << 44), 1 << 60, 62, HEADS - 1, false),
        (3, 2, -(1 << 38), -(1 << 44), 1 << 44, -(1 << 60), 0, 0, false),
        // Every probability code 255, every value code 127.
        (127, 3, 1 << 38, 1 << 44, 1 << 44, 1 << 60, 1, HEADS - 1, true),
        (127, 4, -(1 << 38), -(1 << 44), -(1 << 44), -(1 << 60), 62, 0, true),
    ]
    {
        let mut rng = Rng(seed);
        let (pmax, vmax) = if all_max { (255, levels) } else { (0, 0) };
        let probs: Vec<u8> = (0..TOKENS * TOKENS).map(|_| rng.code(255).max(pmax)).collect();
        let v: Vec<u8> = (0..TOKENS * EMBED).map(|_| rng.code(levels).max(vmax)).collect();
        let av = AvParams { a, b, c, d, frac };
        let col = head * HEAD_DIM;
        let mut want = vec![0u8; TOKENS * EMBED];
        AvCall { probs: &probs, v: &v, stride: EMBED, col, av: &av, levels, out_stride: EMBED }
.run(&mut want).unwrap();
        let mut got = vec![0u8; TOKENS * EMBED];
        let head = HeadAv {
            v: &v,
            col,
            av: &av,
            levels,
        };
        // SAFETY: the macro runs this body only where the level is available.
        unsafe { on_level!(isa, av_head(&probs, &head, &mut got)) };
        same(&got, &want)?;
    }
}

#[cfg(target_arch = "x86_64")]
isa_kernel_test! {
    fn linear(isa in [Avx2, Avx512Vnni];
        shape in prop_oneof![Just((EMBED, EMBED)), Just((EMBED, MLP)), Just((MLP, EMBED))],
        n in prop_oneof![Just(TOKENS), 1usize..TOKENS],
        wlev in prop_oneof![Just(15u8), Just(127u8)],
        seed in any::<u64>(),
        a in -(1i64 << 38)..=(1i64 << 38),
        b in -(1i64 << 38)..=(1i64 << 38),
        c_shift in 0u32..=29,
        all_max in proptest::bool::weighted(0.05),
    )
    edges [
        // One token, all shapes, extreme constants.
        ((EMBED, EMBED), 1, 127, 1, 1 << 38, -(1 << 38), 29, false),
        ((EMBED, MLP), TOKENS, 15, 2, -(1 << 38), 1 << 38, 0, false),
        ((MLP, EMBED), 63, 127, 3, 0, 0, 0, false),
        // Every input code 255, every weight code 127 (the largest sums).
        ((MLP, EMBED), TOKENS, 127, 4, 1 << 38, 1 << 38, 29, true),
        ((EMBED, MLP), 3, 127, 5, -(1 << 38), -(1 << 38), 0, true),
    ]
    {
        let (k, rows) = shape;
        let mut rng = Rng(seed);
        let (wmax, xmax) = if all_max { (wlev, 255) } else { (0, 0) };
        let w: Vec<u8> = (0..k * rows).map(|_| rng.code(wlev).max(wmax)).collect();
        let x: Vec<u8> = (0..n * k).map(|_| rng.code(255).max(xmax)).collect();
        let c: Vec<i32> = (0..rows).map(|_| rng.next() as i32).collect();
        let c_bytes = words_bytes(&c);
        let aff = CodeAffine { a, b, c_shift, frac: 0 };
        let lin = LinV::new(&w, k, rows, &aff, &LeI32::new(&c_bytes)).unwrap();
        let mut got = vec![0i64; n * rows];
        // SAFETY: the macro runs this body only where the level is available.
        unsafe {
            on_level!(isa, linear(&x, &lin, |t, tr: &[i64]| {
                got[t * rows..(t + 1) * rows].copy_from_slice(&tr[..rows]);
            }))
        };
        for t in 0..n {
            let xt = &x[t * k..(t + 1) * k];
            for j in 0..rows {
                let want = aff.t(dot_codes(xt, &w[j * k..(j + 1) * k]), sum_codes(xt), c[j]);
                prop_assert_eq!(got[t * rows + j], want);
            }
        }
    }
}

isa_kernel_test! {
    fn layer_norm_and_quant(_isa in [Portable];
        x in proptest::collection::vec(
            prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(0), -(1i32 << 25)..(1 << 25)],
            EMBED,
        ),
        flat in any::<bool>(),
        eps_t in prop_oneof![Just(1i64), Just(1i64 << 40), 1i64..=(1 << 40)],
        gamma in proptest::collection::vec(any::<i32>(), EMBED),
        beta in proptest::collection::vec(any::<i32>(), EMBED),
        g_frac in 0u32..=40,
        y_sub in 0u32..=64,
        offset in -(1i64 << 60)..=(1i64 << 60),
        shift in 1u32..=62,
        mult_seed in any::<u64>(),
        levels in prop_oneof![Just(3u8), Just(15u8), Just(255u8)],
    ) {
        // Constant tokens give Q = 0 (ρ from eps alone, core's isqrt branch).
        let x: Vec<i32> = if flat { vec![x[0]; EMBED] } else { x };
        let y_frac = (24 + g_frac).min(40).saturating_sub(y_sub % 41);
        let (gb, bb) = (words_bytes(&gamma), words_bytes(&beta));
        let ln = LnParams {
            gamma: LeI32::new(&gb),
            beta: LeI32::new(&bb),
            g_frac,
            y_frac,
            eps_t,
        };
        ln.validate(EMBED).unwrap();
        // 2^32·M ≥ N·2^S, M < 2^31.
        let min_mult = ((i128::from(levels) << shift) >> 32).max(1);
        prop_assume!(min_mult < (1 << 31));
        let mult = (min_mult + i128::from(mult_seed) % ((1i128 << 31) - min_mult)) as i64;
        let fq = FixedQuant { offset, mult, shift, levels };
        fq.validate().unwrap();
        let mut xhat = [0i32; EMBED];
        normalize(&x, eps_t, &mut xhat).unwrap();
        let fast = LnFast::new(&ln).unwrap();
        let mut y = [0i64; EMBED];
        // SAFETY (none needed): portable code.
        ln_token(&x, &fast, &mut y);
        let mut codes = [0u8; EMBED];
        quant_token(&fq, &y, &mut codes);
        for c in 0..EMBED {
            let want = ln.output(c, xhat[c]);
            prop_assert_eq!(y[c], want);
            prop_assert_eq!(codes[c], fq.code(want));
        }
    }
}

#[cfg(target_arch = "x86_64")]
isa_kernel_test! {
    fn gelu_search(isa in [Avx2, Avx512Vnni];
        n in 1usize..=15,
        always in 0usize..=4,
        left in 0usize..=8,
        base in -(1i64 << 40)..(1i64 << 40),
        gaps in proptest::collection::vec(0i64..(1 << 20), 30),
        wide in any::<bool>(),
        t_seed in any::<u64>(),
    )
    edges [
        // 15 levels, all `always`, no left branch, the widest base.
        (15, 4, 0, (1 << 40) - 1, vec![(1 << 20) - 1; 30], true, 1),
        (1, 0, 8, -(1 << 40), vec![0; 30], false, 2),
        (15, 0, 8, 0, vec![1; 30], false, 3),
    ]
    {
        // GELU's shape: the first `always` levels have H = MIN; then H
        // increases while the left branch L (for `left` levels) decreases
        // below H; L = MIN elsewhere.
        let mut h = Vec::new();
        let mut l = Vec::new();
        let (mut hv, mut lv) = (base, base - 1);
        for i in 0..n {
            if i < always {
                h.push(i64::MIN);
                l.push(i64::MIN);
                continue;
            }
            let scale = if wide { 1 << 12 } else { 1 };
            hv += gaps[i] * scale;
            lv -= gaps[15 + i] * scale;
            h.push(hv);
            l.push(if i < always + left { lv } else { i64::MIN });
        }
        let table = i64_words(
            &h.iter().zip(&l).flat_map(|(&h, &l)| [h, l]).collect::<Vec<_>>(),
        );
        // (`wide` spans mostly exceed 2^30: the i64 search.)
        let gs = GeluSearch::new(&h, &l).unwrap();
        let mut rng = Rng(t_seed);
        let t: Vec<i64> = (0..MLP)
            .map(|j| match j % 4 {
                0 => h[rng.next() as usize % n].saturating_add(rng.next() as i64 % 3),
                1 => l[rng.next() as usize % n].saturating_add(rng.next() as i64 % 3),
                2 => base + (rng.next() as i64 >> 24),
                _ => (rng.next() as i64) >> 2,
            })
            .map(|v: i64| v.clamp(-(1 << 62) + 1, (1 << 62) - 1))
            .collect();
        let mut got = [0u8; MLP];
        // SAFETY: the macro runs this body only where the level is available.
        unsafe { on_level!(isa, gelu_search(&t, &gs, &mut got)) };
        for (j, &tj) in t.iter().enumerate() {
            prop_assert_eq!(got[j], gelu_code(tj, &table[..]));
        }
    }
}

/// The `exp2` lanes on every fraction boundary of every integer part, and
/// a dense sweep (the hand-picked edges of `exp2_neg_q31`).
#[cfg(target_arch = "x86_64")]
mod exp2 {
    use super::*;
    use std::arch::x86_64::*;

    fn edges(isa: Isa) {
        if !level_or_skip("exp2", isa) {
            return;
        }
        let mut ds: Vec<u64> = (0..40u64)
            .flat_map(|n| {
                [0u64, 1, 0xFF_FFFF, 0x100_0000, 0x8000_0000, 0xFFFF_FFFF].map(|f| (n << 32) | f)
            })
            .collect();
        ds.extend((0..4096u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 26));
        ds.extend([(1u64 << 62) - 1, 32 << 32, (32 << 32) - 1]);
        if isa == Isa::Avx2 {
            // The AVX2 lanes claim every u64.
            ds.extend([u64::MAX, 1 << 63, (1 << 63) - 1, 0xFFFF_FFFF << 32]);
        }
        for chunk in ds.chunks(8) {
            let mut lanes = [0u64; 8];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let got = exp2_lanes(isa, lanes);
            for (&d, &g) in lanes.iter().zip(&got) {
                assert_eq!(g, u64::from(exp2_neg_q31(d)), "d = {d:#x}");
            }
        }
    }

    #[test]
    fn avx2_edges() {
        edges(Isa::Avx2);
    }

    #[test]
    fn avx512_vnni_edges() {
        edges(Isa::Avx512Vnni);
    }

    pub(super) fn exp2_lanes(isa: Isa, d: [u64; 8]) -> [u64; 8] {
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
        fn run512(d: [u64; 8]) -> [u64; 8] {
            let mut out = [0u64; 8];
            // SAFETY: 64-byte loads/stores of the arrays.
            unsafe {
                let v = exp2_v(_mm512_loadu_si512(d.as_ptr().cast()));
                _mm512_storeu_si512(out.as_mut_ptr().cast(), v);
            }
            out
        }
        #[target_feature(enable = "avx2")]
        fn run256(d: [u64; 8]) -> [u64; 8] {
            let mut out = [0u64; 8];
            for h in 0..2 {
                // SAFETY: 32-byte loads/stores inside the arrays.
                unsafe {
                    let v = exp2_avx2(_mm256_loadu_si256(d.as_ptr().add(4 * h).cast()));
                    _mm256_storeu_si256(out.as_mut_ptr().add(4 * h).cast(), v);
                }
            }
            out
        }
        // SAFETY: callers checked level_or_skip().
        unsafe {
            match isa {
                Isa::Avx2 => run256(d),
                _ => run512(d),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
isa_kernel_test! {
    fn exp2_random(isa in [Avx2, Avx512Vnni]; d in proptest::array::uniform8(0u64..(1 << 62))) {
        let got = exp2::exp2_lanes(isa, d);
        let want: Vec<u64> = d.iter().map(|&d| u64::from(exp2_neg_q31(d))).collect();
        same(&got, &want)?;
    }
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut s = self.0 | 1;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// A code in `0..=levels`, the extremes one time in four.
    fn code(&mut self, levels: u8) -> u8 {
        match self.next() % 8 {
            0 => 0,
            1 => levels,
            _ => (self.next() % (u64::from(levels) + 1)) as u8,
        }
    }
}
