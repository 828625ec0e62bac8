//! The cross-backend parity suite: every integer backend this build and
//! machine have — the scalar oracle, the fast CPU backend at each
//! instruction-set level, the CUDA kernels emulated on the CPU (both kernel
//! paths), CUDA (both paths) where a device exists — on the same models
//! (`common::models::integer_models`) and random small images, `==` with the
//! oracle, byte for byte, and the same error for the same bad arguments.
//!
//! A backend that cannot run here prints `SKIPPED <backend>: <why>`; with
//! TDQ_REQUIRE_GPU=1 a missing CUDA backend fails, with TDQ_REQUIRE_AVX512=1
//! a missing AVX-512 VNNI level does.

mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tdquant_core::backend::{BackendError, IntegerBackend, ScalarOracle};
use tdquant_core::int::{IntModel, RunError};
use tdquant_gpu::{parity, HostKernelBackend, KernelPath};
use tdquant_host::cpu_backend::CpuFastBackend;
use tdquant_host::cpu_features::Isa;
use tdquant_host::data_root::record_skip;

fn env_is_1(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Every backend to compare with the oracle that can run here; prints
/// records SKIPPED (the skip log) for the others (and fails where a TDQ_REQUIRE_* asks for them).
fn backends() -> Vec<Box<dyn IntegerBackend>> {
    let mut all: Vec<Box<dyn IntegerBackend>> = Isa::ALL
        .into_iter()
        .map(|isa| Box::new(CpuFastBackend::new(isa)) as Box<dyn IntegerBackend>)
        .collect();
    all.push(Box::new(HostKernelBackend::new(KernelPath::Fused)));
    all.push(Box::new(HostKernelBackend::new(KernelPath::PerOperator)));
    all.push(tdquant_gpu::cuda_backend(KernelPath::Fused));
    all.push(tdquant_gpu::cuda_backend(KernelPath::PerOperator));
    all.into_iter()
        .filter(|b| {
            let caps = b.capabilities();
            if caps.available {
                return true;
            }
            record_skip(b.name(), "cannot run in this build on this machine");
            assert!(
                !(caps.accelerator && env_is_1("TDQ_REQUIRE_GPU")),
                "TDQ_REQUIRE_GPU=1 but {} cannot run",
                b.name()
            );
            assert!(
                !(b.name() == "cpu-avx512-vnni" && env_is_1("TDQ_REQUIRE_AVX512")),
                "TDQ_REQUIRE_AVX512=1 but this CPU lacks AVX-512 VNNI"
            );
            false
        })
        .collect()
}

/// A small RGB image: random bytes, a flat 0 or 255 field, or a 0/255
/// checkerboard (the input extremes).
fn image() -> impl Strategy<Value = (usize, usize, Vec<u8>)> {
    (1usize..=19, 1usize..=19, 0u8..4, any::<u64>()).prop_map(|(h, w, kind, seed)| {
        let mut rng = tdquant_tests::XorShift::new(seed);
        let img = (0..h * w * 3)
            .map(|i| match kind {
                0 => 0,
                1 => 255,
                2 => {
                    if (i / 3 + i / (3 * w)) % 2 == 0 {
                        0
                    } else {
                        255
                    }
                }
                _ => (rng.next_u64() >> 56) as u8,
            })
            .collect();
        (h, w, img)
    })
}

/// `b`'s output against the oracle's, with the first differing pixel.
fn compare(
    b: &dyn IntegerBackend,
    model: &IntModel<'_>,
    img: &[u8],
    h: usize,
    w: usize,
    want: &[u8],
) -> Result<(), String> {
    let mut got = vec![0u8; want.len()];
    b.upscale(model, img, h, w, &mut got)
        .map_err(|e| format!("{} failed: {e}", b.name()))?;
    let p = parity::compare(want, &got, w * model.scale());
    if p.matches() {
        Ok(())
    } else {
        Err(format!(
            "{} differs from the oracle on {h}x{w}: {} (oracle {} vs {})",
            b.name(),
            p.first_diff
                .map_or_else(|| "hashes differ".into(), |d| d.to_string()),
            p.sha_reference,
            p.sha_other
        ))
    }
}

#[test]
fn every_backend_matches_the_oracle_on_random_small_images() {
    let backends = backends();
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    let cases = std::env::var("TDQ_PARITY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let t0 = std::time::Instant::now();
    let models = common::models::integer_models();
    println!(
        "{} models ready in {:.1} s",
        models.len(),
        t0.elapsed().as_secs_f64()
    );
    for m in models {
        let t0 = std::time::Instant::now();
        let model = IntModel::parse(&m.bytes).expect("a valid model");
        let s = model.scale();
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&image(), |(h, w, img)| {
                let mut want = vec![0u8; h * w * 3 * s * s];
                ScalarOracle
                    .upscale(&model, &img, h, w, &mut want)
                    .map_err(|e| TestCaseError::fail(format!("oracle: {e}")))?;
                for b in &backends {
                    compare(b.as_ref(), &model, &img, h, w, &want).map_err(TestCaseError::fail)?;
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        println!(
            "{}: {cases} random images, identical on {} ({:.1} s)",
            m.name,
            names.join(", "),
            t0.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn every_backend_refuses_bad_sizes_like_the_oracle() {
    let backends = backends();
    let bytes = common::models::synthetic_model(4, 0xBAD5_12E5);
    let model = IntModel::parse(&bytes).expect("a valid model");
    let cases = [
        (0usize, 0usize, 4usize, 0usize, RunError::BadSize),
        (
            12,
            2,
            2,
            12 * 16 - 1,
            RunError::OutputLength {
                expected: 12 * 16,
                actual: 12 * 16 - 1,
            },
        ),
        (
            11,
            2,
            2,
            12 * 16,
            RunError::InputLength {
                expected: 12,
                actual: 11,
            },
        ),
        (3, usize::MAX, 2, 0, RunError::BadSize),
    ];
    for (img_len, h, w, out_len, want) in cases {
        let img = vec![7u8; img_len];
        let mut out = vec![0u8; out_len];
        assert_eq!(
            ScalarOracle.upscale(&model, &img, h, w, &mut out),
            Err(BackendError::Run(want))
        );
        for b in &backends {
            let mut out = vec![0u8; out_len];
            assert_eq!(
                b.upscale(&model, &img, h, w, &mut out),
                Err(BackendError::Run(want)),
                "{} on {h}x{w}",
                b.name()
            );
            assert!(
                out.iter().all(|&v| v == 0),
                "{}: output untouched",
                b.name()
            );
        }
    }
}
