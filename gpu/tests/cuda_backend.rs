//! The `cust` backend (feature `cuda`).
//!
//! - Without a device (CI links and runs against the stub libcuda): the "no
//!   CUDA device" error path, asserted for every entry point.
//! - With a device: the GPU property tests, GPU vs the `tdquant-core` oracle
//!   with `==`, through the same harness as the host-kernel tests. Without a
//!   device they print `SKIPPED: <reason>` and pass, unless
//!   `TDQ_REQUIRE_GPU=1` (scripts/gpu-check.sh) turns a skip into a failure.
//!
//! Run with `--nocapture` to see the SKIPPED lines.
#![cfg(feature = "cuda")]

mod common;

use std::sync::OnceLock;

use tdquant_core::{pack_codes, BitWidth, PackedLayout, Requantizer, RoundingMode};
use tdquant_gpu::{backend, CudaBackend, GpuError, IntegerBackend};

fn env_is_1(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// The shared backend (one context for all tests), or `None` after printing
/// `SKIPPED: <reason>`; panics instead when TDQ_REQUIRE_GPU=1.
fn gpu_or_skip(test: &str) -> Option<&'static CudaBackend> {
    static GPU: OnceLock<CudaBackend> = OnceLock::new();
    let gpu = GPU.get_or_init(CudaBackend::new);
    match gpu.device() {
        Ok(info) => {
            println!("{test}: running on {}", info.name);
            Some(gpu)
        }
        Err(err) if env_is_1("TDQ_REQUIRE_GPU") => {
            panic!("{test}: TDQ_REQUIRE_GPU=1 but the CUDA backend cannot run: {err}")
        }
        Err(err) => {
            println!("SKIPPED: {test}: {err}");
            None
        }
    }
}

/// Every entry point of a backend without a device returns the same
/// `NoDevice` error, whatever the arguments (valid, empty or wrong).
#[test]
fn no_cuda_device_error_path() {
    let cuda = CudaBackend::new();
    assert_eq!(cuda.name(), "cuda");
    assert_eq!(
        backend().name(),
        "cuda",
        "backend() must pick CUDA with the feature on"
    );
    let expect_none = env_is_1("TDQ_EXPECT_NO_DEVICE");
    let err = match cuda.device() {
        Ok(info) => {
            assert!(!expect_none, "TDQ_EXPECT_NO_DEVICE=1 but found {info:?}");
            assert!(info.accelerator);
            println!(
                "a CUDA device is present ({}): the no-device path runs on machines without one",
                info.name
            );
            return;
        }
        Err(err) => err,
    };
    let GpuError::NoDevice(msg) = &err else {
        panic!("CUDA init failed with something other than NoDevice: {err}");
    };
    assert!(!msg.trim().is_empty(), "the driver's message is empty");
    assert!(err.to_string().starts_with("no CUDA device: "), "{err}");
    assert_eq!(cuda.init_error(), Some(&err));
    let want = Err(err.clone());

    let layout = PackedLayout::new(BitWidth::B4, 1, 2);
    let mut packed = [0u8; 4];
    pack_codes(layout, &[1, 2], &mut packed).unwrap();
    let mut out = [0u8; 2];
    assert_eq!(cuda.unpack_codes(layout, &packed, &mut out), want);
    assert_eq!(out, [0, 0], "output untouched");
    assert_eq!(cuda.unpack_codes(layout, &[], &mut []), want, "bad lengths");
    let empty = PackedLayout::new(BitWidth::B2, 0, 0);
    assert_eq!(cuda.unpack_codes(empty, &[], &mut []), want, "empty matrix");

    let rq = Requantizer::from_scale_with_rounding(0.25, RoundingMode::HalfEven).unwrap();
    assert_eq!(cuda.requantize_i32(rq, &[1, 2], &mut [0, 0]), want);
    assert_eq!(cuda.requantize_i32(rq, &[], &mut []), want);
    assert_eq!(cuda.requantize_i32_clamped(rq, &[1], -1, 1, &mut [0]), want);
    assert_eq!(cuda.requantize_i64(rq, &[1], &mut [0, 0]), want);
    assert_eq!(backend().device(), Err(err.clone()));
    println!("no CUDA device, as expected: {err}");
}

#[test]
fn gpu_unpack_parity() {
    let Some(gpu) = gpu_or_skip("gpu_unpack_parity") else {
        return;
    };
    common::suite::unpack_extremes(gpu);
    common::suite::unpack(gpu, 1_000);
}

/// Matrices large enough for many blocks and the grid-stride loop.
#[test]
fn gpu_unpack_large() {
    let Some(gpu) = gpu_or_skip("gpu_unpack_large") else {
        return;
    };
    common::suite::unpack_large(gpu);
}

#[test]
fn gpu_requant_parity() {
    let Some(gpu) = gpu_or_skip("gpu_requant_parity") else {
        return;
    };
    common::suite::requant_extremes(gpu);
    common::suite::requant(gpu, 1_000, 3_000);
}

/// Over 2^22 elements: more than one grid-stride pass per thread.
#[test]
fn gpu_requant_large() {
    let Some(gpu) = gpu_or_skip("gpu_requant_large") else {
        return;
    };
    common::suite::requant_large(gpu);
}
