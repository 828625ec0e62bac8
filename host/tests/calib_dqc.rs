//! DQC: loss normalisation (per-sample feature normalisation, the released
//! broadcast bug fixed), bounds actually train, and checkpoint / resume gives
//! byte-identical bounds to an uninterrupted run with the same seed (full
//! model, batch 1, 16×16 patches, 6 iterations, interrupted after 3).
//!
//! `cargo test --release -p tdquant-host --test calib_dqc -- --nocapture`

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use tdquant_host::calib::calibrate::{calibrate, CalibConfig, Method, Preset, RunOptions};
use tdquant_host::calib::data::{CalibPool, SplitMix64};
use tdquant_host::calib::dqc::{dqc_loss, dqc_step, DqcConfig, DqcState, LossNorm};
use tdquant_host::calib::{DobiMode, InitPlan, QuantHook};
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::model::SwinIR;

fn rand_tensor(seed: u64, shape: &[usize]) -> Tensor {
    let mut r = SplitMix64::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (r.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn feature_loss_is_per_sample_normalised() {
    let out_q = rand_tensor(1, &[2, 3, 8, 8]);
    let out_fp = rand_tensor(2, &[2, 3, 8, 8]);
    let fq: Vec<Tensor> = (0..4).map(|i| rand_tensor(10 + i, &[2, 16, 6])).collect();
    let ff: Vec<Tensor> = (0..4).map(|i| rand_tensor(20 + i, &[2, 16, 6])).collect();
    for norm in [LossNorm::Paper, LossNorm::Released] {
        let cfg = DqcConfig {
            feature_weight: 1.0,
            loss_norm: norm,
            ..DqcConfig::paper()
        };
        let l = dqc_loss(&out_q, &out_fp, &fq, &ff, &cfg).unwrap();
        // Manual reference in f64.
        let mean_abs = {
            let a = out_q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = out_fp.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            a.iter()
                .zip(&b)
                .map(|(x, y)| f64::from((x - y).abs()))
                .sum::<f64>()
                / a.len() as f64
        };
        let want_o = match norm {
            LossNorm::Paper => mean_abs,
            LossNorm::Released => mean_abs / (3.0 * 64.0),
        };
        assert!(
            (l.output - want_o).abs() <= 1e-6 * want_o,
            "{norm:?} output {} vs {want_o}",
            l.output
        );
        let mut want_f = 0.0;
        for (a, b) in fq.iter().zip(&ff) {
            let a = a.to_vec3::<f32>().unwrap();
            let b = b.to_vec3::<f32>().unwrap();
            let mut per = Vec::new();
            let mut sq_total = 0.0;
            for s in 0..2 {
                let flat = |t: &Vec<Vec<Vec<f32>>>| -> Vec<f64> {
                    t[s].iter().flatten().map(|&v| f64::from(v)).collect()
                };
                let (x, y) = (flat(&a), flat(&b));
                let nx = x.iter().map(|v| v * v).sum::<f64>().sqrt();
                let ny = y.iter().map(|v| v * v).sum::<f64>().sqrt();
                let d2: f64 = x
                    .iter()
                    .zip(&y)
                    .map(|(p, q)| (p / nx - q / ny).powi(2))
                    .sum();
                per.push(d2.sqrt());
                sq_total += d2;
            }
            want_f += match norm {
                LossNorm::Paper => (per[0] + per[1]) / 2.0 / 96.0,
                LossNorm::Released => sq_total / 192.0 / 192.0,
            };
        }
        assert!(
            (l.feature - want_f).abs() <= 1e-5 * want_f,
            "{norm:?} feature {} vs {want_f}",
            l.feature
        );
        // Scaling one sample of the student features does not change the loss
        // (the released [B,B,…] broadcast would).
        let scaled: Vec<Tensor> = fq
            .iter()
            .map(|t| {
                let s0 = (t.narrow(0, 0, 1).unwrap() * 7.0).unwrap();
                Tensor::cat(&[s0, t.narrow(0, 1, 1).unwrap()], 0).unwrap()
            })
            .collect();
        let l2 = dqc_loss(&out_q, &out_fp, &scaled, &ff, &cfg).unwrap();
        assert!(
            (l2.feature - l.feature).abs() <= 1e-5 * l.feature,
            "{norm:?}: per-sample scaling changed the feature loss {} -> {}",
            l.feature,
            l2.feature
        );
        assert!((scalar(&l.total) - (l.output + l.feature)).abs() <= 1e-6 * scalar(&l.total));
    }
}

fn setup(what: &str) -> Option<(PathBuf, SwinIR)> {
    let root = data_root_for(what, TestData::Bundle)?;
    let model = SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    Some((root, model))
}

/// The stand-in model, a batch of `n` 16×16 calibration crops drawn with
/// `seed`, and the paper's DOBI bounds at `bits` observed on it.
struct Observed {
    model: SwinIR,
    x: Tensor,
    hook: QuantHook,
    init: Vec<(f32, f32)>,
    /// The generator after drawing the batch.
    rng: SplitMix64,
}

fn observed(what: &str, seed: u64, n: usize, bits: u8) -> Option<Observed> {
    let (root, model) = setup(what)?;
    let pool = CalibPool::open(&root.join("calib"), 4, 16).unwrap();
    let mut rng = SplitMix64::new(seed);
    let x = pool.sample_batch(&mut rng, n, 16, &Device::Cpu).unwrap();
    let hook = QuantHook::new(InitPlan::dobi(bits, DobiMode::Paper).unwrap()).unwrap();
    model.forward_with(&x, &hook).unwrap();
    let init = hook.bounds().unwrap();
    Some(Observed {
        model,
        x,
        hook,
        init,
        rng,
    })
}

#[test]
fn dqc_steps_move_bounds_and_reduce_loss() {
    let Some(o) = observed("calib_dqc steps", 3, 2, 2) else {
        return;
    };
    let cfg = DqcConfig {
        iters: 8,
        batch: 2,
        patch: 16,
        ..DqcConfig::paper()
    };
    let mut st = DqcState::new(o.init.clone(), &cfg, o.rng);
    let mut losses = Vec::new();
    for _ in 0..8 {
        // Same batch every step: the loss must go down.
        let r = dqc_step(&o.model, &o.hook, &mut st, &o.x, &cfg).unwrap();
        losses.push(r.loss);
    }
    println!("W2A2 DQC on one batch: losses {losses:?}");
    let moved = o
        .init
        .iter()
        .zip(&st.bounds)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(moved, 384, "every quantizer's bounds must move");
    assert!(losses[7] < losses[0], "loss did not decrease: {losses:?}");
}

fn tiny_config(root: &Path, seed: u64) -> CalibConfig {
    let mut c = CalibConfig::preset(Preset::Quick, root);
    c.method = Method::TwoDQuant;
    c.bits = 4;
    c.obs_batch = 1;
    c.obs_patch = 16;
    c.seed = seed;
    c.dqc.iters = 6;
    c.dqc.batch = 1;
    c.dqc.patch = 16;
    c.dqc.checkpoint_every = 2;
    c.eval_sets.clear();
    c
}

fn fresh_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn resume_gives_byte_identical_bounds() {
    let Some((root, _)) = setup("calib_dqc resume") else {
        return;
    };
    let opts = RunOptions {
        skip_eval: true,
        ..Default::default()
    };
    let t0 = Instant::now();
    let full = fresh_dir("dqc_full");
    let cfg = tiny_config(&root, 7);
    let a = calibrate(&cfg, &full, false, &opts).unwrap();
    println!("uninterrupted run: {:.1} s", t0.elapsed().as_secs_f64());

    let part = fresh_dir("dqc_part");
    let stopped = calibrate(
        &cfg,
        &part,
        false,
        &RunOptions {
            stop_after: Some(3),
            ..opts.clone()
        },
    )
    .unwrap();
    assert!(
        stopped.bounds_path.is_none(),
        "a stopped run writes no final bounds"
    );
    assert!(part.join("checkpoint.safetensors").is_file());
    let cfg_back = tdquant_host::calib::calibrate::read_run_config(&part).unwrap();
    assert_eq!(cfg_back, cfg);
    let b = calibrate(&cfg_back, &part, true, &opts).unwrap();

    let read = |p: &Path| std::fs::read(p).unwrap();
    let (pa, pb) = (a.bounds_path.unwrap(), b.bounds_path.unwrap());
    assert_eq!(
        read(&pa),
        read(&pb),
        "resumed bounds differ from the uninterrupted run"
    );
    assert_eq!(read(&full.join("loss.csv")), read(&part.join("loss.csv")));
    assert_eq!(
        read(&full.join("init_bounds.safetensors")),
        read(&part.join("init_bounds.safetensors"))
    );
    assert_ne!(
        read(&pa),
        read(&full.join("init_bounds.safetensors")),
        "DQC did not change the bounds"
    );
    println!("resume: bounds byte-identical ({} bytes)", read(&pa).len());

    // Another seed gives other bounds (the seed reaches the data).
    let other = fresh_dir("dqc_other_seed");
    let c = calibrate(&tiny_config(&root, 8), &other, false, &opts).unwrap();
    assert_ne!(read(&pa), read(&c.bounds_path.unwrap()));
    println!("three tiny runs in {:.1} s", t0.elapsed().as_secs_f64());
}

/// The CLI end to end: a run with 1 thread equals a run with 2 threads that is
/// stopped after 2 iterations and continued with `--resume` (byte-identical
/// bounds and loss log).
#[test]
fn cli_threads_and_resume_are_deterministic() {
    let Some(root) = data_root_for("calib_dqc cli", TestData::Bundle) else {
        return;
    };
    let run = |threads: &str, args: &[&str]| {
        let argv = [&["calibrate"][..], args].concat();
        common::tdquant_ok(&root, Some(threads), &argv, &format!("tdquant {argv:?}"));
    };
    let a = fresh_dir("cli_t1");
    let b = fresh_dir("cli_t2");
    let shared_args = [
        "--obs-batch",
        "1",
        "--obs-patch",
        "16",
        // Two micro-batches: at 2 threads they run in parallel.
        "--batch",
        "2",
        "--micro-batch",
        "1",
        "--patch",
        "16",
        "--iters",
        "4",
        "--bits",
        "3",
        "--no-eval",
        "--quiet",
        "--out",
    ];
    let with = |dir: &Path, extra: &[&str]| -> Vec<String> {
        shared_args
            .iter()
            .map(|s| s.to_string())
            .chain([dir.to_string_lossy().into_owned()])
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let va = with(&a, &[]);
    run("1", &argv(&va));
    let vb = with(&b, &["--stop-after", "2"]);
    run("2", &argv(&vb));
    assert!(!b.join("bounds.safetensors").exists());
    run("2", &["--quiet", "--resume", b.to_str().unwrap()]);
    let read = |p: PathBuf| std::fs::read(p).unwrap();
    assert_eq!(
        read(a.join("bounds.safetensors")),
        read(b.join("bounds.safetensors"))
    );
    assert_eq!(read(a.join("loss.csv")), read(b.join("loss.csv")));
    // --resume refuses other configuration options.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tdquant"))
        .arg("--data")
        .arg(&root)
        .args(["calibrate", "--bits", "4", "--resume"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give no other configuration option"));
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Micro-batches (gradient accumulation) give the same loss and update as
/// the whole batch, up to f32 summation order, for both normalisations.
#[test]
fn micro_batches_match_whole_batch() {
    let Some(o) = observed("calib_dqc micro-batch", 11, 3, 3) else {
        return;
    };
    for norm in [LossNorm::Paper, LossNorm::Released] {
        let mut results = Vec::new();
        for micro in [0usize, 1, 2] {
            let cfg = DqcConfig {
                iters: 1,
                batch: 3,
                micro_batch: micro,
                patch: 16,
                loss_norm: norm,
                feature_weight: 5.0,
                ..DqcConfig::paper()
            };
            let mut st = DqcState::new(o.init.clone(), &cfg, o.rng);
            let r = dqc_step(&o.model, &o.hook, &mut st, &o.x, &cfg).unwrap();
            results.push((r, st.adam.m.clone()));
        }
        let (r0, m0) = &results[0];
        for (r, m) in &results[1..] {
            for (a, b) in [
                (r.loss, r0.loss),
                (r.output, r0.output),
                (r.feature, r0.feature),
            ] {
                assert!((a - b).abs() <= 1e-5 * b.abs(), "{norm:?}: {a} vs {b}");
            }
            // Adam's first moment after one step is (1 − β₁)·g.
            let mut worst = 0f64;
            for (a, b) in m.iter().zip(m0) {
                let scale = f64::from(b.abs()).max(1e-3 * 0.1);
                worst = worst.max(f64::from((a - b).abs()) / scale);
            }
            assert!(
                worst < 1e-3,
                "{norm:?}: gradients differ (worst rel {worst:e})"
            );
        }
    }
}
