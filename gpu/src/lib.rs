//! tdquant-gpu: the integer operators of `tdquant-core` as CUDA kernels.
//!
//! Every operation goes through the [`IntegerBackend`] trait so the CUDA
//! driver binding can be swapped without touching callers. Two backends
//! always exist:
//!
//! - [`CpuReference`] forwards to the scalar oracle in `tdquant-core`; it is
//!   what every other backend is compared against with `==`.
//! - [`StubBackend`] is what a build without CUDA gets: every call returns
//!   [`GpuError::BuiltWithoutCuda`], so the workspace builds and tests on any
//!   machine and callers see a clear reason instead of a link error.
//!
//! [`backend`] picks the best backend this build and machine offer.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use tdquant_core::{unpack_codes, PackError, PackedLayout};

/// Why a GPU operation could not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    /// This build has no CUDA backend compiled in.
    #[error("tdquant-gpu was built without CUDA (enable the `cuda` feature on a machine with the CUDA toolkit)")]
    BuiltWithoutCuda,
    /// CUDA is compiled in but no device is present.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// The operation's arguments were rejected by the core oracle's checks.
    #[error("invalid packed tensor: {0}")]
    Packed(#[from] PackError),
}

/// What a backend runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Human-readable device name.
    pub name: String,
    /// Whether the backend runs on an accelerator (false for the CPU oracle).
    pub accelerator: bool,
}

/// The integer operators a backend provides. Each must return exactly the
/// integers the `tdquant-core` oracle returns for the same inputs.
pub trait IntegerBackend {
    /// Short backend name for logs and parity reports.
    fn name(&self) -> &'static str;
    /// The device this backend runs on, or why it cannot run.
    fn device(&self) -> Result<DeviceInfo, GpuError>;
    /// Unpacks the b-bit codes of a packed `[rows, cols]` matrix into one
    /// byte per code, row-major.
    fn unpack_codes(
        &self,
        layout: PackedLayout,
        packed: &[u8],
        out: &mut [u8],
    ) -> Result<(), GpuError>;
}

/// The scalar `tdquant-core` oracle behind the backend trait.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuReference;

impl IntegerBackend for CpuReference {
    fn name(&self) -> &'static str {
        "cpu-reference"
    }
    fn device(&self) -> Result<DeviceInfo, GpuError> {
        Ok(DeviceInfo {
            name: "host CPU (scalar oracle)".into(),
            accelerator: false,
        })
    }
    fn unpack_codes(
        &self,
        layout: PackedLayout,
        packed: &[u8],
        out: &mut [u8],
    ) -> Result<(), GpuError> {
        unpack_codes(layout, packed, out)?;
        Ok(())
    }
}

/// The backend of a build without CUDA: every operation reports
/// [`GpuError::BuiltWithoutCuda`].
#[derive(Debug, Default, Clone, Copy)]
pub struct StubBackend;

impl IntegerBackend for StubBackend {
    fn name(&self) -> &'static str {
        "stub"
    }
    fn device(&self) -> Result<DeviceInfo, GpuError> {
        Err(GpuError::BuiltWithoutCuda)
    }
    fn unpack_codes(&self, _: PackedLayout, _: &[u8], _: &mut [u8]) -> Result<(), GpuError> {
        Err(GpuError::BuiltWithoutCuda)
    }
}

/// The GPU backend this build offers. Without the CUDA backend compiled in it
/// is the [`StubBackend`]; callers that need results regardless fall back to
/// [`CpuReference`] themselves, so a parity run can never compare the oracle
/// with itself by accident.
pub fn backend() -> Box<dyn IntegerBackend> {
    Box::new(StubBackend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdquant_core::BitWidth;

    #[test]
    fn stub_reports_built_without_cuda() {
        let b = backend();
        assert_eq!(b.name(), "stub");
        assert_eq!(b.device(), Err(GpuError::BuiltWithoutCuda));
        let layout = PackedLayout::new(BitWidth::B4, 1, 2);
        let mut out = [0u8; 2];
        assert_eq!(
            b.unpack_codes(layout, &[0x21, 0, 0, 0], &mut out),
            Err(GpuError::BuiltWithoutCuda)
        );
        let msg = GpuError::BuiltWithoutCuda.to_string();
        assert!(msg.contains("without CUDA"), "{msg}");
    }

    #[test]
    fn cpu_reference_unpacks_like_core() {
        let layout = PackedLayout::new(BitWidth::B4, 1, 2);
        let mut out = [0u8; 2];
        CpuReference
            .unpack_codes(layout, &[0x21, 0, 0, 0], &mut out)
            .unwrap();
        assert_eq!(out, [1, 2]);
    }
}
