//! `tdquant parity`: two or more integer backends compared bit for bit.

use std::path::{Path, PathBuf};

use tdquant_host::parity::{run_parity, BackendName, ParityOptions};

/// Options of `tdquant parity`.
#[derive(clap::Args, Debug)]
pub struct ParityArgs {
    /// The integer model (`tdquant export`).
    #[arg(long)]
    int: PathBuf,
    /// Comma-separated benchmark sets (LR inputs).
    #[arg(long, value_delimiter = ',', default_value = "Set5")]
    sets: Vec<String>,
    /// The reference backend.
    #[arg(long, value_enum, default_value = "oracle")]
    a: BackendName,
    /// Comma-separated backends compared with `--a` (the emulated ones
    /// run the CUDA kernels on the CPU: slow; the CUDA ones need a build
    /// with `--features cuda`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "cuda-fused,cuda-per-op"
    )]
    b: Vec<BackendName>,
    /// At most this many images per set (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
}

impl ParityArgs {
    pub fn run(self, root: &Path) -> anyhow::Result<()> {
        let Self {
            int,
            sets,
            a,
            b,
            limit,
        } = self;
        run_parity(&int, root, &ParityOptions { sets, a, b, limit })
    }
}
