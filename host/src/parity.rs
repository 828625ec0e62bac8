//! `tdquant parity`: any two integer backends on the same inputs, bit for bit
//! (SHA-256 per image, first differing pixel), non-zero exit on any mismatch.
//!
//! Every backend of the workspace is named by [`BackendName`] and runs
//! through the one trait `tdquant_core::backend::IntegerBackend`. The CUDA
//! backends need a build with `--features cuda` (`cargo run --release -p
//! tdquant-host --features cuda --bin tdquant -- parity …`); without it they
//! report "built without the `cuda` feature". The emulated backends run the
//! same CUDA kernels compiled for the CPU (slow: one thread at a time),
//! which is what CI can check without a GPU.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tdquant_core::backend::{IntegerBackend, ScalarOracle};
use tdquant_gpu::{parity, HostKernelBackend, KernelPath};

use crate::cpu_backend::CpuFastBackend;
use crate::cpu_features::Isa;
use crate::eval::check_sets_exist;
use crate::eval::BenchmarkSet;
use crate::intmodel::IntSr;

/// Every integer backend, by the name `tdquant parity` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendName {
    /// The scalar `core::int` oracle (single-threaded).
    Oracle,
    /// The fast CPU backend on the best instruction set this CPU has.
    CpuFast,
    /// The fast CPU backend, portable code only.
    CpuPortable,
    /// The fast CPU backend with the AVX2 kernels.
    CpuAvx2,
    /// The fast CPU backend with the AVX-512 VNNI kernels.
    CpuAvx512Vnni,
    /// The CUDA kernels compiled for the CPU, fused attention and MLP.
    EmulatedFused,
    /// The CUDA kernels compiled for the CPU, one kernel per operator.
    EmulatedPerOp,
    /// CUDA, fused attention and MLP kernels.
    CudaFused,
    /// CUDA, one kernel per operator.
    CudaPerOp,
}

impl BackendName {
    /// The backend itself.
    pub fn open(self) -> Box<dyn IntegerBackend> {
        match self {
            Self::Oracle => Box::new(ScalarOracle),
            Self::CpuFast => Box::new(CpuFastBackend::new(Isa::best())),
            Self::CpuPortable => Box::new(CpuFastBackend::new(Isa::Portable)),
            Self::CpuAvx2 => Box::new(CpuFastBackend::new(Isa::Avx2)),
            Self::CpuAvx512Vnni => Box::new(CpuFastBackend::new(Isa::Avx512Vnni)),
            Self::EmulatedFused => Box::new(HostKernelBackend::new(KernelPath::Fused)),
            Self::EmulatedPerOp => Box::new(HostKernelBackend::new(KernelPath::PerOperator)),
            Self::CudaFused => tdquant_gpu::cuda_backend(KernelPath::Fused),
            Self::CudaPerOp => tdquant_gpu::cuda_backend(KernelPath::PerOperator),
        }
    }
}

/// Options of `tdquant parity`.
#[derive(Clone, Debug)]
pub struct ParityOptions {
    /// Benchmark sets.
    pub sets: Vec<String>,
    /// The reference side.
    pub a: BackendName,
    /// The backends compared with it.
    pub b: Vec<BackendName>,
    /// At most this many images per set (0 = all).
    pub limit: usize,
}

/// Runs the comparison; `Ok(())` only if every output is identical.
pub fn run_parity(tdq: &Path, root: &Path, opts: &ParityOptions) -> Result<()> {
    let sr = IntSr::load(tdq)?;
    let model = sr.model();
    let sets: Vec<&str> = opts.sets.iter().map(String::as_str).collect();
    check_sets_exist(root, &sets)?;
    let a = opts.a.open();
    let others: Vec<Box<dyn IntegerBackend>> = opts.b.iter().map(|b| b.open()).collect();
    let requested = std::iter::once(&opts.a).chain(&opts.b);
    for (name, backend) in requested.zip(std::iter::once(&a).chain(&others)) {
        if !backend.capabilities().available {
            let name = clap::ValueEnum::to_possible_value(name)
                .map_or_else(|| format!("{name:?}"), |v| v.get_name().to_string());
            bail!(
                "backend `{name}` ({}) cannot run in this build on this machine",
                backend.name()
            );
        }
    }
    let names: Vec<&str> = others.iter().map(|b| b.name()).collect();
    println!(
        "parity: {} ({} bits, x{}) — {} against {}",
        tdq.display(),
        model.bits().bits(),
        model.scale(),
        a.name(),
        names.join(", ")
    );
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
            let mut want = vec![0u8; h * w * 3 * s * s];
            a.upscale(&model, img, h, w, &mut want)
                .with_context(|| format!("{set_name}/{}: {}", pair.name, a.name()))?;
            for b in &others {
                let mut got = vec![0u8; want.len()];
                b.upscale(&model, img, h, w, &mut got)
                    .with_context(|| format!("{set_name}/{}: {}", pair.name, b.name()))?;
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
                    "{set_name}/{:<12} {h}x{w} {}: {} {} {verdict}",
                    pair.name,
                    b.name(),
                    p.sha_reference,
                    p.sha_other
                );
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {checked} outputs differ from {}", a.name());
    }
    println!("parity: all {checked} outputs identical");
    Ok(())
}
