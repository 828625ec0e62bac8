//! Helpers shared by the host integration tests.
// Each test binary uses a subset.
#![allow(dead_code)]

#[path = "../../../fuzz/src/rng.rs"]
mod rng;
#[allow(unused_imports)]
pub use rng::Rng;

/// Deterministic pseudo-random bytes (xorshift64), e.g. an `h·w·3` RGB image.
pub fn random_image(n: usize, seed: u64) -> Vec<u8> {
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

/// `max |t|` over every element.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The metadata of a W`bits` DOBI bounds file of the stand-in model, as
/// `calibrate` writes it, for weights `weights_sha256` in `model_file`.
pub fn bounds_meta(
    bits: u8,
    weights_sha256: &str,
    model_file: &str,
) -> tdquant_host::calib::bounds_file::BoundsMeta {
    use tdquant_host::calib::bounds_file::{BoundsMeta, SiteMeta, BOUNDS_FORMAT};
    BoundsMeta {
        format: BOUNDS_FORMAT.into(),
        method: "dobi".into(),
        bits,
        scale: 4,
        seed: 0,
        dobi_mode: "paper".into(),
        preset: "quick".into(),
        weights_sha256: weights_sha256.into(),
        model_file: model_file.into(),
        config: serde_json::json!({}),
        sites: tdquant_host::model::SiteId::all()
            .map(|s| SiteMeta {
                name: s.checkpoint_prefix(),
                kind: "x".into(),
                init: "dobi".into(),
            })
            .collect(),
    }
}

/// The stand-in model exported at W4A4 with the released code's DOBI
/// bounds, or `None` (the skip recorded for `what`) without the test data.
pub fn golden_w4a4(what: &str) -> Option<tdquant_host::intmodel::IntSr> {
    use tdquant_host::data_root::{data_root_for, TestData};
    let root = data_root_for(what, TestData::Bundle)?;
    let exported = tdquant_host::export::GoldenExport::new(&root)
        .unwrap()
        .export(4)
        .unwrap();
    Some(tdquant_host::intmodel::IntSr::from_bytes(exported.bytes).unwrap())
}

/// A fresh, empty scratch folder `name` of this test binary.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{name}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The data root and a fresh scratch folder for the test `what`, or
/// `None` (the skip recorded) without the data.
pub fn root_and_scratch(
    what: &str,
    name: &str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let root =
        tdquant_host::data_root::data_root_for(what, tdquant_host::data_root::TestData::Bundle)?;
    Some((root, scratch(name)))
}

/// Runs `tdquant --data ROOT ARGS…` (with `RAYON_NUM_THREADS=threads` when
/// given) and fails the test, naming `what` and showing stderr, unless it
/// succeeds.
pub fn tdquant_ok<S: AsRef<std::ffi::OsStr>>(
    root: &std::path::Path,
    threads: Option<&str>,
    args: &[S],
    what: &str,
) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tdquant"));
    if let Some(t) = threads {
        cmd.env("RAYON_NUM_THREADS", t);
    }
    let out = cmd.arg("--data").arg(root).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
