//! DQC checkpoints and bounds files under hostile edits: a flipped payload byte, an iteration
//! outside the run, another configuration, special files and truncations are all refused with a
//! message naming expected and found; a valid checkpoint round-trips exactly.
//!
//! `cargo test --release -p tdquant-host --test calib_checkpoint -- --nocapture`

mod common;

use std::path::{Path, PathBuf};

use tdquant_host::calib::bounds_file::{load_bounds, BoundsError, BoundsExpect};
use tdquant_host::calib::calibrate::{calibrate, CalibConfig, Method, Preset, RunOptions};
use tdquant_host::calib::checkpoint::CheckpointError;
use tdquant_host::calib::data::SplitMix64;
use tdquant_host::calib::dqc::{DqcConfig, DqcState, LossRecord};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::model::hook::NUM_SITES;

const FP: &str = "fingerprint-of-this-run";

fn cfg(iters: usize) -> DqcConfig {
    DqcConfig {
        iters,
        ..DqcConfig::paper()
    }
}

/// A state `iteration` steps in, with every field filled from an RNG.
fn state(iteration: usize, c: &DqcConfig) -> DqcState {
    let mut r = SplitMix64::new(11);
    let mut f = || (r.next_u64() >> 40) as f32 / (1u64 << 20) as f32 - 8.0;
    let bounds = (0..NUM_SITES).map(|_| (f() - 9.0, f() + 9.0)).collect();
    let mut s = DqcState::new(bounds, c, SplitMix64::new(1234));
    for (m, v) in s.adam.m.iter_mut().zip(s.adam.v.iter_mut()) {
        *m = f();
        *v = f().abs();
    }
    s.adam.t = iteration as u64;
    s.rng = SplitMix64::new(0x0123_4567_89ab_cdef);
    s.iteration = iteration;
    s.log = (1..=iteration)
        .map(|i| LossRecord {
            iter: i,
            lr: 1e-3,
            loss: 1.0 / i as f64,
            output: 0.5 / i as f64,
            feature: 0.5 / i as f64,
        })
        .collect();
    s
}

fn load_err(p: &Path, c: &DqcConfig) -> CheckpointError {
    let e = DqcState::load(p, c, FP).unwrap_err();
    println!("{e}");
    e
}

/// The state at iteration `it` of run `c`, saved in `d` under fingerprint
/// `fp`; its path.
fn saved(d: &Path, it: usize, c: &DqcConfig, fp: &str) -> PathBuf {
    let p = d.join("c.safetensors");
    state(it, c).save(&p, fp).unwrap();
    p
}

#[test]
fn valid_checkpoint_round_trips_exactly() {
    let d = common::scratch("roundtrip");
    let c = cfg(120);
    for it in [0, 60, 120] {
        let s = state(it, &c);
        let p = d.join(format!("c{it}.safetensors"));
        s.save(&p, FP).unwrap();
        assert_eq!(DqcState::load(&p, &c, FP).unwrap(), s);
    }
}

#[test]
fn flipped_payload_byte_is_refused() {
    let (d, c) = (common::scratch("flip"), cfg(120));
    let p = saved(&d, 60, &c, FP);
    let orig = std::fs::read(&p).unwrap();
    let header_len = u64::from_le_bytes(orig[..8].try_into().unwrap()) as usize;
    let data = 8 + header_len;
    // One byte in each tensor's data (bounds, adam_m, adam_v: 3 072 bytes each, in name order
    // adam_m, adam_v, bounds) and one digit of the RNG state inside the JSON metadata.
    let rng_digit = orig
        .windows(9)
        .position(|w| w == b"rng_state")
        .expect("rng_state in the header")
        + 12;
    assert!(
        orig[rng_digit].is_ascii_digit(),
        "{}",
        orig[rng_digit] as char
    );
    let mut refused = 0;
    for at in [
        data + 5,
        data + 3072 + 1000,
        data + 6144 + 7,
        orig.len() - 1,
        rng_digit,
    ] {
        let mut b = orig.clone();
        b[at] = if b[at] == b'7' { b'3' } else { b[at] ^ 0x04 };
        let q = d.join("flipped.safetensors");
        std::fs::write(&q, &b).unwrap();
        match load_err(&q, &c) {
            CheckpointError::Checksum {
                expected, found, ..
            } => {
                assert_ne!(expected, found);
                assert_eq!(found.len(), 64);
                refused += 1;
            }
            other => panic!("byte {at}: expected a checksum refusal, got {other:?}"),
        }
    }
    assert_eq!(refused, 5);
    let msg = {
        let mut b = orig.clone();
        b[data + 5] ^= 1;
        std::fs::write(d.join("m.safetensors"), &b).unwrap();
        load_err(&d.join("m.safetensors"), &c).to_string()
    };
    assert!(
        msg.contains("checkpoint is corrupt: payload SHA-256"),
        "{msg}"
    );
}

#[test]
fn iteration_outside_the_run_is_refused() {
    let (d, c) = (common::scratch("iter"), cfg(120));
    let p = saved(&d, 100_000, &c, FP);
    let e = load_err(&p, &c);
    assert!(
        matches!(
            e,
            CheckpointError::Iteration {
                found: 100_000,
                iters: 120,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e
        .to_string()
        .contains("checkpoint at iteration 100000, but this run has 120 iterations"));
    // At the end of the run is fine; one past is not.
    state(120, &c).save(&p, FP).unwrap();
    assert!(DqcState::load(&p, &c, FP).is_ok());
    state(121, &c).save(&p, FP).unwrap();
    assert!(matches!(
        load_err(&p, &c),
        CheckpointError::Iteration { found: 121, .. }
    ));
    // A log that disagrees with the iteration (checksum intact) is refused too.
    let mut s = state(30, &c);
    s.log.truncate(29);
    s.save(&p, FP).unwrap();
    let e = load_err(&p, &c);
    assert!(e
        .to_string()
        .contains("loss log has 29 records, expected one per iteration (30)"));
}

#[test]
fn other_configuration_and_bad_values_are_refused() {
    let (d, c) = (common::scratch("config"), cfg(120));
    let p = saved(&d, 10, &c, "another-fingerprint");
    let e = load_err(&p, &c);
    match &e {
        CheckpointError::Fingerprint {
            expected, found, ..
        } => {
            assert_eq!(expected, FP);
            assert_eq!(found, "another-fingerprint");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(FP) && e.to_string().contains("another-fingerprint"));
    let mut s = state(10, &c);
    s.bounds[17].1 = f32::NAN;
    s.save(&p, FP).unwrap();
    assert!(load_err(&p, &c).to_string().contains("bound 35 is NaN"));
    let mut s = state(10, &c);
    s.bounds.pop();
    s.adam.m.truncate(766);
    s.adam.v.truncate(766);
    s.save(&p, FP).unwrap();
    let e = load_err(&p, &c);
    assert!(e.to_string().contains("expected F32 [384, 2]"), "{e}");
}

#[test]
fn special_files_and_truncations_are_refused() {
    let c = cfg(120);
    let e = load_err(Path::new("/dev/zero"), &c);
    assert!(
        e.to_string()
            .contains("a character device, not a regular file"),
        "{e}"
    );
    let d = common::scratch("trunc");
    let p = d.join("c.safetensors");
    state(3, &c).save(&p, FP).unwrap();
    let orig = std::fs::read(&p).unwrap();
    let q = d.join("cut.safetensors");
    for len in (0..orig.len()).step_by(7) {
        std::fs::write(&q, &orig[..len]).unwrap();
        assert!(DqcState::load(&q, &c, FP).is_err(), "prefix {len} loaded");
    }
    // Bounds files: the same discipline.
    let expect = BoundsExpect {
        bits: Some(4),
        weights_sha256: None,
        scale: None,
    };
    let e = load_bounds(Path::new("/dev/zero"), &expect).unwrap_err();
    println!("{e}");
    assert!(matches!(e, BoundsError::Io { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("a character device, not a regular file"),
        "{e}"
    );
    let mut b = (1u64 << 60).to_le_bytes().to_vec();
    b.extend(b"{}");
    std::fs::write(d.join("b.safetensors"), &b).unwrap();
    let e = load_bounds(&d.join("b.safetensors"), &expect).unwrap_err();
    println!("{e}");
    assert!(matches!(e, BoundsError::Format { .. }), "{e:?}");
}

/// End to end: a tiny calibration stopped after 3 of 6 iterations; its checkpoint with one
/// flipped byte makes `--resume` fail instead of publishing wrong bounds.
#[test]
fn resume_refuses_a_flipped_checkpoint() {
    let Some(root) = data_root_for_test("resume_refuses_a_flipped_checkpoint") else {
        return;
    };
    let mut c = CalibConfig::preset(Preset::Quick, &root);
    c.method = Method::TwoDQuant;
    c.bits = 4;
    c.obs_batch = 1;
    c.obs_patch = 16;
    c.seed = 5;
    c.dqc.iters = 6;
    c.dqc.batch = 1;
    c.dqc.patch = 16;
    c.dqc.checkpoint_every = 2;
    c.eval_sets.clear();
    let out = common::scratch("e2e");
    let opts = RunOptions {
        stop_after: Some(3),
        progress: false,
        skip_eval: true,
        ..Default::default()
    };
    calibrate(&c, &out, false, &opts).unwrap();
    let ck = out.join("checkpoint.safetensors");
    let mut b = std::fs::read(&ck).unwrap();
    let n = b.len();
    b[n - 100] ^= 0x01;
    std::fs::write(&ck, &b).unwrap();
    let opts = RunOptions {
        stop_after: None,
        ..opts
    };
    let e = calibrate(&c, &out, true, &opts).unwrap_err();
    let msg = format!("{e:#}");
    println!("{msg}");
    assert!(msg.contains("checkpoint is corrupt"), "{msg}");
    assert!(!out.join("bounds.safetensors").exists());
}
