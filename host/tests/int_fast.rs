//! The fast integer path (`tdquant_host::intfast`) against the scalar oracle
//! (`tdquant_core::int::runner::upscale`): byte-identical outputs (SHA-256)
//! on every Set5 image at W4A4, and on odd-sized random images at W4A4 and
//! W2A2.

use tdquant_host::data_root::data_root_for_test;
use tdquant_host::eval::BenchmarkSet;
use tdquant_host::export::{calib_stats, export, load_export_bounds, ExportOptions};
use tdquant_host::intfast::FastIntModel;
use tdquant_host::intmodel::IntSr;
use tdquant_host::model::SwinIR;
use tdquant_host::weights::sha256_hex;

/// Deterministic pseudo-random bytes (xorshift).
fn random_image(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn check(sr: &IntSr, fast: &FastIntModel<'_>, img: &[u8], h: usize, w: usize, what: &str) {
    let want = sr.upscale_raw(img, h, w).unwrap();
    let got = fast.upscale(img, h, w).unwrap();
    let (a, b) = (sha256_hex(&want), sha256_hex(&got));
    println!("{what} {h}x{w}: oracle {a} fast {b}");
    assert_eq!(a, b, "{what} {h}x{w}: fast path differs from the oracle");
}

#[test]
fn fast_path_matches_oracle_set5_and_odd_sizes() {
    let Some(root) = data_root_for_test("int_fast") else {
        return;
    };
    let weights =
        tdquant_host::weights::load(root.join("models/swinir_light_x4_local.pth")).unwrap();
    let model = SwinIR::from_weights(&weights).unwrap();
    let mut stats = None;
    for bits in [4u8, 2] {
        let path = root.join(format!("golden/dobi_released_w{bits}.safetensors"));
        let loaded = load_export_bounds(&path, Some(bits)).unwrap();
        let stats = *stats.get_or_insert_with(|| {
            calib_stats(&model, loaded.calibration_batch.as_ref().unwrap()).unwrap()
        });
        let out = export(
            &weights,
            &loaded.bounds,
            bits,
            &stats,
            &ExportOptions::default(),
        )
        .unwrap();
        let sr = IntSr::from_bytes(out.bytes).unwrap();
        let m = sr.model();
        let fast = FastIntModel::new(&m).unwrap();
        for (i, &(h, w)) in [(1, 1), (7, 13), (9, 8), (16, 24), (3, 17)]
            .iter()
            .enumerate()
        {
            let img = random_image(h * w * 3, 0x9e37_79b9 + i as u64);
            check(&sr, &fast, &img, h, w, &format!("W{bits} random"));
        }
        if bits == 4 {
            let set = BenchmarkSet::open(&root, "Set5", 4).unwrap();
            assert_eq!(set.entries.len(), 5);
            for entry in &set.entries {
                let pair = set.load(entry).unwrap();
                let (h, w) = (pair.lr.height() as usize, pair.lr.width() as usize);
                check(
                    &sr,
                    &fast,
                    pair.lr.as_raw(),
                    h,
                    w,
                    &format!("W4 {}", pair.name),
                );
            }
        }
    }
}
