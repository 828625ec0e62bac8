//! DOBI: the fast single-sweep search agrees with the brute-force reference
//! on many random tensors for all four strategy × step combinations; error
//! handling; baselines; timing (ignored test).

mod common;

use std::time::Instant;

use common::Rng;
use tdquant_host::calib::{
    dobi, dobi_bruteforce, dobi_candidates, dobi_objectives, minmax_bounds, percentile_bounds,
    ptq4sr_percentile_bounds, select_candidate, CalibError, DobiConfig, DobiEval, DobiStep,
    DobiStrategy, QuantGrid,
};

fn all_configs(bits: u8) -> Vec<DobiConfig> {
    let mut v = Vec::new();
    for strategy in [DobiStrategy::TwoSided, DobiStrategy::OneSided] {
        for step in [DobiStep::Released, DobiStep::ReleasedCuda, DobiStep::Paper] {
            v.push(DobiConfig {
                bits,
                strategy,
                step,
                k: 100,
            });
        }
    }
    v
}

/// Random test tensor of kind `kind`.
fn sample(rng: &mut Rng, kind: usize, n: usize) -> Vec<f32> {
    let scale = 10f32.powf(rng.uniform() * 4.0 - 2.0);
    match kind {
        // bell-shaped
        0 => (0..n).map(|_| rng.normal() * scale + 0.1 * scale).collect(),
        // exponential-like (post-GELU-ish, non-negative long tail)
        1 => (0..n)
            .map(|_| -(rng.uniform().max(1e-7)).ln() * scale)
            .collect(),
        // uniform
        2 => (0..n).map(|_| (rng.uniform() - 0.3) * scale).collect(),
        // bell with a few large outliers
        3 => {
            let mut v: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
            for _ in 0..(1 + n / 200) {
                let i = rng.below(n);
                v[i] = scale
                    * (20.0 + 30.0 * rng.uniform())
                    * if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            }
            v
        }
        // post-softmax rows of 64
        4 => {
            let mut v = Vec::with_capacity(n);
            while v.len() < n {
                let row: Vec<f32> = (0..64).map(|_| (rng.normal() * 2.5).exp()).collect();
                let s: f32 = row.iter().sum();
                v.extend(row.iter().map(|x| x / s));
            }
            v.truncate(n);
            v
        }
        // integer-valued (many exact ties in quantization)
        5 => (0..n).map(|_| (rng.below(9) as f32) - 3.0).collect(),
        // nearly constant with a large offset: f32 candidates collapse
        6 => (0..n).map(|_| 1000.0 + rng.normal() * 1e-4).collect(),
        // two values only
        _ => (0..n)
            .map(|_| if rng.uniform() < 0.3 { -1.0 } else { 2.5 })
            .collect(),
    }
}

#[test]
fn fast_search_matches_bruteforce() {
    let mut rng = Rng(2024);
    let mut cases = 0;
    let mut tie_resolved = 0;
    for round in 0..40 {
        for kind in 0..8 {
            let n = match round % 4 {
                0 => 1 + rng.below(20),
                1 => 2048 + rng.below(100),
                _ => 1 + rng.below(5000),
            };
            let data = sample(&mut rng, kind, n);
            if minmax_bounds(&data).map(|(a, b)| a == b).unwrap_or(true) {
                continue;
            }
            for bits in [2u8, 3, 4, 8] {
                for cfg in all_configs(bits) {
                    let fast = dobi(&data, &cfg).expect("fast");
                    let slow = dobi_bruteforce(&data, &cfg).expect("brute");
                    // per-candidate objectives agree to rounding of the f64 sums
                    let objs = dobi_objectives(&data, &cfg).unwrap();
                    assert_eq!(objs.len(), cfg.num_candidates());
                    let cands = dobi_candidates(
                        minmax_bounds(&data).unwrap().0,
                        minmax_bounds(&data).unwrap().1,
                        &cfg,
                    );
                    for (ev, &(cl, cu)) in objs.iter().zip(&cands) {
                        assert_eq!((ev.lower, ev.upper), (cl, cu));
                        let o = ev.objective;
                        let g = QuantGrid::with_levels(cl, cu, ((1u32 << bits) - 1) as f32);
                        let b = data
                            .iter()
                            .map(|&v| {
                                let e = (v - g.quantize(v)) as f64;
                                e * e
                            })
                            .sum::<f64>()
                            .sqrt();
                        assert!(
                            (o.is_nan() && b.is_nan()) || (o - b).abs() <= 1e-12 * b.max(1e-300),
                            "kind {kind} n {n} {cfg:?}: objective {o} vs {b}"
                        );
                    }
                    if fast.index != slow.index {
                        // only acceptable for an exact tie up to f64 summation order
                        let rel =
                            (fast.objective - slow.objective).abs() / slow.objective.max(1e-300);
                        assert!(
                            rel <= 1e-12,
                            "kind {kind} n {n} {cfg:?}: fast {fast:?} vs brute {slow:?}"
                        );
                        tie_resolved += 1;
                    } else {
                        assert_eq!((fast.lower, fast.upper), (slow.lower, slow.upper));
                    }
                    cases += 1;
                }
            }
        }
    }
    eprintln!("{cases} cases, {tie_resolved} resolved as exact ties");
    assert!(cases > 1000);
}

#[test]
fn candidate_schedules() {
    let (mn, mx) = (-1.0f32, 3.0f32);
    let r2 = dobi_candidates(mn, mx, &DobiConfig::released(4));
    assert_eq!(r2.len(), 100);
    assert_eq!(r2[0], (mn, mx)); // i = 0 is MinMax
    let d = 4.0f32 * (1.0 / 200.0);
    assert_eq!(r2[37], (mn + d * 37.0, mx - d * 37.0));
    assert!(r2[99].1 - r2[99].0 > 0.0);
    let r1 = dobi_candidates(
        mn,
        mx,
        &DobiConfig {
            strategy: DobiStrategy::OneSided,
            ..DobiConfig::released(4)
        },
    );
    assert_eq!(r1.len(), 100);
    assert!(r1.iter().all(|c| c.0 == mn));
    assert_eq!(r1[10].1, mx - 4.0f32 * (1.0 / 100.0) * 10.0);
    let p2 = dobi_candidates(mn, mx, &DobiConfig::paper(4, DobiStrategy::TwoSided));
    assert_eq!(p2.len(), 101);
    assert_eq!(p2[100].0, p2[100].1); // degenerate midpoint, never selected
    let p1 = dobi_candidates(mn, mx, &DobiConfig::paper(4, DobiStrategy::OneSided));
    assert_eq!(p1.len(), 101);
    assert_eq!(p1[100], (mn, 1.0)); // u moves down to the midpoint
}

#[test]
fn degenerate_midpoint_is_nan_and_skipped() {
    let mut rng = Rng(5);
    // concentrated data: the midpoint candidate would be attractive if it were valid
    let data: Vec<f32> = (0..1000)
        .map(|_| rng.normal() * 1e-3)
        .chain([-1.0, 1.0])
        .collect();
    let cfg = DobiConfig::paper(2, DobiStrategy::TwoSided);
    let objs = dobi_objectives(&data, &cfg).unwrap();
    assert!(objs[100].objective.is_nan());
    let r = dobi(&data, &cfg).unwrap();
    assert!(r.index < 100);
}

#[test]
fn tie_rules() {
    let ev = |objective: f64| DobiEval {
        lower: objective as f32,
        upper: 10.0,
        objective,
    };
    let evals = [
        ev(3.0),
        ev(f64::NAN),
        ev(1.0),
        ev(2.0),
        ev(1.0),
        ev(f64::NAN),
    ];
    let r = select_candidate(&evals, DobiStep::Released).unwrap();
    assert_eq!((r.index, r.objective), (2, 1.0)); // first minimum, `<`
    let p = select_candidate(&evals, DobiStep::Paper).unwrap();
    assert_eq!((p.index, p.objective), (4, 1.0)); // last minimum, `≤`
    assert_eq!(
        select_candidate(&[ev(f64::NAN)], DobiStep::Paper),
        Err(CalibError::NoCandidate)
    );
    // the end-to-end search uses the same rule on its objectives
    let data = [0.0f32, 0.0, 0.0, 1.0, 0.4, 0.41];
    for cfg in all_configs(3) {
        let objs = dobi_objectives(&data, &cfg).unwrap();
        assert_eq!(
            dobi(&data, &cfg).unwrap(),
            select_candidate(&objs, cfg.step).unwrap()
        );
    }
    // {0, 1} lies on the MinMax grid: objective 0 at i = 0
    let r = dobi(&[0.0, 1.0, 0.0], &DobiConfig::released(2)).unwrap();
    assert_eq!((r.index, r.objective), (0, 0.0));
}

#[test]
fn errors() {
    let cfg = DobiConfig::released(4);
    assert_eq!(dobi(&[], &cfg), Err(CalibError::Empty));
    assert_eq!(
        dobi(&[2.0; 10], &cfg),
        Err(CalibError::Constant { value: 2.0 })
    );
    assert!(matches!(
        dobi(&[1.0, f32::NAN, 2.0], &cfg),
        Err(CalibError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        dobi(&[1.0, 2.0, f32::INFINITY], &cfg),
        Err(CalibError::NonFinite { index: 2, .. })
    ));
    assert!(matches!(
        dobi_bruteforce(&[f32::NEG_INFINITY, 0.0], &cfg),
        Err(CalibError::NonFinite { .. })
    ));
    assert_eq!(
        dobi(&[0.0, 1.0], &DobiConfig::released(9)),
        Err(CalibError::Bits(9))
    );
    assert!(matches!(
        dobi(&[0.0, 1.0], &DobiConfig { k: 0, ..cfg }),
        Err(CalibError::Param(_))
    ));
    assert!(percentile_bounds(&[1.0], 50.0, 10.0).is_err());
    assert!(minmax_bounds(&[]).is_err());
}

#[test]
fn baselines() {
    let v: Vec<f32> = (0..=100).rev().map(|i| i as f32).collect();
    assert_eq!(minmax_bounds(&v).unwrap(), (0.0, 100.0));
    assert_eq!(percentile_bounds(&v, 0.0, 100.0).unwrap(), (0.0, 100.0));
    assert_eq!(percentile_bounds(&v, 1.0, 99.0).unwrap(), (1.0, 99.0));
    // numpy.percentile([1,2,3,4], [25, 90]) = [1.75, 3.7]
    let (a, b) = percentile_bounds(&[4.0, 1.0, 3.0, 2.0], 25.0, 90.0).unwrap();
    assert_eq!((a, b), (1.75, 3.7));
    // PTQ4SR histogram percentile on uniform data: trims ~1e-4 of the mass
    let mut rng = Rng(77);
    let u: Vec<f32> = (0..200_000).map(|_| rng.uniform()).collect();
    let (lo, hi) = ptq4sr_percentile_bounds(&u, 1e-4, 2048).unwrap();
    let (mn, mx) = minmax_bounds(&u).unwrap();
    let bin = (mx - mn) / 2048.0;
    assert!(lo >= mn + bin * 0.999 && lo <= mn + 3.0 * bin, "{lo}");
    assert!(hi <= mx && hi >= mx - 2.0 * bin, "{hi}");
    // with zero tail nothing is trimmed: (min + Δ, max)
    let (lo, hi) = ptq4sr_percentile_bounds(&u, 0.0, 2048).unwrap();
    assert_eq!(hi, (mx - mn) * (1.0 / 2048.0) * 2048.0 + mn);
    assert_eq!(lo, (mx - mn) * (1.0 / 2048.0) + mn);
}

/// 12.6 M elements shaped like the post-softmax attention map of 8 patches
/// (8 · 64 windows · 6 heads · 64 · 64). Run with
/// `cargo test --release -p tdquant-host --test calib_dobi -- --ignored --nocapture`.
#[test]
#[ignore]
fn dobi_timing_12m() {
    let mut rng = Rng(1);
    let n = 8 * 64 * 6 * 64 * 64;
    let data = sample(&mut rng, 4, n);
    for cfg in [
        DobiConfig::released(4),
        DobiConfig::paper(2, DobiStrategy::OneSided),
    ] {
        let t0 = Instant::now();
        let r = dobi(&data, &cfg).unwrap();
        let dt = t0.elapsed();
        eprintln!("DOBI {n} elements, {cfg:?}: {dt:?} -> {r:?}");
        assert!(dt.as_secs_f64() < 10.0);
    }
    let t0 = Instant::now();
    let r = dobi_bruteforce(&data, &DobiConfig::released(4)).unwrap();
    eprintln!("brute force: {:?} -> {r:?}", t0.elapsed());
    assert_eq!(
        r.index,
        dobi(&data, &DobiConfig::released(4)).unwrap().index
    );
}
