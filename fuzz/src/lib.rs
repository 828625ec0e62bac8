//! Fuzz targets for every input parser of tdquant, shared by the libFuzzer binaries
//! (`fuzz_targets/`, nightly) and the structure-aware mutation fuzzer (`src/bin/mutate.rs`,
//! stable).
//!
//! A target feeds one byte string to a loader and discards the result: the property is that no
//! input panics, aborts, hangs or allocates without bound; every loader must return `Ok` or a
//! clear `Err`. [`Target::run`] also feeds format-repaired variants (CRC and checksum fixed,
//! the bytes wrapped as the pickle of a `.pth`) so that mutations reach past the integrity
//! checks into the structure behind them.

pub mod formats;
pub mod mutate;
pub mod pth;
pub mod rng;
pub mod seeds;

use std::path::PathBuf;

use tdquant_host::calib::bounds_file::{load_bounds, BoundsExpect};
use tdquant_host::calib::dqc::{DqcConfig, DqcState};

/// The configuration fingerprint the checkpoint seeds are written with.
pub const FINGERPRINT: &str = "fuzz-fingerprint";
/// The iteration count of the run the checkpoint target resumes.
pub const ITERS: usize = 120;

/// One input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `.pth` / `.safetensors` weights: `weights::load_bytes`.
    Pth,
    /// `.tdq` integer model: `IntModel::parse` and `Container::parse` with every accessor.
    Tdq,
    /// Bounds files: `bounds_file::load_bounds`.
    Bounds,
    /// DQC checkpoints: `DqcState::load`.
    Checkpoint,
    /// PNG/JPEG input: `image_io::read_rgb8`.
    Image,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 5] = [
        Target::Pth,
        Target::Tdq,
        Target::Bounds,
        Target::Checkpoint,
        Target::Image,
    ];

    /// The target's name (its libFuzzer binary and corpus folder).
    pub fn name(self) -> &'static str {
        match self {
            Target::Pth => "pth",
            Target::Tdq => "tdq",
            Target::Bounds => "bounds",
            Target::Checkpoint => "checkpoint",
            Target::Image => "image",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Feeds `data` (and its repaired variants) to the target's loaders.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Pth => {
                let _ = tdquant_host::weights::load_bytes(data, "fuzz.pth");
                let wrapped = pth::archive(data, &seeds::pth_storages());
                let _ = tdquant_host::weights::load_bytes(&wrapped, "fuzz-pickle.pth");
            }
            Target::Tdq => {
                tdq(data);
                if let Some(fixed) = formats::tdq_fix_crc(data) {
                    tdq(&fixed);
                }
            }
            Target::Bounds => {
                let p = scratch_file(self, data);
                for bits in [Some(4), None] {
                    let expect = BoundsExpect {
                        bits,
                        weights_sha256: None,
                        scale: Some(4),
                    };
                    let _ = load_bounds(&p, &expect);
                }
            }
            Target::Checkpoint => {
                let cfg = DqcConfig {
                    iters: ITERS,
                    ..DqcConfig::paper()
                };
                let p = scratch_file(self, data);
                let _ = DqcState::load(&p, &cfg, FINGERPRINT);
                if let Some(fixed) = formats::checkpoint_fix_sha(data) {
                    let p = scratch_file(self, &fixed);
                    let _ = DqcState::load(&p, &cfg, FINGERPRINT);
                }
            }
            Target::Image => {
                let p = scratch_file(self, data);
                let _ = tdquant_host::image_io::read_rgb8(&p);
                if let Some(fixed) = formats::png_fix_crcs(data) {
                    let p = scratch_file(self, &fixed);
                    let _ = tdquant_host::image_io::read_rgb8(&p);
                }
            }
        }
    }
}

/// `.tdq`: the model parser, then the container with every section accessor.
fn tdq(data: &[u8]) {
    let _ = tdquant_core::int::IntModel::parse(data);
    if let Ok(c) = tdquant_core::container::Container::parse(data) {
        for s in c.sections() {
            let _ = s.shape();
            let _ = s.element_count();
            if let Ok(p) = s.as_packed() {
                let _ = p.code(0, 0);
                let _ = p.code(u32::MAX, u32::MAX);
                if let Some(r) = p.row_codes(0) {
                    let _ = r.count();
                }
                let _ = p.row_bytes(u32::MAX);
            }
            if let Ok(e) = s.u8s() {
                let _ = e.count();
            }
            if let Ok(e) = s.i8s() {
                let _ = e.count();
            }
            if let Ok(e) = s.i16s() {
                let _ = e.count();
            }
            if let Ok(e) = s.i32s() {
                let _ = e.count();
            }
            if let Ok(e) = s.f32s() {
                let _ = e.count();
            }
            let _ = s.read_i32(0);
            let _ = s.read_i32(usize::MAX);
        }
        let _ = c.get("meta");
        let _ = c.section(u32::MAX);
    }
}

/// The path-based loaders read a file: `data` written to this process's scratch file for
/// `target` (in the temp dir, named with the pid, so parallel fuzzers do not collide).
fn scratch_file(target: Target, data: &[u8]) -> PathBuf {
    let ext = match target {
        Target::Image => "img",
        _ => "safetensors",
    };
    let p = std::env::temp_dir().join(format!(
        "tdq-fuzz-{}-{}.{ext}",
        std::process::id(),
        target.name()
    ));
    std::fs::write(&p, data).expect("writing the fuzz scratch file");
    p
}
