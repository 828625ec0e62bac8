//! Replays the committed regression corpus (`fuzz/regressions/<target>/`): every input that
//! ever failed a fuzzer or was crafted against a loader. Each runs through its fuzz target (no
//! panic, under 10 s) and through the loader itself, whose verdict is fixed by the file name:
//! `valid-*` must load, `crash-*` (fuzzer findings) need only not panic, anything else must be
//! refused with an error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tdquant_fuzz::{Target, FINGERPRINT, ITERS};
use tdquant_host::calib::bounds_file::{load_bounds, BoundsExpect};
use tdquant_host::calib::dqc::{DqcConfig, DqcState};

/// `Ok(())` if the loader of `target` accepts the file, else its error message.
fn verdict(target: Target, path: &Path, data: &[u8]) -> Result<(), String> {
    match target {
        Target::Pth => tdquant_host::weights::read_raw(data, "regression")
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Target::Tdq => tdquant_core::int::IntModel::parse(data)
            .map(|_| ())
            .map_err(|e| format!("{e:?}")),
        Target::Bounds => {
            let expect = BoundsExpect {
                bits: Some(4),
                weights_sha256: None,
                scale: None,
            };
            load_bounds(path, &expect)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Target::Checkpoint => {
            let cfg = DqcConfig {
                iters: ITERS,
                ..DqcConfig::paper()
            };
            DqcState::load(path, &cfg, FINGERPRINT)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Target::Image => tdquant_host::image_io::read_rgb8(path)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

#[test]
fn regression_corpus_replays_with_fixed_verdicts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut total = 0;
    for target in Target::ALL {
        let dir = root.join(target.name());
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(&f).unwrap();
            let t0 = Instant::now();
            target.run(&data);
            let v = verdict(target, &f, &data);
            let dt = t0.elapsed();
            println!("{}/{name}: {:?} in {dt:.1?}", target.name(), v);
            assert!(dt < Duration::from_secs(10), "{name}: {dt:?}");
            if name.starts_with("valid-") {
                assert!(v.is_ok(), "{}/{name} must load: {v:?}", target.name());
            } else if !name.starts_with("crash-") {
                assert!(v.is_err(), "{}/{name} must be refused", target.name());
            }
            total += 1;
        }
    }
    assert!(total >= 30, "{total} regression inputs");
}
