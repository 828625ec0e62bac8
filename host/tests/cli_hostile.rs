//! The CLI against careless or hostile arguments: each case builds its own
//! input and expects exit status 1, one message naming the problem, no
//! panic text, and no output file (or a bounded success).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use tdquant_host::calib::bounds_file::save_bounds;

/// Runs `tdquant args…`, expects failure; returns stderr.
fn fails(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tdquant"))
        .arg("--data")
        .arg(root)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "tdquant {args:?}: {err}");
    assert!(!err.contains("panicked"), "panic text for {args:?}: {err}");
    assert!(
        !err.contains("stack backtrace"),
        "backtrace for {args:?}: {err}"
    );
    err
}

/// `tdquant export --bounds BOUNDS -o OUT`, which must fail; its stderr.
fn export_fails(root: &Path, bounds: &Path, out: &Path) -> String {
    let (bounds, out) = (bounds.to_str().unwrap(), out.to_str().unwrap());
    fails(root, &["export", "--bounds", bounds, "-o", out])
}

fn png(dir: &Path, side: u32) -> PathBuf {
    let p = dir.join("in.png");
    image::RgbImage::from_pixel(side, side, image::Rgb([90, 120, 30]))
        .save(&p)
        .unwrap();
    p
}

#[test]
fn export_refuses_bounds_of_other_weights_and_writes_nothing() {
    let Some((root, d)) = common::root_and_scratch("cli_hostile export", "export") else {
        return;
    };
    let bounds: Vec<(f32, f32)> = (0..384).map(|_| (-1.0, 1.0)).collect();
    let meta = common::bounds_meta(4, &"ab".repeat(32), "other.pth");
    let b = d.join("other.safetensors");
    save_bounds(&b, &bounds, &meta).unwrap();
    let export_to = |out: &Path| export_fails(&root, &b, out);
    let out = d.join("m.tdq");
    let err = export_to(&out);
    assert!(
        err.contains("abababab"),
        "message names the bounds' weights: {err}"
    );
    assert!(!out.exists(), "a .tdq was written for mismatched bounds");
    // Wrong extension and a missing folder are refused before any work.
    for (output, want) in [
        ("m.png", "unsupported extension .png"),
        ("no/such/m.tdq", "does not exist"),
    ] {
        let err = export_to(&d.join(output));
        assert!(err.contains(want), "{err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn upscale_refuses_bad_output_paths_before_loading_anything() {
    let d = common::scratch("upscale");
    let input = png(&d, 8);
    // A model that does not exist: the output check must come first.
    let model = d.join("absent.pth");
    let run = |out: &Path| {
        fails(
            &d,
            &[
                "upscale",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--model",
                model.to_str().unwrap(),
            ],
        )
    };
    assert!(run(&d.join("o.jpg")).contains("unsupported extension .jpg"));
    assert!(run(&input).contains("is the input"));
    assert!(run(&d.join("missing/o.png")).contains("does not exist"));
    assert!(run(&d).contains("is a folder"));
    let bytes = std::fs::read(&input).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "the input was overwritten");
    let _ = std::fs::remove_dir_all(&d);
}

/// Bounds that overflow an integer constant are refused with the block, the
/// constant and the bounds it came from; nothing is written.
#[test]
fn export_with_extreme_bounds_names_block_and_bounds() {
    use tdquant_host::model::hook::{Site, SiteId, NUM_SITES};
    let Some((root, d)) = common::root_and_scratch("cli_hostile extreme bounds", "extreme") else {
        return;
    };
    let model =
        tdquant_host::model::SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let sha = model.weights_sha256().unwrap().to_string();
    let mut bounds: Vec<(f32, f32)> = (0..NUM_SITES).map(|_| (-1.0, 1.0)).collect();
    let attn_q = SiteId {
        layer: 0,
        block: 2,
        site: Site::AttnQ,
    };
    bounds[attn_q.index()] = (-1.0e30, 1.0e30);
    let b = d.join("extreme.safetensors");
    save_bounds(&b, &bounds, &common::bounds_meta(4, &sha, "m.pth")).unwrap();
    let out = d.join("m.tdq");
    let err = export_fails(&root, &b, &out);
    assert!(
        err.contains("block layers.0.residual_group.blocks.2: ")
            && err.contains("AttnQ [-1.000000e30, 1.000000e30]")
            && err.contains("does not fit"),
        "{err}"
    );
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&d);
}

/// A file that is not what it should be is named once, not once per layer
/// of context ("loading model m.pth: m.pth: …").
#[test]
fn bad_input_files_are_named_once() {
    let Some((root, d)) = common::root_and_scratch("cli_hostile named once", "once") else {
        return;
    };
    let junk = |name: &str| {
        let p = d.join(name);
        std::fs::write(&p, b"not a model, not bounds").unwrap();
        p
    };
    let (pth, bounds) = (junk("junk.pth"), junk("junk.safetensors"));
    let out = d.join("o.tdq");
    let golden = root.join("golden/dobi_released_w4.safetensors");
    let (pth_s, bounds_s) = (pth.to_str().unwrap(), bounds.to_str().unwrap());
    let (golden_s, out_s) = (golden.to_str().unwrap(), out.to_str().unwrap());
    let export_pth = [
        "export", "--model", pth_s, "--bounds", golden_s, "--bits", "4", "-o", out_s,
    ];
    let export_bounds = ["export", "--bounds", bounds_s, "-o", out_s];
    for (args, path) in [
        (&["eval", "--model", pth_s][..], &pth),
        (&export_pth[..], &pth),
        (&export_bounds[..], &bounds),
    ] {
        let err = fails(&root, args);
        let shown = path.to_str().unwrap();
        assert_eq!(err.matches(shown).count(), 1, "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
