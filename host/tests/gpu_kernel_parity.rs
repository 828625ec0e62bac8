//! The CUDA kernels' whole forward pass, run on the CPU (`HostKernelBackend`:
//! `gpu/kernels/tdq_swinir.cu` compiled for the host, every thread of every
//! launch in turn, sequenced by `tdquant_gpu::swinir`), against the scalar
//! oracle `core::int::upscale`: byte-identical outputs at W4A4, W3A3 and
//! W2A2, odd image sizes, per-operator and fused kernels. On a GPU only the
//! hardware and the driver plumbing are then left to check
//! (`cargo host parity`, `scripts/gpu-check.sh`).

mod common;

use std::path::PathBuf;

use common::random_image;
use tdquant_core::backend::{IntegerBackend, ScalarOracle};
use tdquant_gpu::{parity, HostKernelBackend, KernelPath};
use tdquant_host::cpu_backend::CpuFastBackend;
use tdquant_host::cpu_features::Isa;
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::eval::BenchmarkSet;
use tdquant_host::export::GoldenExport;
use tdquant_host::intmodel::IntSr;

/// The data root and the golden export at each bit width of `widths`, or
/// `None` (the test is skipped) without the test data.
fn golden_models(widths: &[u8]) -> Option<(PathBuf, Vec<(u8, IntSr)>)> {
    let root = data_root_for("gpu_kernel_parity", TestData::Bundle)?;
    let mut golden = GoldenExport::new(&root).unwrap();
    let models = widths
        .iter()
        .map(|&bits| {
            let sr = IntSr::from_bytes(golden.export(bits).unwrap().bytes).unwrap();
            (bits, sr)
        })
        .collect();
    Some((root, models))
}

#[test]
fn emulated_kernels_match_oracle() {
    let Some((root, models)) = golden_models(&[4, 3, 2]) else {
        return;
    };
    for (bits, sr) in models {
        let m = sr.model();
        let s = m.scale();
        let mut cases: Vec<(String, Vec<u8>, usize, usize)> = [(1, 1), (7, 13), (9, 8), (16, 24)]
            .iter()
            .enumerate()
            .map(|(i, &(h, w))| {
                let img = random_image(h * w * 3, 0x51ed_2701 + i as u64 + u64::from(bits));
                (format!("random {h}x{w}"), img, h, w)
            })
            .collect();
        if bits == 4 {
            // One real image, cropped to keep the emulated run short.
            let set = BenchmarkSet::open(&root, "Set5", 4).unwrap();
            let pair = set.load(&set.entries[2]).unwrap();
            let (h, w) = (pair.lr.height() as usize, pair.lr.width() as usize);
            let (ch, cw) = (h.min(40), w.min(37));
            let mut crop = Vec::with_capacity(ch * cw * 3);
            for y in 0..ch {
                crop.extend_from_slice(&pair.lr.as_raw()[y * w * 3..(y * w + cw) * 3]);
            }
            cases.push((format!("{} crop", pair.name), crop, ch, cw));
        }
        for (what, img, h, w) in &cases {
            let mut want = vec![0u8; h * w * 3 * s * s];
            ScalarOracle.upscale(&m, img, *h, *w, &mut want).unwrap();
            for path in [KernelPath::PerOperator, KernelPath::Fused] {
                let mut got = vec![0u8; want.len()];
                HostKernelBackend::new(path)
                    .upscale(&m, img, *h, *w, &mut got)
                    .unwrap();
                let p = parity::compare(&want, &got, w * s);
                println!(
                    "W{bits} {what} {path:?}: oracle {} kernels {}",
                    p.sha_reference, p.sha_other
                );
                assert!(
                    p.matches(),
                    "W{bits} {what} {path:?}: kernels differ from the oracle: {}",
                    p.first_diff
                        .map_or_else(|| "hashes differ".into(), |d| d.to_string())
                );
            }
        }
    }
}

#[test]
fn every_cpu_backend_rejects_bad_sizes_like_the_oracle() {
    let Some((_, models)) = golden_models(&[4]) else {
        return;
    };
    let m = models[0].1.model();
    for (img_len, h, w, out_len) in [(0, 0, 4, 0), (12, 2, 2, 12 * 16 - 1), (11, 2, 2, 12 * 16)] {
        let img = vec![7u8; img_len];
        let mut want_out = vec![0u8; out_len];
        let want = ScalarOracle.upscale(&m, &img, h, w, &mut want_out);
        assert!(want.is_err(), "{h}x{w}: the oracle must refuse");
        let backends: [Box<dyn IntegerBackend>; 3] = [
            Box::new(HostKernelBackend::new(KernelPath::Fused)),
            Box::new(HostKernelBackend::new(KernelPath::PerOperator)),
            Box::new(CpuFastBackend::new(Isa::best())),
        ];
        for b in &backends {
            let mut got_out = vec![0u8; out_len];
            let got = b.upscale(&m, &img, h, w, &mut got_out);
            assert_eq!(got, want, "{h}x{w} {}: same error as the oracle", b.name());
            assert!(got_out.iter().all(|&b| b == 0), "output untouched on error");
        }
    }
}
