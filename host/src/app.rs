//! The `tdquant` subcommands, as library functions so tests can drive them.
//!
//! `main.rs` and `cli/` only parse arguments; everything that touches files lives here
//! and reports failures as errors naming the offending path or value.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::compute_device::ComputeDevice;
use crate::eval::{self, EvalReport, RgbImageF32};
use crate::input_file::PathContext;
use crate::model::{self, SwinIR};

/// The benchmark sets `eval` runs when none are named.
pub const DEFAULT_SETS: &[&str] = &["Set5", "Set14", "B100"];

use crate::eval::check_sets_exist;
use crate::model::FpHook;
use crate::output::write_atomic;

/// `tdquant eval`: BasicSR-exact PSNR/SSIM-Y of the FP model on `sets`;
/// prints the table and writes `eval.json` and `eval.md` into `out_dir`.
pub fn eval_fp(
    model_path: &Path,
    device: ComputeDevice,
    data_root: &Path,
    sets: &[String],
    out_dir: &Path,
) -> Result<EvalReport> {
    let model = load_model(model_path, device)?;
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    check_sets_exist(data_root, &sets)?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut sr = |lr: &RgbImageF32| model.upscale_image(lr, &FpHook);
    let report = eval::evaluate_sets(data_root, &sets, model.scale(), &mut sr)?;
    publish_eval_report(&report, out_dir)?;
    eval::compare::write_comparison(
        data_root,
        sets[0],
        model.scale(),
        &mut [("FP32".to_string(), &mut sr)],
        &out_dir.join("compare.png"),
    )?;
    Ok(report)
}

/// Loads SwinIR-light weights onto `device`, naming the file in the error.
fn load_model(model_path: &Path, device: ComputeDevice) -> Result<SwinIR> {
    let device = device.open()?;
    SwinIR::load_on(model_path, &device).path_context("loading model", model_path)
}

/// `N threads` on the CPU, `cuda` on a GPU: the benchmarks' resource column.
fn device_label(model: &SwinIR) -> String {
    if model.device().is_cpu() {
        format!("{} threads", candle_core::utils::get_num_threads())
    } else {
        format!("{:?}", model.device().location())
    }
}

/// Prints the evaluation table and writes `eval.json` and `eval.md` into
/// `out_dir` (atomically).
fn publish_eval_report(report: &EvalReport, out_dir: &Path) -> Result<()> {
    report.print_table();
    write_atomic(&out_dir.join("eval.json"), report.to_json().as_bytes())?;
    write_atomic(&out_dir.join("eval.md"), report.to_markdown().as_bytes())?;
    eprintln!("wrote {}/eval.json and eval.md", out_dir.display());
    Ok(())
}

/// `tdquant bench fp`: median FP forward time for an `h × w` LR image.
pub fn bench_fp(
    model_path: &Path,
    device: ComputeDevice,
    h: usize,
    w: usize,
    iters: usize,
) -> Result<f64> {
    let model = load_model(model_path, device)?;
    let t = model::bench_fp_forward(&model, h, w, iters)?;
    let secs = t.as_secs_f64();
    println!(
        "fp forward  x{}  LR {h}x{w}  median of {iters}: {:.3} s  ({:.3} images/s, {})",
        model.scale(),
        secs,
        1.0 / secs,
        device_label(&model)
    );
    Ok(secs)
}

/// `tdquant eval --bounds`: BasicSR-exact PSNR/SSIM-Y of the **fake-quant**
/// model with the bounds in `bounds_path` (a `tdquant calibrate` bounds file,
/// or a metadata-less file such as the golden `dobi_released_w*.safetensors`,
/// which needs `bits`). The bounds are checked against the model (SHA-256 of
/// the weights, scale) and the requested bit width before any image is
/// processed. Prints the table and writes `eval.json` and `eval.md`.
pub fn eval_quant(
    model_path: &Path,
    device: ComputeDevice,
    bounds_path: &Path,
    bits: Option<u8>,
    data_root: &Path,
    sets: &[String],
    out_dir: &Path,
) -> Result<EvalReport> {
    use crate::calib::bounds_file::{load_bounds, BoundsExpect};
    use crate::calib::QuantHook;
    if let Some(b) = bits {
        crate::calib::check_bits(b)?;
    }
    let model = load_model(model_path, device)?;
    let loaded = load_bounds(
        bounds_path,
        &BoundsExpect {
            bits,
            weights_sha256: model.weights_sha256(),
            scale: Some(model.scale()),
        },
    )?;
    if loaded.meta.is_none() {
        eprintln!(
            "note: {} has no tdquant metadata; using W{b}A{b} as given, model identity not checked",
            bounds_path.display(),
            b = loaded.bits
        );
    }
    let sets_ref: Vec<&str> = sets.iter().map(String::as_str).collect();
    check_sets_exist(data_root, &sets_ref)?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let hook = QuantHook::from_bounds(loaded.bits, &loaded.bounds)?;
    eprintln!(
        "fake-quant W{b}A{b} evaluation with {}",
        bounds_path.display(),
        b = loaded.bits
    );
    let mut quant = |lr: &RgbImageF32| model.upscale_image(lr, &hook);
    let report = eval::evaluate_sets(data_root, &sets_ref, model.scale(), &mut quant)?;
    publish_eval_report(&report, out_dir)?;
    let mut fp = |lr: &RgbImageF32| model.upscale_image(lr, &FpHook);
    eval::compare::write_comparison(
        data_root,
        sets_ref[0],
        model.scale(),
        &mut [
            ("FP32".to_string(), &mut fp),
            (format!("fake-quant W{b}A{b}", b = loaded.bits), &mut quant),
        ],
        &out_dir.join("compare.png"),
    )?;
    Ok(report)
}

/// `tdquant calibrate`: run (or, with `resume`, continue) a calibration into
/// `out_dir` and print the evaluation table. See [`crate::calib::calibrate`].
pub fn calibrate(
    cfg: &crate::calib::calibrate::CalibConfig,
    out_dir: &Path,
    resume: bool,
    opts: &crate::calib::calibrate::RunOptions,
) -> Result<crate::calib::calibrate::CalibOutcome> {
    let outcome = crate::calib::calibrate::calibrate(cfg, out_dir, resume, opts)?;
    if let Some(r) = &outcome.report {
        println!();
        print!("{}", r.eval_table());
        for s in &r.stages {
            println!("  {:<40} {:>8.1} s", s.stage, s.seconds);
        }
        println!("  {:<40} {:>8.1} s", "total", r.total_seconds);
        if let Some(b) = &outcome.bounds_path {
            println!("bounds: {}", b.display());
        }
        println!("report: {}", out_dir.join("report.md").display());
    }
    Ok(outcome)
}

/// `tdquant bench dqc`: median seconds of one DQC step (teacher + fake-quant
/// student forward, backward, Adam) for `batch` random `patch × patch` LR
/// inputs at W`bits`A`bits`.
pub fn bench_dqc(
    model_path: &Path,
    device: ComputeDevice,
    bits: u8,
    batch: usize,
    micro_batch: usize,
    patch: usize,
    iters: usize,
) -> Result<f64> {
    crate::calib::check_bits(bits)?;
    crate::calib::data::check_patch(patch)?;
    let model = load_model(model_path, device)?;
    let bench = crate::calib::dqc::bench_dqc_step(&model, bits, batch, micro_batch, patch, iters)?;
    let secs = bench.median_s;
    println!(
        "dqc step  x{}  W{bits}A{bits}  batch {batch} x {patch}x{patch}  micro-batch {micro_batch}  median of {iters}: {secs:.3} s  ({:.2} it/s, {}, CPU/wall {:.2})",
        model.scale(),
        1.0 / secs,
        device_label(&model),
        bench.cpu_per_wall
    );
    Ok(secs)
}

/// Process-wide runtime settings for the CLI, applied at start-up (before
/// any candle call), each only when the user has not set it:
///
/// * `CANDLE_NUM_THREADS=1`: candle's element-wise ops then run on the
///   calling thread instead of its spinning barrier pool. On 2 cores the
///   pool's spin-waits cost more than the parallelism gains (measured:
///   DQC step 4.6 s → 3.3 s, FP 128×128 forward 0.98 s → 0.83 s); matmuls
///   and the fused kernels keep using all `RAYON_NUM_THREADS` threads.
/// * glibc malloc (`mallopt`): serve blocks up to 32 MiB from the heap and
///   never trim it (`M_MMAP_THRESHOLD` 32 MiB, `M_TRIM_THRESHOLD` 4 GiB,
///   `M_TOP_PAD` 512 MiB), so the large short-lived tensors of a forward /
///   backward pass reuse memory instead of page-faulting fresh zero pages
///   (~17 % of a DQC step before); one arena (`M_ARENA_MAX` 1), so the
///   worker threads of parallel DQC micro-batches reuse that heap too
///   instead of faulting in arenas of their own (system time of
///   `bench dqc` 12.4 s → 4.7–8.3 s). Skipped if any `MALLOC_*` variable is
///   set.
pub fn tune_runtime() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded here: called first thing in main.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_"));
        if !user_set {
            // SAFETY: mallopt only adjusts allocator parameters.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
                libc::mallopt(libc::M_TOP_PAD, 512 << 20);
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
}

/// Options of `tdquant bench int`.
#[derive(Clone, Debug)]
pub struct BenchIntOptions {
    /// SwinIR-light weights (FP reference, and the export when `tdq` is unset).
    pub model: PathBuf,
    /// A `.tdq` file; default: exported in-process from the golden DOBI bounds.
    pub tdq: Option<PathBuf>,
    /// Bit width of the in-process export.
    pub bits: u8,
    /// LR image side for the FP and fast integer runs.
    pub size: usize,
    /// LR image side for the scalar oracle (0: skip it).
    pub oracle_size: usize,
    /// Timed runs (median).
    pub iters: usize,
}

/// `tdquant bench int`: FP forward, scalar integer oracle and fast integer
/// path timed in one process; prints the times and ratios. Returns
/// (FP seconds, fast seconds).
pub fn bench_int(root: &Path, opts: &BenchIntOptions) -> Result<(f64, f64)> {
    let mut golden = crate::export::GoldenExport::with_model(root, &opts.model)?;
    let bytes = match &opts.tdq {
        Some(p) => fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => golden.export(opts.bits)?.bytes,
    };
    let fp_model = golden.model();
    let sr = crate::intmodel::IntSr::from_bytes(bytes)?;
    let int_model = sr.model();
    let fast = crate::cpu_backend::FastIntModel::new(&int_model)?;
    let (n, iters) = (opts.size, opts.iters.max(1));
    let image = |side: usize| -> Vec<u8> {
        (0..side * side * 3)
            .map(|i| ((i as u64).wrapping_mul(2_654_435_761) % 251) as u8)
            .collect()
    };
    let median = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            f()?;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let threads = rayon::current_num_threads();
    println!(
        "bench int: W{b}A{b} x{s}, LR {n}x{n}, median of {iters}, {threads} threads",
        b = int_model.bits().bits(),
        s = sr.scale()
    );
    let fp = model::bench_fp_forward(fp_model, n, n, iters)?.as_secs_f64();
    println!("  fp (candle)        {n}x{n}: {fp:.3} s");
    let img = image(n);
    let _ = fast.upscale(&img, n, n)?; // warm-up
    let fast_s = median(&mut || fast.upscale(&img, n, n).map(|_| ()))?;
    let px = (n * n) as f64;
    println!(
        "  integer fast       {n}x{n}: {fast_s:.3} s  ({:.0} LR px/s)",
        px / fast_s
    );
    if opts.oracle_size > 0 {
        let m = opts.oracle_size;
        let small = image(m);
        let oracle = median(&mut || sr.upscale_raw(&small, m, m).map(|_| ()))?;
        let fast_small = median(&mut || fast.upscale(&small, m, m).map(|_| ()))?;
        let mpx = (m * m) as f64;
        println!(
            "  integer oracle     {m}x{m}: {oracle:.3} s  ({:.0} LR px/s); fast on {m}x{m}: {fast_small:.3} s; fast/oracle speed-up {:.2}x",
            mpx / oracle,
            oracle / fast_small
        );
    }
    println!(
        "  ratio fp / integer fast at {n}x{n}: {:.2}x ({})",
        fp / fast_s,
        if fp / fast_s >= 1.0 {
            "integer faster"
        } else {
            "integer slower"
        }
    );
    Ok((fp, fast_s))
}
