//! The device path (`model::kernels::portable`, what `--device cuda` runs) on the CPU, for the
//! whole model: the FP forward, the fake-quant forward and the DQC loss and bound gradients
//! equal the fused CPU kernels' within float reassociation. Its own test binary, because
//! `run_portable_on_cpu` switches the whole process.

use candle_core::{Device, Tensor, Var};
use tdquant_host::calib::dqc::{dqc_loss, teacher, DqcConfig};
use tdquant_host::calib::quantmodel::{HookMode, InitMethod, InitPlan};
use tdquant_host::calib::QuantHook;
use tdquant_host::data_root::{data_root_for, default_model, TestData};
use tdquant_host::model::kernels::portable::run_portable_on_cpu;
use tdquant_host::model::SwinIR;

/// FP output, fake-quant (W4A4) output, DQC loss and its gradient with respect to every bound.
struct Pass {
    fp: Vec<f32>,
    quant: Vec<f32>,
    loss: f32,
    grads: Vec<f32>,
}

fn pass(model: &SwinIR, x: &Tensor, bounds: &[(f32, f32)]) -> Pass {
    let fp = model.forward(x).unwrap();
    let hook = QuantHook::from_bounds(4, bounds).unwrap();
    hook.set_mode(HookMode::Quantize);
    let quant = model.forward_with(x, &hook).unwrap();
    let (out_fp, feats_fp) = teacher(model, x).unwrap();
    hook.set_differentiable(true);
    hook.record_features(true);
    let out_q = model.forward_with(x, &hook).unwrap();
    let feats_q = hook.take_features().unwrap();
    let loss = dqc_loss(&out_q, &out_fp, &feats_q, &feats_fp, &DqcConfig::paper()).unwrap();
    let grads = loss.total.backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    Pass {
        fp: flat(&fp),
        quant: flat(&quant),
        loss: loss.total.to_vec0::<f32>().unwrap(),
        grads: hook
            .vars()
            .iter()
            .map(|v: &Var| grads.get(v.as_tensor()).map_or(0.0, |g| flat(g)[0]))
            .collect(),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[test]
fn device_path_matches_the_fused_kernels_on_the_whole_model() {
    let Some(root) = data_root_for("portable_model", TestData::Bundle) else {
        return;
    };
    let model = SwinIR::load(default_model(&root)).unwrap();
    // Two 16×16 patches: both block kinds, the shift mask, two images per batch.
    let pixels: Vec<f32> = (0..2 * 3 * 16 * 16u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32)
        .collect();
    let x = Tensor::from_vec(pixels, (2, 3, 16, 16), &Device::Cpu).unwrap();
    let observe = QuantHook::new(InitPlan::baseline(4, InitMethod::MinMax).unwrap()).unwrap();
    model.forward_with(&x, &observe).unwrap();
    let bounds = observe.bounds().unwrap();

    let fused = pass(&model, &x, &bounds);
    run_portable_on_cpu(true);
    let portable = pass(&model, &x, &bounds);
    run_portable_on_cpu(false);

    let d_fp = max_abs_diff(&fused.fp, &portable.fp);
    println!("FP output: max |Δ| = {d_fp:e}");
    assert!(d_fp <= 1e-4, "FP output differs by {d_fp}");
    // A value within float noise of a rounding boundary may quantize one step apart, so the
    // fake-quant outputs are compared on average as well as at their worst.
    let d_q = max_abs_diff(&fused.quant, &portable.quant);
    let mean_q = fused
        .quant
        .iter()
        .zip(&portable.quant)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / fused.quant.len() as f32;
    println!("W4A4 output: max |Δ| = {d_q:e}, mean |Δ| = {mean_q:e}");
    assert!(
        mean_q <= 1e-5 && d_q <= 0.05,
        "fake-quant output differs: max {d_q}, mean {mean_q}"
    );
    let d_loss = (fused.loss - portable.loss).abs() / fused.loss.abs();
    println!(
        "DQC loss {} vs {}: relative |Δ| = {d_loss:e}",
        fused.loss, portable.loss
    );
    assert!(d_loss <= 1e-3, "DQC loss differs by {d_loss} (relative)");
    let diff: Vec<f32> = fused
        .grads
        .iter()
        .zip(&portable.grads)
        .map(|(a, b)| a - b)
        .collect();
    let rel = norm(&diff) / norm(&fused.grads);
    println!("bound gradients ({}): ‖Δ‖/‖g‖ = {rel:e}", fused.grads.len());
    assert!(rel <= 1e-3, "bound gradients differ: ‖Δ‖/‖g‖ = {rel}");
    assert!(
        portable.grads.iter().any(|g| *g != 0.0),
        "no bound gradient on the device path"
    );
}
