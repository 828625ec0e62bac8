//! One pass of the stand-in model for comparing two ways of running it (fused CPU kernels,
//! their device compositions, a GPU): FP output, W4A4 fake-quant output, and the DQC loss and
//! bound gradients of `calib::dqc::micro_step`, and the tolerances such runs must meet.
//! Included by `portable_model.rs` and `calib_cuda.rs`.

use candle_core::{Device, Tensor};
use tdquant_host::calib::dqc::{micro_step, DqcConfig};
use tdquant_host::calib::quantmodel::{HookMode, InitMethod, InitPlan};
use tdquant_host::calib::QuantHook;
use tdquant_host::model::SwinIR;

/// What one way of running the model gives.
pub struct Pass {
    fp: Vec<f32>,
    quant: Vec<f32>,
    loss: f64,
    grads: Vec<f32>,
}

/// Two seeded 16×16 patches (both block kinds, the shift mask, two images per batch), on the CPU.
pub fn test_batch() -> Tensor {
    let pixels: Vec<f32> = (0..2 * 3 * 16 * 16u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32)
        .collect();
    Tensor::from_vec(pixels, (2, 3, 16, 16), &Device::Cpu).unwrap()
}

/// W4A4 MinMax bounds of `x` (observed on the CPU model).
pub fn minmax_bounds(model: &SwinIR, x: &Tensor) -> Vec<(f32, f32)> {
    let observe = QuantHook::new(InitPlan::baseline(4, InitMethod::MinMax).unwrap()).unwrap();
    model.forward_with(x, &observe).unwrap();
    observe.bounds().unwrap()
}

/// The pass of `x` (moved to the model's device) with W4A4 `bounds`.
pub fn pass(model: &SwinIR, x: &Tensor, bounds: &[(f32, f32)]) -> Pass {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let x = x.to_device(model.device()).unwrap();
    let fp = model.forward(&x).unwrap();
    let hook = QuantHook::from_bounds(4, bounds).unwrap();
    hook.set_mode(HookMode::Quantize);
    let quant = model.forward_with(&x, &hook).unwrap();
    // What a DQC step computes for the whole batch as one micro-batch.
    let batch = x.dim(0).unwrap();
    let (quantizers, vars, cfg) = (hook.quantizers(), hook.vars(), DqcConfig::paper());
    let step = micro_step(model, 4, quantizers, &vars, &x, 0, batch, &cfg, batch).unwrap();
    Pass {
        fp: flat(&fp),
        quant: flat(&quant),
        loss: step.total,
        grads: step.grads.iter().map(|g| g.unwrap_or(0.0)).collect(),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Prints how far `other` is from `reference` and asserts float reassociation only: FP output
/// within 1e-4; W4A4 output within 1e-5 on average and 0.05 at worst (a value within float
/// noise of a rounding boundary may quantize one step apart); the DQC loss within 1e-3 and the
/// bound gradients within 1e-3, relative; and some bound gradient non-zero.
pub fn assert_same_within_reassociation(what: &str, reference: &Pass, other: &Pass) {
    let d_fp = max_abs_diff(&reference.fp, &other.fp);
    let d_q = max_abs_diff(&reference.quant, &other.quant);
    let mean_q = reference
        .quant
        .iter()
        .zip(&other.quant)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / reference.quant.len() as f32;
    let d_loss = (reference.loss - other.loss).abs() / reference.loss.abs();
    let diff: Vec<f32> = reference
        .grads
        .iter()
        .zip(&other.grads)
        .map(|(a, b)| a - b)
        .collect();
    let rel = norm(&diff) / norm(&reference.grads);
    println!(
        "{what}: FP output max |Δ| {d_fp:e}; W4A4 output max |Δ| {d_q:e}, mean {mean_q:e}; \
         DQC loss {} vs {} (relative |Δ| {d_loss:e}); {} bound gradients ‖Δ‖/‖g‖ {rel:e}",
        reference.loss,
        other.loss,
        reference.grads.len()
    );
    assert!(d_fp <= 1e-4, "{what}: FP output differs by {d_fp}");
    assert!(
        mean_q <= 1e-5 && d_q <= 0.05,
        "{what}: W4A4 output: max {d_q}, mean {mean_q}"
    );
    assert!(
        d_loss <= 1e-3,
        "{what}: DQC loss differs by {d_loss} (relative)"
    );
    assert!(rel <= 1e-3, "{what}: bound gradients ‖Δ‖/‖g‖ = {rel}");
    assert!(
        other.grads.iter().any(|g| *g != 0.0),
        "{what}: no bound gradient"
    );
}
