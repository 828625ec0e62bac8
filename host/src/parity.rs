//! `tdquant parity`: the CPU integer oracle and a GPU backend on the same
//! inputs, bit for bit (SHA-256 per image, first differing pixel), non-zero
//! exit on any mismatch.
//!
//! The GPU side is `tdquant_gpu::backend()` — the CUDA backend in a build
//! with `--features cuda` (`cargo run --release -p tdquant-host --features
//! cuda --bin tdquant -- parity …`), otherwise the stub, which fails with
//! "built without CUDA". `--backend emulated` runs the same CUDA kernels
//! compiled for the CPU instead (slow: one thread at a time), which is what
//! CI can check without a GPU.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tdquant_gpu::{parity, CpuReference, HostKernelBackend, IntegerBackend, KernelPath};

use crate::eval::check_sets_exist;
use crate::eval::BenchmarkSet;
use crate::intfast::FastIntModel;
use crate::intmodel::IntSr;

/// Where the GPU side runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParityBackend {
    /// `tdquant_gpu::backend()`: CUDA when built with the feature.
    Gpu,
    /// The CUDA kernels compiled for the CPU (`HostKernelBackend`).
    Emulated,
}

/// How the CPU reference is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuSide {
    /// The scalar `core::int` oracle (single-threaded).
    Oracle,
    /// The multi-threaded fast path (byte-identical to the oracle: `--test int_fast`).
    Fast,
}

/// Options of `tdquant parity`.
#[derive(Clone, Debug)]
pub struct ParityOptions {
    /// Benchmark sets.
    pub sets: Vec<String>,
    /// GPU side.
    pub backend: ParityBackend,
    /// Kernel paths to check.
    pub paths: Vec<KernelPath>,
    /// CPU side.
    pub cpu: CpuSide,
    /// At most this many images per set (0 = all).
    pub limit: usize,
}

/// Runs the comparison; `Ok(())` only if every output is identical.
pub fn run_parity(tdq: &Path, root: &Path, opts: &ParityOptions) -> Result<()> {
    let sr = IntSr::load(tdq)?;
    let model = sr.model();
    let sets: Vec<&str> = opts.sets.iter().map(String::as_str).collect();
    check_sets_exist(root, &sets)?;
    let gpu: Box<dyn IntegerBackend> = match opts.backend {
        ParityBackend::Gpu => tdquant_gpu::backend(),
        ParityBackend::Emulated => Box::new(HostKernelBackend),
    };
    let device = gpu
        .device()
        .with_context(|| format!("GPU backend `{}` cannot run", gpu.name()))?;
    let cpu_name = match opts.cpu {
        CpuSide::Oracle => "core oracle",
        CpuSide::Fast => "fast CPU path",
    };
    println!(
        "parity: {} ({} bits, x{}) — CPU: {cpu_name}; GPU: {} on {}",
        tdq.display(),
        model.bits().bits(),
        model.scale(),
        gpu.name(),
        device.name
    );
    let fast = match opts.cpu {
        CpuSide::Fast => Some(FastIntModel::new(&model)?),
        CpuSide::Oracle => None,
    };
    let s = model.scale();
    let (mut checked, mut failed) = (0usize, 0usize);
    for set_name in &sets {
        let set = BenchmarkSet::open(root, set_name, s)?;
        let take = if opts.limit == 0 {
            set.entries.len()
        } else {
            opts.limit
        };
        for entry in set.entries.iter().take(take) {
            let pair = set.load(entry)?;
            let (h, w) = (pair.lr.height() as usize, pair.lr.width() as usize);
            let img = pair.lr.as_raw();
            let want = match &fast {
                Some(f) => f.upscale(img, h, w)?,
                None => {
                    let mut out = vec![0u8; h * w * 3 * s * s];
                    CpuReference.upscale(&model, img, h, w, &mut out, KernelPath::Fused)?;
                    out
                }
            };
            for &path in &opts.paths {
                let mut got = vec![0u8; want.len()];
                gpu.upscale(&model, img, h, w, &mut got, path)
                    .with_context(|| format!("{set_name}/{}: GPU upscale", pair.name))?;
                let p = parity::compare(&want, &got, w * s);
                checked += 1;
                let verdict = match p.first_diff {
                    None if p.matches() => "identical".to_string(),
                    diff => {
                        failed += 1;
                        format!(
                            "MISMATCH: {}",
                            diff.map_or_else(|| "hashes differ".into(), |d| d.to_string())
                        )
                    }
                };
                println!(
                    "{set_name}/{:<12} {h}x{w} {path:?}: cpu {} gpu {} {verdict}",
                    pair.name, p.sha_reference, p.sha_other
                );
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {checked} outputs differ between the CPU and the GPU");
    }
    println!("parity: all {checked} outputs identical");
    Ok(())
}
