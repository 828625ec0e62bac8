//! The embedded data bundle (`assets/`): intact, loadable, and giving the
//! shared data's results. Runs on every machine (the bundle is in the
//! repository); the comparison with the `.pth` needs the shared folder.

use std::collections::BTreeSet;
use std::path::Path;

use tdquant_host::app;
use tdquant_host::data_root::{data_root_for_test, embedded_root};
use tdquant_host::model::SwinIR;
use tdquant_host::weights::sha256_hex;

fn files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn every_file_matches_sha256sums_and_none_is_unlisted() {
    let root = embedded_root();
    let sums = std::fs::read_to_string(root.join("SHA256SUMS")).unwrap();
    let mut listed = BTreeSet::new();
    for line in sums.lines() {
        let (want, name) = line.split_once("  ").expect("sha256sum format");
        let got = sha256_hex(&std::fs::read(root.join(name)).unwrap());
        assert_eq!(got, want, "assets/{name}: sha256 differs from SHA256SUMS");
        listed.insert(name.to_string());
    }
    let mut present = BTreeSet::new();
    files_under(&root, &root, &mut present);
    present.remove("SHA256SUMS");
    present.remove("SOURCES.md");
    assert_eq!(present, listed, "assets/ files vs SHA256SUMS");
    let bytes: u64 = listed
        .iter()
        .map(|n| std::fs::metadata(root.join(n)).unwrap().len())
        .sum();
    assert!(bytes <= 8 << 20, "bundle is {bytes} bytes, over 8 MiB");
}

#[test]
fn bundle_default_model_is_the_safetensors_and_evaluates_like_pytorch() {
    let root = embedded_root();
    let model_path = tdquant_host::data_root::default_model(&root);
    assert!(
        model_path.extension().is_some_and(|e| e == "safetensors"),
        "{}",
        model_path.display()
    );
    let out = std::env::temp_dir().join(format!("tdq-assets-eval-{}", std::process::id()));
    let report = app::eval_fp(
        &model_path,
        tdquant_host::compute_device::ComputeDevice::Cpu,
        &root,
        &["Set5".to_string()],
        &out,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let set = &report.sets[0];
    // x4_local_metrics.json (PyTorch + BasicSR): Set5 29.2973 / 0.8284.
    assert_eq!(format!("{:.4}", set.mean_psnr_y), "29.2973");
    assert_eq!(format!("{:.4}", set.mean_ssim_y), "0.8284");
}

#[test]
fn safetensors_holds_the_pth_tensors_bit_for_bit() {
    let Some(shared) = data_root_for_test("assets_bundle safetensors_vs_pth") else {
        return;
    };
    let pth = tdquant_host::weights::load(shared.join("models/swinir_light_x4_local.pth")).unwrap();
    let st = tdquant_host::weights::load(tdquant_host::data_root::default_model(&embedded_root()))
        .unwrap();
    assert_eq!(pth.tensors.len(), st.tensors.len());
    for (k, a) in &pth.tensors {
        let b = st.tensors.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(a.dims(), b.dims(), "{k}");
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{k}: values differ"
        );
    }
    let a = SwinIR::load(shared.join("models/swinir_light_x4_local.pth")).unwrap();
    let b = SwinIR::load(tdquant_host::data_root::default_model(&embedded_root())).unwrap();
    assert_eq!(a.weights_sha256(), b.weights_sha256());
    assert!(a.weights_sha256().is_some());
}
