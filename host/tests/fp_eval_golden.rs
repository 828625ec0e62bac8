//! `tdquant eval` on the FP stand-in model reproduces the reference
//! implementation's per-image PSNR/SSIM-Y (golden/x4_local_metrics.json) on
//! Set5, Set14 and B100: PSNR within 0.005 dB, SSIM within 0.0005.
//!
//! This runs the whole pipeline the CLI runs (`app::eval_fp`: weights loading,
//! evaluation padding, candle forward, BasicSR `tensor2img`, Y, crop, metrics),
//! so it checks the model and the protocol together, image by image.

use tdquant_host::app;
use tdquant_host::data_root::data_root_for_test;

const PSNR_TOL_DB: f64 = 0.005;
const SSIM_TOL: f64 = 0.0005;

#[test]
fn eval_reproduces_reference_metrics_on_set5_set14_b100() {
    let Some(root) = data_root_for_test("eval_reproduces_reference_metrics") else {
        return;
    };
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("golden/x4_local_metrics.json")).expect("golden metrics"),
    )
    .expect("golden metrics JSON");
    let sets: Vec<String> = ["Set5", "Set14", "B100"].map(String::from).to_vec();
    let out = std::env::temp_dir().join(format!("tdq-fp-eval-{}", std::process::id()));
    let report = app::eval_fp(
        &tdquant_host::data_root::default_model(&root),
        tdquant_host::compute_device::ComputeDevice::Cpu,
        &root,
        &sets,
        &out,
    )
    .expect("eval");
    assert!(out.join("eval.json").is_file() && out.join("eval.md").is_file());
    let _ = std::fs::remove_dir_all(&out);

    let mut worst_psnr = 0.0f64;
    let mut worst_ssim = 0.0f64;
    let mut failures = Vec::new();
    let mut checked = 0;
    for set in &report.sets {
        let gset = &golden["sets"][&set.name]["images"];
        let gcount = gset.as_object().map_or(0, |m| m.len());
        assert_eq!(set.images.len(), gcount, "{}: image count", set.name);
        for img in &set.images {
            let g = &gset[&img.name];
            let gp = g["psnr_y"]
                .as_f64()
                .unwrap_or_else(|| panic!("{}/{} missing", set.name, img.name));
            let gs = g["ssim_y"].as_f64().unwrap();
            let dp = (img.psnr_y - gp).abs();
            let ds = (img.ssim_y - gs).abs();
            worst_psnr = worst_psnr.max(dp);
            worst_ssim = worst_ssim.max(ds);
            if dp > PSNR_TOL_DB || ds > SSIM_TOL {
                failures.push(format!(
                    "{}/{}: PSNR {:.5} vs {:.5} (Δ {dp:.2e}), SSIM {:.6} vs {:.6} (Δ {ds:.2e})",
                    set.name, img.name, img.psnr_y, gp, img.ssim_y, gs
                ));
            }
            checked += 1;
        }
        let gmean = golden["sets"][&set.name]["mean_psnr_y"].as_f64().unwrap();
        eprintln!(
            "{:6} {:3} images  mean PSNR-Y {:.4} (reference {:.4})  mean SSIM-Y {:.4}",
            set.name, set.count, set.mean_psnr_y, gmean, set.mean_ssim_y
        );
    }
    eprintln!(
        "{checked} images: worst |ΔPSNR| {worst_psnr:.2e} dB, worst |ΔSSIM| {worst_ssim:.2e}"
    );
    assert_eq!(checked, 119, "Set5 + Set14 + B100");
    assert!(
        failures.is_empty(),
        "outside tolerance:\n{}",
        failures.join("\n")
    );
}
