//! The GELU → fc2-input quantizer as integer thresholds
//! (`export::gelu_thresholds` + `core::int::gelu::gelu_code`) against direct
//! f64 GELU followed by the quantizer, on dense grids of the fc1 output,
//! including grids whose levels sit below zero (both GELU branches).

use tdquant_core::int::gelu::gelu_code;
use tdquant_host::export::{gelu_f64, gelu_min, gelu_thresholds};

fn words(th: &[(i64, i64)]) -> Vec<i32> {
    th.iter()
        .flat_map(|&(h, l)| {
            [
                h as u32 as i32,
                (h >> 32) as i32,
                l as u32 as i32,
                (l >> 32) as i32,
            ]
        })
        .collect()
}

#[test]
fn gelu_minimum() {
    let (y, g) = gelu_min();
    assert!((y + 0.751_791_524).abs() < 1e-8, "y* = {y}");
    assert!((g + 0.169_971_207).abs() < 1e-8, "gelu(y*) = {g}");
}

#[test]
fn gelu_thresholds_match_f64_on_dense_grids() {
    let frac = 36;
    // (l, u) pairs: DOBI-like post-GELU ranges, ranges reaching below the
    // GELU minimum, ranges entirely inside (gelu_min, 0), wide ranges.
    let ranges = [
        (-0.17f64, 1.2f64),
        (-0.169, 0.4),
        (-0.3, 2.5),
        (-0.16, -0.01),
        (-0.12, 0.05),
        (0.0, 3.0),
        (-1.0, 6.0),
        (0.2, 0.9),
    ];
    let mut total = 0usize;
    let mut equal = 0usize;
    for bits in [2u8, 3, 4] {
        let n = (1u8 << bits) - 1;
        for &(l, u) in &ranges {
            let (lf, uf) = (l as f32, u as f32);
            let s = f64::from((uf - lf) / f32::from(n));
            let l = f64::from(lf);
            let table = words(&gelu_thresholds(l, s, n, frac));
            let mut y = -9.0f64;
            while y <= 9.0 {
                let t = (y * 2f64.powi(frac)).round() as i64;
                let got = gelu_code(t, &table[..]);
                let want = ((gelu_f64(y) - l) / s + 0.5)
                    .floor()
                    .clamp(0.0, f64::from(n)) as u8;
                total += 1;
                if got == want {
                    equal += 1;
                } else {
                    // Only where y is within the fixed-point resolution of a threshold.
                    let near = (1..=n).any(|k| {
                        let level = l + (f64::from(k) - 0.5) * s;
                        (gelu_f64(y) - level).abs() < 1e-9
                    });
                    assert!(
                        near && got.abs_diff(want) == 1,
                        "W{bits} [{l}, {u}] y = {y}: {got} vs {want}"
                    );
                }
                y += 1.0 / 4096.0;
            }
        }
    }
    println!("GELU thresholds: {equal} / {total} codes identical to f64 GELU + quantizer");
    assert!(equal as f64 / total as f64 > 0.99999);
}

#[test]
fn both_branches_are_used() {
    // λ_1 = l + s/2 lies in (gelu_min, 0): the level is reached from both sides.
    let (l, s, n) = (-0.16f64, 0.04f64, 15u8);
    let th = gelu_thresholds(l, s, n, 32);
    let (hi, lo) = th[0];
    assert!(hi > i64::MIN && lo > i64::MIN && lo < hi);
    let table = words(&th);
    let code = |y: f64| gelu_code((y * 2f64.powi(32)).round() as i64, &table[..]);
    // Far left: gelu → 0⁻, above λ_1 = −0.14 → code ≥ 1; at the minimum: code 0.
    assert_eq!(code(-6.0), ((gelu_f64(-6.0) - l) / s + 0.5).floor() as u8);
    assert_eq!(code(-0.75), 0);
    assert!(code(-6.0) >= 1);
}
