//! `--device cuda`: the FP model, the fake quantizer and a DQC loss on candle's CUDA backend.
//!
//! - Without the `cuda` feature: the device is refused with a message naming the feature.
//! - With it and no device (CI links and runs against the stub CUDA libraries of
//!   gpu/cuda-stub, `TDQ_EXPECT_NO_DEVICE=1`): the "cannot be used" error, naming the driver's.
//! - With a device: the stand-in model's FP and W4A4 fake-quant outputs and the DQC bound
//!   gradients on the GPU equal the CPU's within float reassociation (the same bounds as
//!   `portable_model.rs`, which checks the same compositions on the CPU). Without a device
//!   this records `SKIPPED` in the skip log, or fails under `TDQ_REQUIRE_GPU=1`.

use candle_core::{Device, Tensor};
use tdquant_host::calib::dqc::{dqc_loss, teacher, DqcConfig};
use tdquant_host::calib::quantmodel::{HookMode, InitMethod, InitPlan};
use tdquant_host::calib::QuantHook;
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

/// FP output, W4A4 output, DQC loss and bound gradients of `x` on the model's device.
fn pass(model: &SwinIR, x: &Tensor, bounds: &[(f32, f32)]) -> (Vec<f32>, Vec<f32>, f32, Vec<f32>) {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let x = x.to_device(model.device()).unwrap();
    let fp = model.forward(&x).unwrap();
    let hook = QuantHook::from_bounds(4, bounds).unwrap();
    hook.set_mode(HookMode::Quantize);
    let quant = model.forward_with(&x, &hook).unwrap();
    let (out_fp, feats_fp) = teacher(model, &x).unwrap();
    hook.set_differentiable(true);
    hook.record_features(true);
    let out_q = model.forward_with(&x, &hook).unwrap();
    let feats_q = hook.take_features().unwrap();
    let loss = dqc_loss(&out_q, &out_fp, &feats_q, &feats_fp, &DqcConfig::paper()).unwrap();
    let grads = loss.total.backward().unwrap();
    let g = hook
        .vars()
        .iter()
        .map(|v| grads.get(v.as_tensor()).map_or(0.0, |g| flat(g)[0]))
        .collect();
    (
        flat(&fp),
        flat(&quant),
        loss.total.to_vec0::<f32>().unwrap(),
        g,
    )
}

#[test]
fn gpu_matches_cpu_on_the_stand_in_model() {
    let test = "gpu_matches_cpu_on_the_stand_in_model";
    let Some(root) = data_root_for(test, TestData::Bundle) else {
        return;
    };
    let dev = match ComputeDevice::Cuda.open() {
        Ok(dev) => dev,
        Err(e) if env_is_1("TDQ_REQUIRE_GPU") => panic!("{test}: TDQ_REQUIRE_GPU=1: {e:#}"),
        Err(e) => {
            record_skip(test, &format!("{e:#}"));
            return;
        }
    };
    let path = default_model(&root);
    let (cpu, gpu) = (
        SwinIR::load(&path).unwrap(),
        SwinIR::load_on(&path, &dev).unwrap(),
    );
    let pixels: Vec<f32> = (0..2 * 3 * 16 * 16u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32)
        .collect();
    let x = Tensor::from_vec(pixels, (2, 3, 16, 16), &Device::Cpu).unwrap();
    let observe = QuantHook::new(InitPlan::baseline(4, InitMethod::MinMax).unwrap()).unwrap();
    cpu.forward_with(&x, &observe).unwrap();
    let bounds = observe.bounds().unwrap();
    let (fp_c, q_c, loss_c, g_c) = pass(&cpu, &x, &bounds);
    let (fp_g, q_g, loss_g, g_g) = pass(&gpu, &x, &bounds);
    let max_diff =
        |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    let mean_diff = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    };
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let dg: Vec<f32> = g_c.iter().zip(&g_g).map(|(a, b)| a - b).collect();
    println!(
        "GPU vs CPU: FP max |Δ| {:e}; W4A4 max |Δ| {:e}, mean {:e}; loss {loss_c} vs {loss_g}; bound gradients ‖Δ‖/‖g‖ {:e}",
        max_diff(&fp_c, &fp_g),
        max_diff(&q_c, &q_g),
        mean_diff(&q_c, &q_g),
        norm(&dg) / norm(&g_c)
    );
    assert!(max_diff(&fp_c, &fp_g) <= 1e-4);
    assert!(mean_diff(&q_c, &q_g) <= 1e-5 && max_diff(&q_c, &q_g) <= 0.05);
    assert!((loss_c - loss_g).abs() <= 1e-3 * loss_c.abs());
    assert!(norm(&dg) <= 1e-3 * norm(&g_c));
}
