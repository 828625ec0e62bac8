//! Bad input to the calibration tool fails with a clear message, before any
//! long work: unsupported bit widths; bounds files for another model, another
//! bit width, or with missing / unknown tensors; a missing or empty
//! calibration folder; calibration images smaller than the patch. Also the
//! bounds-file round trip.
//!
//! `cargo test --release -p tdquant-host --test calib_errors`

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use tdquant_host::calib::bounds_file::{
    bound_keys, bounds_bytes, load_bounds, save_bounds, sidecar_path, BoundsExpect, BoundsMeta,
};
use tdquant_host::calib::calibrate::{calibrate, CalibConfig, Preset, RunOptions};
use tdquant_host::calib::data::CalibPool;
use tdquant_host::calib::{check_bits, DobiMode, InitPlan};
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::model::SiteId;

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("calib_errors")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn err_of<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn err_chain<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => format!("{e:#}"),
    }
}

fn meta(bits: u8, sha: &str) -> BoundsMeta {
    common::bounds_meta(bits, sha, "m.pth")
}

fn bounds() -> Vec<(f32, f32)> {
    (0..384)
        .map(|i| (-1.0 - i as f32 * 1e-3, 1.0 + i as f32 * 1e-3))
        .collect()
}

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[test]
fn bits_outside_2_3_4_8_are_rejected() {
    for b in [0u8, 1, 5, 6, 7, 9, 16] {
        let m = err_of(check_bits(b));
        assert!(m.contains(&format!("unsupported bit width {b}")), "{m}");
        assert!(m.contains("2, 3, 4 or 8"), "{m}");
        assert!(InitPlan::dobi(b, DobiMode::Paper).is_err());
    }
    for b in [2u8, 3, 4, 8] {
        assert_eq!(check_bits(b).unwrap(), b);
    }
}

#[test]
fn bounds_round_trip_with_metadata_and_sidecar() {
    let d = tmp("roundtrip");
    let p = d.join("b.safetensors");
    let b = bounds();
    save_bounds(&p, &b, &meta(3, SHA_A)).unwrap();
    assert!(sidecar_path(&p).is_file());
    let l = load_bounds(
        &p,
        &BoundsExpect {
            bits: Some(3),
            weights_sha256: Some(SHA_A),
            scale: Some(4),
        },
    )
    .unwrap();
    assert_eq!(l.bounds, b);
    assert_eq!(l.bits, 3);
    assert_eq!(l.meta.unwrap(), meta(3, SHA_A));
    // Bits from the metadata when the caller gives none.
    assert_eq!(load_bounds(&p, &BoundsExpect::default()).unwrap().bits, 3);
    // Deterministic bytes.
    assert_eq!(
        bounds_bytes(&b, &meta(3, SHA_A)).unwrap(),
        std::fs::read(&p).unwrap()
    );
    // Metadata from the sidecar when the file has none of its own.
    let bare = d.join("bare.safetensors");
    write_raw(&bare, &b, &[], &[]);
    std::fs::copy(sidecar_path(&p), sidecar_path(&bare)).unwrap();
    assert_eq!(
        load_bounds(&bare, &BoundsExpect::default()).unwrap().bits,
        3
    );
}

#[test]
fn bounds_for_another_model_or_bit_width_are_rejected() {
    let d = tmp("mismatch");
    let p = d.join("b.safetensors");
    save_bounds(&p, &bounds(), &meta(4, SHA_A)).unwrap();
    let m = err_of(load_bounds(
        &p,
        &BoundsExpect {
            bits: Some(4),
            weights_sha256: Some(SHA_B),
            scale: None,
        },
    ));
    assert!(
        m.contains("another model") && m.contains(SHA_A) && m.contains(SHA_B),
        "{m}"
    );
    let m = err_of(load_bounds(
        &p,
        &BoundsExpect {
            bits: Some(3),
            weights_sha256: Some(SHA_A),
            scale: None,
        },
    ));
    assert!(
        m.contains("calibrated for W4A4, but W3A3 was requested"),
        "{m}"
    );
    let m = err_of(load_bounds(
        &p,
        &BoundsExpect {
            bits: None,
            weights_sha256: None,
            scale: Some(2),
        },
    ));
    assert!(m.contains("x4 model, but the model is x2"), "{m}");
}

/// A safetensors file with the bounds minus `drop` plus `extra` tensors, no metadata.
fn write_raw(path: &Path, b: &[(f32, f32)], drop: &[&str], extra: &[&str]) {
    let mut items: Vec<(String, [u8; 4])> = Vec::new();
    for (s, &(l, u)) in SiteId::all().zip(b) {
        let (kl, ku) = bound_keys(s);
        items.push((kl, l.to_le_bytes()));
        items.push((ku, u.to_le_bytes()));
    }
    for e in extra {
        items.push((e.to_string(), 1f32.to_le_bytes()));
    }
    items.retain(|(k, _)| !drop.contains(&k.as_str()));
    let views: Vec<(String, safetensors::tensor::TensorView)> = items
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], v).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn missing_or_unknown_tensors_are_named() {
    let d = tmp("keys");
    let b = bounds();
    let missing = "layers.2.residual_group.blocks.3.attn.mymodule_a.upper_bound";
    let p = d.join("missing.safetensors");
    write_raw(&p, &b, &[missing], &[]);
    let with_bits = BoundsExpect {
        bits: Some(4),
        ..Default::default()
    };
    let m = err_of(load_bounds(&p, &with_bits));
    assert!(m.contains(missing) && m.contains("missing"), "{m}");

    let p = d.join("extra.safetensors");
    write_raw(
        &p,
        &b,
        &[],
        &["layers.0.residual_group.blocks.0.attn.qkv.weight"],
    );
    let m = err_of(load_bounds(&p, &with_bits));
    assert!(
        m.contains("unexpected tensor")
            && m.contains("layers.0.residual_group.blocks.0.attn.qkv.weight"),
        "{m}"
    );

    // No metadata and no bit width.
    let p = d.join("plain.safetensors");
    write_raw(&p, &b, &[], &[]);
    let m = err_of(load_bounds(&p, &BoundsExpect::default()));
    assert!(m.contains("--bits"), "{m}");
    // n_bit tensors (released checkpoints) must agree with the bit width.
    let p = d.join("nbit.safetensors");
    write_raw(
        &p,
        &b,
        &[],
        &["layers.0.residual_group.blocks.0.attn.mymodule_q.n_bit"],
    );
    let m = err_of(load_bounds(&p, &with_bits));
    assert!(m.contains("n_bit"), "{m}");
    // Not a safetensors file at all.
    let p = d.join("junk.safetensors");
    std::fs::write(&p, b"junk").unwrap();
    let m = err_of(load_bounds(&p, &with_bits));
    assert!(m.contains("not a valid bounds file"), "{m}");
    // Missing file.
    let m = err_of(load_bounds(&d.join("nope.safetensors"), &with_bits));
    assert!(m.contains("nope.safetensors"), "{m}");
}

#[test]
fn calibration_folder_missing_or_empty() {
    let d = tmp("folders");
    let m = err_of(CalibPool::open(&d.join("absent"), 4, 48));
    assert!(m.contains("does not exist") && m.contains("absent"), "{m}");
    let empty = d.join("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("notes.txt"), "not an image").unwrap();
    let m = err_of(CalibPool::open(&empty, 4, 48));
    assert!(m.contains("contains no PNG/JPEG images"), "{m}");
    let m = err_of(CalibPool::open(&empty, 4, 20));
    assert!(m.contains("multiple of 8"), "{m}");
}

#[test]
fn calibration_image_smaller_than_patch() {
    let d = tmp("small");
    let dir = d.join("calib");
    std::fs::create_dir_all(dir.join("set")).unwrap();
    image::RgbImage::from_pixel(400, 300, image::Rgb([10, 20, 30]))
        .save(dir.join("set/big.png"))
        .unwrap();
    image::RgbImage::from_pixel(100, 120, image::Rgb([10, 20, 30]))
        .save(dir.join("set/tiny.png"))
        .unwrap();
    let m = err_of(CalibPool::open(&dir, 4, 48));
    assert!(
        m.contains("tiny.png") && m.contains("25x30") && m.contains("48x48"),
        "{m}"
    );
    assert!(CalibPool::open(&dir, 4, 24).is_ok());
}

/// The whole tool fails fast (no observation pass, no DQC) on bad input.
#[test]
fn calibrate_fails_before_long_work() {
    let Some(root) = data_root_for("calib_errors calibrate", TestData::Bundle) else {
        return;
    };
    let opts = RunOptions::default();
    let base = CalibConfig::preset(Preset::Quick, &root);
    let out = tmp("runs");
    let cases: Vec<(CalibConfig, &str)> = vec![
        (
            CalibConfig {
                bits: 5,
                ..base.clone()
            },
            "unsupported bit width 5",
        ),
        (
            CalibConfig {
                calib_dir: out.join("absent"),
                ..base.clone()
            },
            "does not exist",
        ),
        (
            CalibConfig {
                calib_dir: {
                    let e = out.join("empty");
                    std::fs::create_dir_all(&e).unwrap();
                    e
                },
                ..base.clone()
            },
            "contains no PNG/JPEG images",
        ),
        (
            {
                let mut c = base.clone();
                c.dqc.patch = 50;
                c
            },
            "multiple of 8",
        ),
        (
            {
                let mut c = base.clone();
                c.dqc.patch = 512; // larger than several x4 LR images
                c
            },
            "too small",
        ),
        (
            CalibConfig {
                eval_sets: vec!["NoSuchSet".into()],
                ..base.clone()
            },
            "NoSuchSet",
        ),
        (
            CalibConfig {
                model: out.join("absent.pth"),
                ..base.clone()
            },
            "absent.pth",
        ),
    ];
    for (i, (cfg, want)) in cases.into_iter().enumerate() {
        let t0 = Instant::now();
        let m = err_chain(calibrate(&cfg, &out.join(format!("case{i}")), false, &opts));
        let dt = t0.elapsed().as_secs_f64();
        println!("case {i}: {dt:.2} s: {m}");
        assert!(m.contains(want), "case {i}: {m:?} lacks {want:?}");
        assert!(dt < 30.0, "case {i} took {dt:.1} s");
    }
}

/// `eval --bounds` checks the bounds against the model and the bit width first.
#[test]
fn eval_rejects_foreign_bounds() {
    let Some(root) = data_root_for("calib_errors eval", TestData::Bundle) else {
        return;
    };
    let model = tdquant_host::data_root::default_model(&root);
    let d = tmp("eval");
    let p = d.join("b.safetensors");
    save_bounds(&p, &bounds(), &meta(4, SHA_A)).unwrap();
    let sets = vec!["Set5".to_string()];
    let eval = |bounds: &std::path::Path, bits: Option<u8>| {
        err_chain(tdquant_host::app::eval_quant(
            &model,
            tdquant_host::compute_device::ComputeDevice::Cpu,
            bounds,
            bits,
            &root,
            &sets,
            &d,
        ))
    };
    let m = eval(&p, None);
    assert!(m.contains("another model"), "{m}");
    let m = eval(&p, Some(5));
    assert!(m.contains("unsupported bit width 5"), "{m}");
    let sha = tdquant_host::weights::file_sha256(&model).unwrap();
    save_bounds(&p, &bounds(), &meta(4, &sha)).unwrap();
    let m = eval(&p, Some(2));
    assert!(
        m.contains("calibrated for W4A4, but W2A2 was requested"),
        "{m}"
    );
    let golden = root.join("golden/dobi_released_w2.safetensors");
    let m = eval(&golden, None);
    assert!(m.contains("--bits"), "{m}");
}
