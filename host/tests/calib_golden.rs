//! DOBI and fake-quant evaluation against the released 2DQuant code
//! (`golden/dobi_released_w{2,3,4}.safetensors`, `golden/dobi_released_metrics.json`).
//!
//! (i) Released-mode DOBI on the golden `calibration_batch` (one no-grad forward of the whole
//! `[8, 3, 64, 64]` batch, no padding) reproduces the 768 golden bounds: ≥ 99 % within a
//! relative difference of 1e-5, every other bound exactly one candidate step away (a near-tie
//! flip: our FP activations differ from PyTorch's by ~1e-6 relative, and the objective norms
//! are accumulated differently). The 288 weight bounds (identical inputs) must be
//! bit-identical.
//!
//! (ii) With the golden bounds loaded, fake-quant Set5 / Set14 PSNR-Y matches
//! `dobi_released_metrics.json` within 0.01 dB for W4A4, W3A3 and W2A2.
//!
//! `cargo test --release -p tdquant-host --test calib_golden -- --nocapture --test-threads 1`

use std::path::{Path, PathBuf};
use std::time::Instant;

use tdquant_host::calib::bounds_file::{
    load_bounds, BoundsExpect, LoadedBounds, CALIBRATION_BATCH,
};
use tdquant_host::calib::dobi::{dobi_candidates, DobiConfig};
use tdquant_host::calib::{DobiMode, HookMode, InitPlan, QuantHook};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::eval::evaluate_sets;
use tdquant_host::model::{SiteId, SwinIR};

fn setup(what: &str) -> Option<(PathBuf, SwinIR)> {
    let root = data_root_for_test(what)?;
    let model = SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    Some((root, model))
}

/// The released DOBI bounds (and calibration batch) at `bits`.
fn golden_bounds(root: &Path, bits: u8) -> LoadedBounds {
    load_bounds(
        &root.join(format!("golden/dobi_released_w{bits}.safetensors")),
        &BoundsExpect {
            bits: Some(bits),
            ..Default::default()
        },
    )
    .unwrap()
}

fn rel(a: f32, b: f32) -> f64 {
    let (a, b) = (f64::from(a), f64::from(b));
    (a - b).abs() / b.abs().max(1e-30)
}

#[test]
fn released_dobi_matches_golden_bounds() {
    let Some((root, model)) = setup("calib_golden bounds") else {
        return;
    };
    let mut summary = Vec::new();
    for bits in [4u8, 3, 2] {
        let golden = golden_bounds(&root, bits);
        let batch = golden.extra[CALIBRATION_BATCH].clone();
        assert_eq!(batch.dims(), [8, 3, 64, 64]);
        let hook = QuantHook::new(InitPlan::dobi(bits, DobiMode::Released).unwrap()).unwrap();
        assert_eq!(hook.mode(), HookMode::Observe);
        let t0 = Instant::now();
        let out = model.forward_with(&batch, &hook).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(out.dims(), [8, 3, 256, 256]);
        let obs = hook.observed().unwrap();
        let ours = hook.bounds().unwrap();

        let (mut close, mut flips, mut bad) = (0usize, Vec::new(), Vec::new());
        let mut exact = 0usize;
        let (mut w_exact, mut w_total) = (0usize, 0usize);
        let mut max_rel = 0f64;
        for (site, ((o, g), init)) in SiteId::all().zip(ours.iter().zip(&golden.bounds).zip(&obs)) {
            let r = [rel(o.0, g.0), rel(o.1, g.1)];
            exact += usize::from(o.0 == g.0) + usize::from(o.1 == g.1);
            if site.site.is_weight() {
                w_total += 2;
                w_exact += usize::from(o.0 == g.0) + usize::from(o.1 == g.1);
            }
            if r[0] <= 1e-5 && r[1] <= 1e-5 {
                close += 2;
                max_rel = max_rel.max(r[0]).max(r[1]);
                continue;
            }
            // Not close: must be exactly one candidate step away (both bounds of a two-sided
            // search move together).
            let cands = dobi_candidates(init.min, init.max, &DobiConfig::released(bits));
            let i = init.index.unwrap();
            let neighbour = [i.wrapping_sub(1), i + 1].into_iter().find(|&j| {
                j < cands.len() && rel(cands[j].0, g.0) <= 1e-5 && rel(cands[j].1, g.1) <= 1e-5
            });
            let line = format!(
                "{site}: ours i={i} ({:e}, {:e}), golden ({:e}, {:e}), runner-up {:?} rel gap {:.2e}",
                o.0,
                o.1,
                g.0,
                g.1,
                init.runner_up.map(|r| r.0),
                init.runner_up
                    .map(|r| (r.1 - init.objective.unwrap()) / init.objective.unwrap())
                    .unwrap_or(f64::NAN)
            );
            // Bounds that are within 1e-5 individually still count as close.
            close += usize::from(r[0] <= 1e-5) + usize::from(r[1] <= 1e-5);
            match neighbour {
                Some(j) => flips.push(format!("{line} -> golden is candidate {j}")),
                None => bad.push(line),
            }
        }
        println!("W{bits}A{bits}: observation pass (FP forward + 384 DOBI searches) {secs:.1} s");
        println!(
            "W{bits}A{bits}: {close}/768 bounds within 1e-5 relative ({exact} bit-identical, max rel {max_rel:.2e}), {} sites one step away, {} other",
            flips.len(),
            bad.len()
        );
        println!("W{bits}A{bits}: weight sites: {w_exact}/{w_total} bounds bit-identical");
        for f in &flips {
            println!("  one-step flip: {f}");
        }
        for b in &bad {
            println!("  MISMATCH: {b}");
        }
        summary.push((bits, close, exact, flips.len(), bad.len()));
        // Weights are identical on both sides, so their bounds must be too
        // (this pins the released step's CPU rounding, `(max − min)/200`).
        assert_eq!(w_exact, w_total, "W{bits}: weight bounds not bit-identical");
        assert!(
            bad.is_empty(),
            "W{bits}: {} bounds neither close nor one step away",
            bad.len()
        );
        assert!(
            close as f64 >= 0.99 * 768.0,
            "W{bits}: only {close}/768 bounds within 1e-5"
        );
    }
    println!("summary (bits, within 1e-5 of 768, bit-identical, one-step-flip sites, other):");
    for s in summary {
        println!("  {s:?}");
    }
}

#[test]
fn golden_bounds_fake_quant_psnr_matches() {
    let Some((root, model)) = setup("calib_golden psnr") else {
        return;
    };
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("golden/dobi_released_metrics.json")).unwrap(),
    )
    .unwrap();
    let mut rows = Vec::new();
    for bits in [4u8, 3, 2] {
        let golden = golden_bounds(&root, bits);
        let hook = QuantHook::from_bounds(bits, &golden.bounds).unwrap();
        let t0 = Instant::now();
        let report = evaluate_sets(&root, &["Set5", "Set14"], 4, &mut |lr| {
            model.upscale_image(lr, &hook)
        })
        .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let key = format!("W{bits}A{bits}");
        for set in &report.sets {
            let want = metrics[&key][&set.name].as_f64().unwrap();
            let d = set.mean_psnr_y - want;
            println!(
                "{key} {:<6} PSNR-Y {:.4} golden {want:.4} delta {d:+.4} dB",
                set.name, set.mean_psnr_y
            );
            rows.push((key.clone(), set.name.clone(), set.mean_psnr_y, want, d));
        }
        println!("{key}: Set5 + Set14 fake-quant eval {secs:.1} s");
    }
    for (key, set, got, want, d) in &rows {
        assert!(
            d.abs() <= 0.01,
            "{key} {set}: PSNR-Y {got:.4} vs golden {want:.4} ({d:+.4} dB)"
        );
    }
}
