//! The FP forward pass against the PyTorch golden outputs (`golden/x4_local_fp.safetensors`).

mod common;

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::model::{FeatureRecorder, FeatureTap, SwinIR};

/// (max |Δ|, mean |Δ|, max |reference|).
fn diff(a: &Tensor, b: &Tensor) -> (f32, f32, f32) {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b).unwrap().abs().unwrap();
    let max = d.max_all().unwrap().to_scalar::<f32>().unwrap();
    let mean = d.mean_all().unwrap().to_scalar::<f32>().unwrap();
    let r = common::max_abs(b);
    (max, mean, r)
}

fn load() -> Option<(SwinIR, HashMap<String, Tensor>)> {
    let root = data_root_for_test("fp_golden")?;
    let t0 = Instant::now();
    let model = SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    println!("model loaded in {:?}", t0.elapsed());
    let golden =
        candle_core::safetensors::load(root.join("golden/x4_local_fp.safetensors"), &Device::Cpu)
            .unwrap();
    Some((model, golden))
}

#[test]
fn set5_outputs_match_golden() {
    let Some((model, golden)) = load() else {
        return;
    };
    assert_eq!(model.scale(), 4);
    println!(
        "{:<10} {:>9} {:>12} {:>12} {:>9}",
        "image", "lr", "max|Δ|", "mean|Δ|", "time"
    );
    let mut worst = (0f32, 0f32);
    for name in ["baby", "bird", "butterfly", "head", "woman"] {
        let lr = golden[&format!("Set5/{name}/lr")].unsqueeze(0).unwrap();
        let sr = &golden[&format!("Set5/{name}/sr")];
        let t0 = Instant::now();
        let out = model.upscale(&lr).unwrap().squeeze(0).unwrap();
        let dt = t0.elapsed();
        let (max, mean, _) = diff(&out, sr);
        let (_, _, h, w) = lr.dims4().unwrap();
        println!(
            "{name:<10} {:>9} {max:>12.3e} {mean:>12.3e} {:>8.2}s",
            format!("{h}x{w}"),
            dt.as_secs_f64()
        );
        worst = (worst.0.max(max), worst.1.max(mean));
        assert!(max <= 2e-3, "{name}: max |Δ| {max}");
        assert!(mean <= 2e-5, "{name}: mean |Δ| {mean}");
    }
    println!("worst: max {:.3e}, mean {:.3e}", worst.0, worst.1);
}

#[test]
fn butterfly_intermediates_match_golden() {
    let Some((model, golden)) = load() else {
        return;
    };
    let lr = golden["Set5/butterfly/lr"].unsqueeze(0).unwrap();
    let rec = FeatureRecorder::all();
    let out = model.forward_with(&lr, &rec).unwrap();
    let mut taps = vec![
        FeatureTap::ConvFirst,
        FeatureTap::PatchEmbed,
        FeatureTap::Block { layer: 0, block: 0 },
        FeatureTap::Block { layer: 0, block: 1 },
    ];
    taps.extend((0..4).map(FeatureTap::Layer));
    taps.extend([
        FeatureTap::Norm,
        FeatureTap::ConvAfterBody,
        FeatureTap::Upsample,
    ]);
    println!(
        "{:<20} {:>12} {:>12} {:>12} {:>10}",
        "tensor", "max|Δ|", "mean|Δ|", "max|ref|", "rel"
    );
    let mut rows = Vec::new();
    for tap in taps {
        let name = tap.name();
        let want = &golden[&format!("Set5/butterfly/{name}")];
        let got = rec
            .get(tap)
            .unwrap_or_else(|| panic!("{name} not recorded"));
        let got = got.squeeze(0).unwrap();
        let (max, mean, r) = diff(&got, want);
        println!(
            "{name:<20} {max:>12.3e} {mean:>12.3e} {r:>12.3e} {:>10.3e}",
            max / r
        );
        rows.push((name, max, r));
    }
    let sr = &golden["Set5/butterfly/sr"];
    let (max, mean, r) = diff(&out.squeeze(0).unwrap(), sr);
    println!(
        "{:<20} {max:>12.3e} {mean:>12.3e} {r:>12.3e} {:>10.3e}",
        "sr",
        max / r
    );
    for (name, max, r) in rows {
        assert!(max <= 1e-4 * r, "{name}: max |Δ| {max} > 1e-4 × {r}");
    }
    // The DQC feature points are recorded too, and the taps fire in forward order.
    let order: Vec<FeatureTap> = rec.take().into_iter().map(|(t, _)| t).collect();
    // Per block: the attention residual (LN2 input) and the block output.
    assert_eq!(order.len(), 1 + 1 + 4 * (6 * 2 + 2) + 3);
    assert_eq!(order[0], FeatureTap::ConvFirst);
    assert_eq!(order[2], FeatureTap::AttnResidual { layer: 0, block: 0 });
    assert_eq!(order[3], FeatureTap::Block { layer: 0, block: 0 });
    assert_eq!(order[14], FeatureTap::ResidualGroup(0));
    assert_eq!(order[15], FeatureTap::Layer(0));
    assert_eq!(*order.last().unwrap(), FeatureTap::Upsample);
}

#[test]
fn batch_equals_single_images() {
    let Some((model, golden)) = load() else {
        return;
    };
    // Two 64×64 crops of different images, batched: window-major masks must broadcast per image.
    let a = golden["Set5/butterfly/lr"].clone();
    let b = golden["Set5/baby/lr"]
        .narrow(1, 32, 64)
        .unwrap()
        .narrow(2, 16, 64)
        .unwrap();
    let x = Tensor::stack(&[&a, &b], 0).unwrap();
    let y = model.forward(&x).unwrap();
    for (i, img) in [a, b].iter().enumerate() {
        let yi = model.forward(&img.unsqueeze(0).unwrap()).unwrap();
        let (max, _, _) = diff(&y.narrow(0, i, 1).unwrap(), &yi);
        println!("batch item {i}: max |Δ| {max:.3e}");
        assert!(max <= 1e-5, "item {i}: {max}");
    }
}
