//! `tdquant upscale` end to end: any colour type and size ≥ 1×1 in, an RGB8
//! PNG of exactly scale × the size out, written atomically; bad input gives a
//! clear error and no output file.

mod common;

use std::path::Path;
use std::process::Command;

use tdquant_host::data_root::TestData;

fn tdquant() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tdquant"))
}

/// `tdquant --data ROOT upscale INPUT -o OUTPUT`, which must succeed (`what`
/// names the case in the failure).
fn upscale_ok(root: &Path, input: &Path, output: &Path, what: &str) {
    let args = [input.as_os_str(), "-o".as_ref(), output.as_os_str()];
    common::tdquant_ok(
        root,
        None,
        &[&["upscale".as_ref()][..], &args].concat(),
        what,
    );
}

#[test]
fn upscales_odd_sizes_and_colour_types() {
    let Some((root, dir)) = common::root_and_scratch("upscales_odd_sizes_and_colour_types", "ok")
    else {
        return;
    };
    let cases: Vec<(&str, image::DynamicImage)> = vec![
        (
            "one.png",
            image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
                1,
                1,
                image::Rgb([200, 10, 90]),
            )),
        ),
        (
            "gray16.png",
            image::DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(13, 5, |x, y| {
                image::Luma([(x * 5000 + y * 300) as u16])
            })),
        ),
        (
            "rgba.png",
            image::DynamicImage::ImageRgba8(image::ImageBuffer::from_fn(9, 17, |x, y| {
                image::Rgba([(x * 20) as u8, (y * 10) as u8, 77, 128])
            })),
        ),
    ];
    for (name, img) in cases {
        let input = dir.join(name);
        img.save(&input).unwrap();
        let output = dir.join(format!("sr-{name}"));
        upscale_ok(&root, &input, &output, name);
        let sr = image::open(&output).unwrap();
        assert_eq!(
            (sr.width(), sr.height()),
            (img.width() * 4, img.height() * 4),
            "{name}"
        );
        assert!(
            matches!(sr, image::DynamicImage::ImageRgb8(_)),
            "{name}: RGB8 output"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn upscale_output_matches_eval_path_on_a_benchmark_image() {
    // The CLI's PNG equals BasicSR's tensor2img of the model output that the
    // evaluation scores, so `upscale` and `eval` can never disagree.
    let Some((root, dir)) = common::root_and_scratch("upscale_output_matches_eval_path", "bfly")
    else {
        return;
    };
    let input = root.join("benchmark/Set5/LR_bicubic/X4/butterflyx4.png");
    let output = dir.join("butterfly.png");
    upscale_ok(&root, &input, &output, "butterfly");
    let model =
        tdquant_host::model::SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let lr =
        tdquant_host::image_io::rgb8_to_f32(&tdquant_host::image_io::read_rgb8(&input).unwrap());
    let y = model
        .upscale_image(&lr, &tdquant_host::model::FpHook)
        .unwrap();
    let want = tdquant_host::image_io::tensor2img(&y);
    let got = image::open(&output).unwrap().to_rgb8();
    assert!(got == want, "CLI PNG differs from the evaluated output");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let dir = common::scratch("bad");
    let junk = dir.join("junk.png");
    std::fs::write(&junk, b"definitely not a png").unwrap();
    let output = dir.join("out.png");
    let st = tdquant()
        .arg("upscale")
        .arg(&junk)
        .arg("-o")
        .arg(&output)
        .output()
        .unwrap();
    assert!(!st.status.success());
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(err.contains("junk.png"), "error names the file: {err}");
    assert!(!output.exists(), "no output on failure");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left: {leftovers:?}");

    let st = tdquant()
        .arg("upscale")
        .arg(&junk)
        .arg("-o")
        .arg(&output)
        .arg("--model")
        .arg(dir.join("missing.pth"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parity_errors_are_clear() {
    // No model: clap names the missing option.
    let st = tdquant().arg("parity").output().unwrap();
    assert!(!st.status.success(), "parity without --int must fail");
    assert!(String::from_utf8_lossy(&st.stderr).contains("--int"));

    let dir = common::scratch("parity");
    let missing = dir.join("missing.tdq");
    let st = tdquant()
        .arg("parity")
        .arg("--int")
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(
        String::from_utf8_lossy(&st.stderr).contains("missing.tdq"),
        "the error names the file"
    );

    let Some(root) = tdquant_host::data_root::data_root_for("cli parity", TestData::Bundle) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let model = dir.join("w2.tdq");
    let bytes = tdquant_host::export::GoldenExport::new(&root)
        .unwrap()
        .export(2)
        .unwrap()
        .bytes;
    std::fs::write(&model, bytes).unwrap();
    let run = |extra: &[&str]| {
        let st = tdquant()
            .arg("--data")
            .arg(&root)
            .arg("parity")
            .arg("--int")
            .arg(&model)
            .args(extra)
            .output()
            .unwrap();
        (
            st.status.success(),
            String::from_utf8_lossy(&st.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["--b", "tpu"]);
    assert!(!ok && err.contains("--b"), "{err}");
    let (ok, err) = run(&["--sets", "NoSuchSet"]);
    assert!(!ok && err.contains("NoSuchSet"), "{err}");
    // This build has no CUDA: a CUDA backend is named and refused.
    let (ok, err) = run(&["--a", "oracle", "--b", "cuda-fused"]);
    assert!(
        !ok && err.contains("cuda-fused") && err.contains("cannot run"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
