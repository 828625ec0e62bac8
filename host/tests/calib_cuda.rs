//! `--device cuda`: the FP model, the fake quantizer and a DQC loss on candle's CUDA backend.
//!
//! - Without the `cuda` feature: the device is refused with a message naming the feature.
//! - With it and no device (CI links and runs against the stub CUDA libraries of
//!   gpu/cuda-stub, `TDQ_EXPECT_NO_DEVICE=1`): the "cannot be used" error, naming the driver's.
//! - With a device (scripts/gpu-check.sh runs this binary with `TDQ_REQUIRE_GPU=1`):
//!   - the stand-in model's FP and W4A4 fake-quant outputs and the DQC bound gradients on the
//!     GPU equal the CPU's within float reassociation (the same bounds as
//!     `portable_model.rs`, which checks the same compositions on the CPU);
//!   - DOBI, observing the quick preset's batch on each device, picks for every site a
//!     candidate at most one step from the CPU's;
//!   - the W4A4 fake-quant model with the golden released-DOBI bounds scores Set5 within
//!     0.01 dB PSNR-Y of the CPU.
//!
//!   Without a device these record `SKIPPED` in the skip log, or fail under
//!   `TDQ_REQUIRE_GPU=1`.

#[path = "common/device_pass.rs"]
mod device_pass;

use std::path::Path;

use device_pass::{assert_same_within_reassociation, minmax_bounds, pass, test_batch};
use tdquant_host::calib::bounds_file::{load_bounds, BoundsExpect};
use tdquant_host::calib::calibrate::{eval_bounds, observe, CalibConfig, Preset};
use tdquant_host::calib::data::{CalibPool, SplitMix64};
use tdquant_host::compute_device::ComputeDevice;
use tdquant_host::data_root::{data_root_for, default_model, record_skip, TestData};
use tdquant_host::model::SwinIR;

fn env_is_1(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

#[test]
fn cuda_device_is_refused_or_opened() {
    let err = match ComputeDevice::Cuda.open() {
        Ok(dev) => {
            assert!(cfg!(feature = "cuda") && dev.is_cuda());
            assert!(
                !env_is_1("TDQ_EXPECT_NO_DEVICE"),
                "TDQ_EXPECT_NO_DEVICE=1 but CUDA opened"
            );
            return;
        }
        Err(e) => format!("{e:#}"),
    };
    println!("{err}");
    if cfg!(feature = "cuda") {
        assert!(err.contains("CUDA device 0 cannot be used"), "{err}");
        assert!(!env_is_1("TDQ_REQUIRE_GPU"), "TDQ_REQUIRE_GPU=1: {err}");
    } else {
        assert!(
            err.contains("built without CUDA") && err.contains("--features cuda"),
            "{err}"
        );
    }
    assert!(ComputeDevice::Cpu.open().unwrap().is_cpu());
}

/// The data root and the stand-in model on the CPU and on the GPU, or `None` after recording
/// why `test` skips (a failure under `TDQ_REQUIRE_GPU=1`).
fn cpu_and_gpu(test: &str) -> Option<(std::path::PathBuf, SwinIR, SwinIR)> {
    let root = data_root_for(test, TestData::Bundle)?;
    let dev = match ComputeDevice::Cuda.open() {
        Ok(dev) => dev,
        Err(e) if env_is_1("TDQ_REQUIRE_GPU") => panic!("{test}: TDQ_REQUIRE_GPU=1: {e:#}"),
        Err(e) => {
            record_skip(test, &format!("{e:#}"));
            return None;
        }
    };
    let path = default_model(&root);
    let (cpu, gpu) = (
        SwinIR::load(&path).unwrap(),
        SwinIR::load_on(&path, &dev).unwrap(),
    );
    Some((root, cpu, gpu))
}

#[test]
fn gpu_matches_cpu_on_the_stand_in_model() {
    let Some((_, cpu, gpu)) = cpu_and_gpu("gpu_matches_cpu_on_the_stand_in_model") else {
        return;
    };
    let x = test_batch();
    let bounds = minmax_bounds(&cpu, &x);
    let (on_cpu, on_gpu) = (pass(&cpu, &x, &bounds), pass(&gpu, &x, &bounds));
    assert_same_within_reassociation("GPU vs CPU", &on_cpu, &on_gpu);
}

#[test]
fn dobi_on_gpu_picks_the_cpu_candidates_within_one_step() {
    let test = "dobi_on_gpu_picks_the_cpu_candidates_within_one_step";
    let Some((root, cpu, gpu)) = cpu_and_gpu(test) else {
        return;
    };
    let cfg = CalibConfig::preset(Preset::Quick, &root);
    let pool = CalibPool::open(&cfg.calib_dir, cpu.scale(), cfg.max_patch()).unwrap();
    let run = |model: &SwinIR| {
        let mut rng = SplitMix64::new(cfg.seed);
        let x = pool
            .sample_batch(&mut rng, cfg.obs_batch, cfg.obs_patch, model.device())
            .unwrap();
        observe(model, cfg.init_plan().unwrap(), &x, false)
            .unwrap()
            .1
    };
    let (on_cpu, on_gpu) = (run(&cpu), run(&gpu));
    let (mut worst, mut moved) = (0usize, 0usize);
    for (i, (c, g)) in on_cpu.iter().zip(&on_gpu).enumerate() {
        let (ci, gi) = (c.index.expect("DOBI index"), g.index.expect("DOBI index"));
        let d = ci.abs_diff(gi);
        worst = worst.max(d);
        moved += usize::from(d > 0);
        assert!(
            d <= 1,
            "site {i}: CPU candidate {ci} ({}, {}), GPU {gi} ({}, {})",
            c.lower,
            c.upper,
            g.lower,
            g.upper
        );
    }
    println!(
        "DOBI on {} sites: {moved} pick another candidate on the GPU, at most {worst} step(s) away",
        on_cpu.len()
    );
}

#[test]
fn set5_fake_quant_psnr_on_gpu_is_the_cpus() {
    let Some((root, cpu, gpu)) = cpu_and_gpu("set5_fake_quant_psnr_on_gpu_is_the_cpus") else {
        return;
    };
    let golden = root.join("golden").join("dobi_released_w4.safetensors");
    let expect = BoundsExpect {
        bits: Some(4),
        weights_sha256: None,
        scale: Some(4),
    };
    let bounds = load_bounds(Path::new(&golden), &expect).unwrap().bounds;
    let sets = ["Set5".to_string()];
    let psnr = |model: &SwinIR| {
        eval_bounds(model, &root, &sets, 4, Some(&bounds))
            .unwrap()
            .sets[0]
            .mean_psnr_y
    };
    let (c, g) = (psnr(&cpu), psnr(&gpu));
    println!(
        "Set5 x4 W4A4 (golden DOBI bounds) PSNR-Y: CPU {c:.4} dB, GPU {g:.4} dB, |Δ| {:.4} dB",
        (c - g).abs()
    );
    assert!((c - g).abs() <= 0.01, "CPU {c} dB vs GPU {g} dB");
}
