//! BasicSR-exact metrics: unit checks, and the golden PyTorch SR outputs of
//! Set5 (x4) scored against `golden/x4_local_metrics.json`, independently of
//! the Rust model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::{Rgb, RgbImage};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::eval::metrics::{psnr_planes, psnr_ssim_y, ssim_planes, y_value, Plane};
use tdquant_host::eval::{
    evaluate_sets, score_sr, BenchmarkSet, EvalReport, ImageScore, SetReport,
};
use tdquant_host::image_io::{rgb8_to_f32, tensor2img, RgbImageF32};

#[test]
fn y_of_known_pixels() {
    // BasicSR to_y_channel (numpy 2.4) on single pixels, e.g.
    // python3 -c "import numpy as np; p=np.array([[[0,0,255]]],np.uint8);
    //   i=p.astype(np.float32)/255.; y=(np.dot(i,[24.966,128.553,65.481])+16.0)/255.;
    //   print(repr(float(y.astype(np.float32)[0,0]*np.float32(255.))))"
    assert_eq!(f64::from(y_value(255, 255, 255)), 235.0);
    assert_eq!(f64::from(y_value(0, 0, 0)), 16.0);
    assert_eq!(f64::from(y_value(255, 0, 0)), 81.48100280761719);
    assert_eq!(f64::from(y_value(0, 255, 0)), 144.55299377441406);
    assert_eq!(f64::from(y_value(0, 0, 255)), 40.965999603271484);
    assert_eq!(f64::from(y_value(77, 200, 12)), 137.77345275878906);
}

#[test]
fn psnr_of_identical_images_is_inf() {
    let img = RgbImage::from_fn(20, 20, |x, y| Rgb([(x * 9) as u8, (y * 11) as u8, 7]));
    let s = psnr_ssim_y(&img, &img, 2).unwrap();
    assert_eq!(s.psnr_y, f64::INFINITY);
    assert!((s.ssim_y - 1.0).abs() < 1e-12, "{}", s.ssim_y);
    // inf propagates into the mean and is written as "inf" in JSON.
    let set = SetReport::from_images(
        "T",
        vec![ImageScore {
            name: "a".into(),
            psnr_y: s.psnr_y,
            ssim_y: s.ssim_y,
            lr_h: 5,
            lr_w: 5,
            sr_seconds: 0.0,
        }],
        0.0,
        false,
    );
    assert_eq!(set.mean_psnr_y, f64::INFINITY);
    let rep = EvalReport {
        scale: 4,
        crop_border: 4,
        protocol: "t".into(),
        sets: vec![set],
        seconds: 0.0,
    };
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    assert_eq!(v["sets"]["T"]["images"]["a"]["psnr_y"], "inf");
    assert_eq!(v["sets"]["T"]["mean_psnr_y"], "inf");
    assert!(rep.to_markdown().contains("| T | 1 | inf |"));
    assert!(serde_json::to_string(&rep)
        .unwrap()
        .contains("\"psnr_y\":\"inf\""));
}

#[test]
fn tiny_psnr_by_hand() {
    // Planes: mse = (1 + 4 + 9 + 0) / 4 = 3.5; PSNR = 10 log10(65025 / 3.5).
    let a = Plane {
        h: 2,
        w: 2,
        data: vec![10.0, 20.0, 30.0, 40.0],
    };
    let b = Plane {
        h: 2,
        w: 2,
        data: vec![11.0, 22.0, 33.0, 40.0],
    };
    let want = 10.0 * (65025.0_f64 / 3.5).log10();
    assert_eq!(psnr_planes(&a, &b), want);
    assert!((want - 42.690).abs() < 1e-3);
    // Through RGB: one pixel of a black 3x3 image set to (30, 20, 10);
    // numpy/BasicSR gives dY = 18.765296936035156, mse = dY^2 / 9,
    // PSNR 32.20611988427338.
    let black = RgbImage::new(3, 3);
    let mut one = black.clone();
    one.put_pixel(1, 1, Rgb([30, 20, 10]));
    let s = psnr_ssim_y(&black, &one, 0).unwrap();
    assert_eq!(s.psnr_y, 32.20611988427338);
    assert!(
        s.ssim_y.is_nan(),
        "SSIM of a 3x3 image has an empty valid region"
    );
}

#[test]
fn ssim_basic_properties() {
    let a = Plane {
        h: 16,
        w: 13,
        data: (0..16 * 13)
            .map(|i| f64::from((i * 37 % 251) as u8))
            .collect(),
    };
    assert!((ssim_planes(&a, &a) - 1.0).abs() < 1e-12);
    let b = Plane {
        data: a.data.iter().map(|v| 255.0 - v).collect(),
        ..a.clone()
    };
    let s = ssim_planes(&a, &b);
    assert!(s < 0.0, "inverted image should have negative SSIM, got {s}");
    assert_eq!(s, ssim_planes(&b, &a));
}

#[test]
fn tensor2img_and_back() {
    let img = RgbImage::from_fn(4, 3, |x, y| Rgb([(x * 60) as u8, (y * 100) as u8, 255]));
    let f = rgb8_to_f32(&img);
    assert_eq!((f.h, f.w), (3, 4));
    assert_eq!(f.get(0, 0, 1), 60.0 / 255.0);
    assert_eq!(f.get(1, 2, 0), 200.0 / 255.0);
    assert_eq!(tensor2img(&f), img);
    let mut g = f.clone();
    g.data[0] = 1.7;
    g.data[1] = -0.2;
    let back = tensor2img(&g);
    assert_eq!(back.get_pixel(0, 0)[0], 255);
    assert_eq!(back.get_pixel(1, 0)[0], 0);
}

fn load_golden(root: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(root.join("golden/x4_local_fp.safetensors"), &Device::Cpu)
        .expect("load golden safetensors")
}

fn to_img(t: &Tensor) -> RgbImageF32 {
    let dims = t.dims().to_vec();
    assert_eq!(dims.len(), 3);
    assert_eq!(dims[0], 3);
    RgbImageF32::new(
        dims[1],
        dims[2],
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    )
    .unwrap()
}

const SET5: [&str; 5] = ["baby", "bird", "butterfly", "head", "woman"];

/// Reads the golden metrics file; numbers are returned by [`golden_number`]
/// from the raw text, because serde_json's default float parser is not
/// correctly rounded (it is off by one ulp on some of these values).
fn golden_text(root: &Path) -> String {
    std::fs::read_to_string(root.join("golden/x4_local_metrics.json")).unwrap()
}

/// The number after `"<key>":` following the keys `path` in order, parsed
/// with Rust's correctly rounded `f64::from_str`.
fn golden_number(text: &str, path: &[&str], key: &str) -> f64 {
    let mut at = 0;
    for p in path {
        at += text[at..]
            .find(&format!("\"{p}\""))
            .unwrap_or_else(|| panic!("{p} not in golden JSON"));
    }
    let k = format!("\"{key}\":");
    at += text[at..].find(&k).unwrap() + k.len();
    let rest = text[at..].trim_start();
    let end = rest.find([',', '}', '\n']).unwrap();
    rest[..end].trim().parse().unwrap()
}

/// The data root, the golden Set5 ×4 outputs and the golden metrics JSON
/// (`None`, the skip recorded, without the data).
fn golden_set5(what: &str) -> Option<(PathBuf, HashMap<String, Tensor>, String)> {
    let root = data_root_for_test(what)?;
    let golden = load_golden(&root);
    let text = golden_text(&root);
    Some((root, golden, text))
}

#[test]
fn golden_set5_x4_metrics() {
    let Some((root, golden, text)) = golden_set5("golden_set5_x4_metrics") else {
        return;
    };
    let set = BenchmarkSet::open(&root, "Set5", 4).unwrap();
    assert!(!set.generated_lr);
    assert_eq!(
        set.entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        SET5
    );
    let (mut max_dp, mut max_ds) = (0.0_f64, 0.0_f64);
    let (mut sum_p, mut sum_s) = (0.0, 0.0);
    for entry in &set.entries {
        let pair = set.load(entry).unwrap();
        let lr = to_img(&golden[&format!("Set5/{}/lr", entry.name)]);
        assert_eq!(
            lr,
            rgb8_to_f32(&pair.lr),
            "golden LR input of {} is the LR file / 255",
            entry.name
        );
        let sr = to_img(&golden[&format!("Set5/{}/sr", entry.name)]);
        let s = score_sr(&sr, &pair.gt, 4).unwrap();
        let at = ["sets", "Set5", "images", entry.name.as_str()];
        let (gp, gs) = (
            golden_number(&text, &at, "psnr_y"),
            golden_number(&text, &at, "ssim_y"),
        );
        let (dp, ds) = ((s.psnr_y - gp).abs(), (s.ssim_y - gs).abs());
        eprintln!(
            "{:<10} PSNR-Y {:?} (golden {gp:?}, |d| {dp:.3e})  SSIM-Y {:?} (golden {gs:?}, |d| {ds:.3e})",
            entry.name, s.psnr_y, s.ssim_y
        );
        max_dp = max_dp.max(dp);
        max_ds = max_ds.max(ds);
        sum_p += s.psnr_y;
        sum_s += s.ssim_y;
    }
    eprintln!("max |dPSNR| {max_dp:.3e} dB, max |dSSIM| {max_ds:.3e}");
    assert!(
        max_dp < 0.005 && max_ds < 0.0005,
        "outside the brief's tolerance"
    );
    // Measured: PSNR bit-exact (0), SSIM within ~4e-14 (OpenCV filters the
    // 11x11 f64 window by DFT, we correlate directly).
    assert!(
        max_dp <= 1e-12,
        "PSNR should be BasicSR-exact, max diff {max_dp:e}"
    );
    assert!(
        max_ds <= 1e-12,
        "SSIM should agree to ~1e-13, max diff {max_ds:e}"
    );
    let mp = golden_number(&text, &["sets", "Set5"], "mean_psnr_y");
    let ms = golden_number(&text, &["sets", "Set5"], "mean_ssim_y");
    eprintln!(
        "mean PSNR-Y |d| {:.3e}, mean SSIM-Y |d| {:.3e}",
        (sum_p / 5.0 - mp).abs(),
        (sum_s / 5.0 - ms).abs()
    );
    assert!((sum_p / 5.0 - mp).abs() <= 1e-12);
    assert!((sum_s / 5.0 - ms).abs() <= 1e-12);
}

#[test]
fn golden_set5_x4_through_runner() {
    let Some((root, golden, text)) = golden_set5("golden_set5_x4_through_runner") else {
        return;
    };
    // The "super-resolver" looks the LR input up among the golden inputs and
    // returns the matching golden output.
    let pairs: Vec<(RgbImageF32, RgbImageF32)> = SET5
        .iter()
        .map(|n| {
            (
                to_img(&golden[&format!("Set5/{n}/lr")]),
                to_img(&golden[&format!("Set5/{n}/sr")]),
            )
        })
        .collect();
    let mut calls = 0;
    let mut sr = |lr: &RgbImageF32| -> anyhow::Result<RgbImageF32> {
        calls += 1;
        pairs
            .iter()
            .find(|(l, _)| l == lr)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| anyhow::anyhow!("unknown LR input"))
    };
    let rep = evaluate_sets(&root, &["Set5"], 4, &mut sr).unwrap();
    assert_eq!(calls, 5);
    let set = &rep.sets[0];
    assert_eq!((set.name.as_str(), set.count), ("Set5", 5));
    let mp = golden_number(&text, &["sets", "Set5"], "mean_psnr_y");
    let ms = golden_number(&text, &["sets", "Set5"], "mean_ssim_y");
    eprintln!(
        "runner mean PSNR-Y {} (golden {mp}), SSIM-Y {} (golden {ms})",
        set.mean_psnr_y, set.mean_ssim_y
    );
    assert!((set.mean_psnr_y - mp).abs() <= 1e-12);
    assert!((set.mean_ssim_y - ms).abs() <= 1e-12);
    // The JSON has the golden file's shape.
    let v: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
    assert_eq!(v["scale"], 4);
    assert!(
        v["sets"]["Set5"]["images"]["butterfly"]["psnr_y"]
            .as_f64()
            .unwrap()
            > 20.0
    );
    rep.print_table();
    eprintln!("{}", rep.to_markdown());

    // A wrongly sized output is an error naming the image.
    let mut bad = |lr: &RgbImageF32| -> anyhow::Result<RgbImageF32> {
        Ok(RgbImageF32::zeros(lr.h * 2, lr.w * 2))
    };
    let err = evaluate_sets(&root, &["Set5"], 4, &mut bad).unwrap_err();
    assert!(format!("{err:#}").contains("Set5/baby"), "{err:#}");
}
