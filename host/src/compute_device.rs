//! Where the FP model, the calibration and the evaluation run: the CPU (the fused kernels of
//! `model::kernels`) or a CUDA GPU through candle's CUDA backend (their compositions of candle
//! ops in `model::kernels::portable`, on candle's CUDA kernels and cuBLAS).

use anyhow::{bail, Result};
use candle_core::Device;

/// `--device`: the candle device of the FP model and of calibration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeDevice {
    /// The CPU, all cores (rayon).
    #[default]
    Cpu,
    /// CUDA device 0 (needs a build with `--features cuda` and an NVIDIA driver).
    Cuda,
}

impl ComputeDevice {
    /// Opens the device, or says why it cannot be used.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if !cfg!(feature = "cuda") => bail!(
                "--device cuda: this tdquant was built without CUDA; rebuild it with \
                 `cargo build --release --features cuda` (see the README, \"GPU calibration\")"
            ),
            Self::Cuda => Device::new_cuda(0).map_err(|e| {
                // The driver's error, without the backtrace candle attaches
                // under RUST_BACKTRACE.
                let e = match e {
                    candle_core::Error::WithBacktrace { inner, .. } => *inner,
                    e => e,
                };
                anyhow::anyhow!("--device cuda: CUDA device 0 cannot be used: {e}")
            }),
        }
    }
}
