//! The fast CPU backend (`tdquant_host::cpu_backend`) against the scalar
//! oracle (`tdquant_core::int::runner::upscale`): byte-identical outputs
//! (SHA-256) on every Set5 image at W4A4, and on odd-sized random images at
//! W4A4 and W2A2, at every instruction-set level this CPU has (the others
//! print SKIPPED; TDQ_REQUIRE_AVX512=1 makes a missing AVX-512 VNNI fail).

mod common;

use common::{golden_w4a4, random_image};
use tdquant_host::cpu_backend::FastIntModel;
use tdquant_host::cpu_features::Isa;
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::eval::BenchmarkSet;
use tdquant_host::export::GoldenExport;
use tdquant_host::intmodel::IntSr;
use tdquant_host::weights::sha256_hex;

/// Every fast model (explicit AVX2 / AVX-512 kernels where available, and
/// the portable path) against the oracle.
fn check(sr: &IntSr, fast: &[FastIntModel<'_>], img: &[u8], h: usize, w: usize, what: &str) {
    let want = sr.upscale_raw(img, h, w).unwrap();
    let a = sha256_hex(&want);
    for f in fast {
        let got = f.upscale(img, h, w).unwrap();
        let b = sha256_hex(&got);
        println!(
            "{what} {h}x{w} ({}, explicit kernels {}): oracle {a} fast {b}",
            f.isa().name(),
            f.explicit_kernels_in_use()
        );
        assert_eq!(a, b, "{what} {h}x{w}: fast path differs from the oracle");
    }
}

/// The levels this CPU can run; prints SKIPPED for the others.
fn levels() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|&isa| {
            if isa.available() {
                return true;
            }
            println!("SKIPPED: int_fast at {}: this CPU lacks it", isa.name());
            assert!(
                !(isa == Isa::Avx512Vnni
                    && std::env::var("TDQ_REQUIRE_AVX512").is_ok_and(|v| v == "1")),
                "TDQ_REQUIRE_AVX512=1 but this CPU lacks AVX-512 VNNI"
            );
            false
        })
        .collect()
}

#[test]
fn fast_path_matches_oracle_set5_and_odd_sizes() {
    let Some(root) = data_root_for("int_fast", TestData::Bundle) else {
        return;
    };
    let mut golden = GoldenExport::new(&root).unwrap();
    for bits in [4u8, 2] {
        let out = golden.export(bits).unwrap();
        let sr = IntSr::from_bytes(out.bytes).unwrap();
        let m = sr.model();
        let fast: Vec<FastIntModel<'_>> = levels()
            .into_iter()
            .map(|isa| FastIntModel::with_isa(&m, isa).unwrap())
            .collect();
        for (i, &(h, w)) in [(1, 1), (7, 13), (9, 8), (16, 24), (3, 17)]
            .iter()
            .enumerate()
        {
            let img = random_image(h * w * 3, 0x9e37_79b9 + i as u64);
            check(&sr, &fast, &img, h, w, &format!("W{bits} random"));
        }
        if bits == 4 {
            let set = BenchmarkSet::open(&root, "Set5", 4).unwrap();
            assert_eq!(set.entries.len(), 5);
            for entry in &set.entries {
                let pair = set.load(entry).unwrap();
                let (h, w) = (pair.lr.height() as usize, pair.lr.width() as usize);
                check(
                    &sr,
                    &fast,
                    pair.lr.as_raw(),
                    h,
                    w,
                    &format!("W4 {}", pair.name),
                );
            }
        }
    }
}

/// `utime + stime` of this process, in seconds (Linux, 100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Timing aid (not a test of behaviour): wall and CPU seconds of the fast
/// path on a 256×256 LR image, W4A4. Run with
/// `cargo test --release -p tdquant-host --test int_fast -- --ignored --nocapture`.
#[test]
#[ignore]
fn fast_path_timing() {
    let Some(sr) = golden_w4a4("int_fast") else {
        return;
    };
    let m = sr.model();
    let n = 256;
    let img = random_image(n * n * 3, 7);
    // TDQ_TIMING_SIMD=1: only the best level (for profiling).
    let modes = if std::env::var_os("TDQ_TIMING_SIMD").is_some() {
        vec![Isa::best()]
    } else {
        levels()
    };
    for isa in modes {
        let fast = FastIntModel::with_isa(&m, isa).unwrap();
        for _ in 0..2 {
            let (t0, c0) = (std::time::Instant::now(), cpu_seconds());
            let _ = fast.upscale(&img, n, n).unwrap();
            println!(
                "{} {n}x{n}: wall {:.3} s, cpu {:.2} s",
                fast.isa().name(),
                t0.elapsed().as_secs_f64(),
                cpu_seconds() - c0
            );
        }
    }
}
