//! The `cust` backend (feature `cuda`).
//!
//! - Without a device (CI links and runs against the stub libcuda): the "no
//!   CUDA device" error path, asserted for every entry point.
//! - With a device: the GPU property tests, GPU vs the `tdquant-core` oracle
//!   with `==`, through the same harness as the host-kernel tests. Without a
//!   device they record `SKIPPED <test>: <reason>` in the skip log (listed
//!   at the end of `scripts/test.sh`) and pass, unless `TDQ_REQUIRE_GPU=1`
//!   (scripts/gpu-check.sh) turns a skip into a failure.
#![cfg(feature = "cuda")]

mod common;
// The host crate's skip log (plain std; this crate cannot depend on the host).
#[path = "../../host/src/data_root/skip_log.rs"]
mod skip_log;

use std::sync::OnceLock;

use tdquant_core::backend::{BackendError, IntegerBackend, ScalarOracle, UpscaleArgs};
use tdquant_core::int::IntModel;
use tdquant_core::{pack_codes, BitWidth, PackedLayout, Requantizer, RoundingMode};
use tdquant_gpu::{
    cuda_backend, parity, CudaBackend, GpuError, GpuOperators, KernelPath, Operator,
};

fn env_is_1(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// The shared backend (one context for all tests), or `None` after printing
/// `SKIPPED <test>: <reason>` (the skip log); panics instead when TDQ_REQUIRE_GPU=1.
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
            skip_log::record_skip(test, &err.to_string());
            None
        }
    }
}

/// Every entry point of a backend without a device returns the same
/// `NoDevice` error, whatever the arguments (valid, empty or wrong).
#[test]
fn no_cuda_device_error_path() {
    let cuda = CudaBackend::new();
    assert_eq!(cuda.name(), "cuda-fused");
    assert_eq!(
        cuda_backend(KernelPath::PerOperator).name(),
        "cuda-per-op",
        "cuda_backend() must pick CUDA with the feature on"
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
    let GpuError::NoDevice(failure) = &err else {
        panic!("CUDA init failed with something other than NoDevice: {err}");
    };
    assert!(
        !failure.message.trim().is_empty(),
        "the driver's message is empty"
    );
    assert_ne!(failure.code, 0, "a failure carries a non-zero CUresult");
    assert!(!cuda.capabilities().available);
    assert!(err.to_string().starts_with("no CUDA device: "), "{err}");
    assert_eq!(cuda.init_error(), Some(&err));
    let want = Err(err.clone());

    let layout = PackedLayout::new(BitWidth::B4, 1, 2);
    let mut packed = [0u8; 4];
    pack_codes(layout, &[1, 2], &mut packed).unwrap();
    let mut out = [0u8; 2];
    let empty = PackedLayout::new(BitWidth::B2, 0, 0);
    let rq = Requantizer::from_scale_with_rounding(0.25, RoundingMode::HalfEven).unwrap();
    let ops = [
        Operator::UnpackCodes {
            layout,
            packed: &packed,
            out: &mut out,
        },
        Operator::UnpackCodes {
            layout,
            packed: &[],
            out: &mut [],
        },
        Operator::UnpackCodes {
            layout: empty,
            packed: &[],
            out: &mut [],
        },
        Operator::RequantizeI32 {
            rq,
            acc: &[1, 2],
            out: &mut [0, 0],
        },
        Operator::RequantizeI32 {
            rq,
            acc: &[],
            out: &mut [],
        },
        Operator::RequantizeI32Clamped {
            rq,
            acc: &[1],
            clamp: (-1, 1),
            out: &mut [0],
        },
        Operator::RequantizeI64 {
            rq,
            acc: &[1],
            out: &mut [0, 0],
        },
    ];
    for op in ops {
        let what = format!("{op:?}");
        assert_eq!(cuda.run_operator(op), want, "{what}");
    }
    assert_eq!(out, [0, 0], "output untouched");
    assert_eq!(
        BackendError::from(err.clone()),
        BackendError::Device {
            step: failure.step,
            code: failure.code
        }
    );
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

/// The integer models of the device check (`w4.tdq`, `w3.tdq`, `w2.tdq`
/// exported by `scripts/gpu-cuda-test.sh` / `scripts/gpu-check.sh` into the
/// folder named by TDQ_GPU_MODELS), or `None` after printing why.
fn models_or_skip(test: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let Ok(dir) = std::env::var("TDQ_GPU_MODELS") else {
        let why = "TDQ_GPU_MODELS is not set (scripts/gpu-cuda-test.sh and scripts/gpu-check.sh export the models and set it)";
        if env_is_1("TDQ_REQUIRE_GPU") {
            panic!("{test}: {why}");
        }
        skip_log::record_skip(test, why);
        return None;
    };
    let mut out = Vec::new();
    for bits in [4, 3, 2] {
        let path = std::path::Path::new(&dir).join(format!("w{bits}.tdq"));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{test}: reading {}: {e}", path.display()));
        out.push((format!("W{bits}A{bits}"), bytes));
    }
    Some(out)
}

/// The xorshift64 sequence after `seed` (deterministic pseudo-random
/// numbers; `seed` must not be 0).
fn xorshift(seed: u64) -> impl Iterator<Item = u64> {
    std::iter::successors(Some(seed), |&s| {
        let s = s ^ (s << 13);
        let s = s ^ (s >> 7);
        Some(s ^ (s << 17))
    })
    .skip(1)
}

/// Deterministic pseudo-random bytes.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    xorshift(seed | 1)
        .take(n)
        .map(|s| (s >> 24) as u8)
        .collect()
}

/// The integer SwinIR-light entry point on the no-device path: the same
/// `NoDevice` error, output untouched.
#[test]
fn no_cuda_device_error_path_upscale() {
    let cuda = CudaBackend::new();
    let Some(err) = cuda.init_error().cloned() else {
        println!("a CUDA device is present: the no-device path runs on machines without one");
        return;
    };
    let Some(models) = models_or_skip("no_cuda_device_error_path_upscale") else {
        return;
    };
    let model = IntModel::parse(&models[0].1).expect("valid model");
    let img = [9u8; 2 * 3 * 3];
    let mut out = vec![0u8; 2 * 3 * 3 * 16];
    for path in [KernelPath::Fused, KernelPath::PerOperator] {
        let args = UpscaleArgs {
            model: &model,
            img: &img,
            h: 2,
            w: 3,
            out: &mut out,
        };
        assert_eq!(cuda.upscale_path(args, path), Err(err.clone()));
        assert_eq!(
            cuda_backend(path).upscale(&model, &img, 2, 3, &mut out),
            Err(BackendError::from(err.clone()))
        );
    }
    assert!(out.iter().all(|&b| b == 0), "output untouched");
}

/// The whole integer network on the GPU against the scalar oracle, `==`,
/// for random image sizes (odd, smaller than a window, several windows) and
/// contents, both kernel paths, at W4A4, W3A3 and W2A2: every kernel of
/// tdq_swinir.cu runs on every case with a different grid.
#[test]
fn gpu_swinir_parity() {
    let Some(gpu) = gpu_or_skip("gpu_swinir_parity") else {
        return;
    };
    let Some(models) = models_or_skip("gpu_swinir_parity") else {
        return;
    };
    let mut sizes: Vec<(usize, usize)> = vec![(1, 1), (1, 9), (8, 8), (9, 7), (17, 33), (40, 24)];
    sizes.extend(
        xorshift(0x2545_f491_4f6c_dd1d)
            .take(26)
            .map(|s| (1 + (s % 48) as usize, 1 + ((s >> 16) % 48) as usize)),
    );
    for (name, bytes) in &models {
        let model = IntModel::parse(bytes).expect("valid model");
        let scale = model.scale();
        for (case, &(h, w)) in sizes.iter().enumerate() {
            let img = random_bytes(h * w * 3, 0x9e37_79b9 ^ case as u64);
            let mut want = vec![0u8; h * w * 3 * scale * scale];
            ScalarOracle.upscale(&model, &img, h, w, &mut want).unwrap();
            for path in [KernelPath::Fused, KernelPath::PerOperator] {
                let mut got = vec![0u8; want.len()];
                let args = UpscaleArgs {
                    model: &model,
                    img: &img,
                    h,
                    w,
                    out: &mut got,
                };
                gpu.upscale_path(args, path)
                    .unwrap_or_else(|e| panic!("{name} {h}x{w} {path:?}: {e}"));
                let p = parity::compare(&want, &got, w * scale);
                assert!(
                    p.matches(),
                    "{name} {h}x{w} {path:?} (case {case}): GPU differs from the oracle: {}",
                    p.first_diff
                        .map_or_else(|| "hash only".into(), |d| d.to_string())
                );
            }
        }
        println!(
            "gpu_swinir_parity: {name}: {} sizes x 2 kernel paths identical",
            sizes.len()
        );
    }
}
