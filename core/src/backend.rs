//! The one interface every integer backend implements: the scalar oracle
//! here, the fast CPU backend (host), the CUDA kernels emulated on the CPU and
//! CUDA itself (gpu). Whatever runs the model, the contract is the oracle's:
//! the same output bytes for the same model and image, the same
//! [`RunError`] for the same bad arguments, and `out` untouched on error.
//!
//! Defined in `core` (no_std, no allocator) so that every crate can implement
//! it without depending on another backend's crate; the error type is an enum
//! of `Copy` values for the same reason (a device's failure is named by the
//! step and the driver's status code, both of which the driver reports as
//! constants).

use core::fmt;

use crate::int::{IntModel, RunError};

/// What a backend runs on and whether it can run here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Runs on an accelerator (a GPU) rather than on the host CPU.
    pub accelerator: bool,
    /// Splits the work over several threads (the bytes never depend on
    /// how many).
    pub parallel: bool,
    /// This build on this machine can run it: the device, the instruction
    /// set or the cargo feature it needs is present. An unavailable backend
    /// answers every call with an error instead of results.
    pub available: bool,
}

impl Capabilities {
    /// One thread on the host CPU with nothing to detect, hence always
    /// available: the oracle's, and the CUDA kernels' emulated on the CPU.
    pub const HOST_SERIAL: Self = Self {
        accelerator: false,
        parallel: false,
        available: true,
    };
}

/// Why a backend produced no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The image, the output buffer or the model was refused, exactly as
    /// [`crate::int::upscale`] refuses it.
    Run(RunError),
    /// This build or machine lacks what the backend needs (a cargo feature,
    /// an instruction set); names it.
    Unavailable(&'static str),
    /// The model uses something the backend does not implement; names it.
    Unsupported(&'static str),
    /// A device driver call failed: the step that failed and the driver's
    /// status code (for CUDA a `CUresult`, e.g. 100 = no device).
    Device {
        /// The driver call or the operation it belongs to.
        step: &'static str,
        /// The driver's status code.
        code: u32,
    },
}

impl From<RunError> for BackendError {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Run(e) => write!(f, "integer upscale: {e}"),
            Self::Unavailable(what) => write!(f, "backend unavailable: {what}"),
            Self::Unsupported(what) => write!(f, "unsupported by this backend: {what}"),
            Self::Device { step, code } => {
                write!(f, "device call failed: {step} (driver status {code})")
            }
        }
    }
}

impl core::error::Error for BackendError {}

/// An integer SwinIR-light executor, compared with the oracle by `==`.
pub trait IntegerBackend {
    /// The backend's name, as `tdquant parity` and test reports spell it.
    fn name(&self) -> &str;

    /// What it runs on and whether it can run here.
    fn capabilities(&self) -> Capabilities;

    /// [`Self::upscale`] on its arguments gathered in one value: what each
    /// backend implements (callers use [`Self::upscale`]).
    fn run(&self, args: UpscaleArgs<'_>) -> Result<(), BackendError>;

    /// The whole integer SwinIR-light on an `h × w` RGB image (`img`:
    /// `h·w·3` bytes, interleaved) into `out` (`(s·h)·(s·w)·3` bytes):
    /// [`crate::int::upscale`] exactly. On error `out` is left untouched.
    fn upscale(
        &self,
        model: &IntModel<'_>,
        img: &[u8],
        h: usize,
        w: usize,
        out: &mut [u8],
    ) -> Result<(), BackendError> {
        self.run(UpscaleArgs {
            model,
            img,
            h,
            w,
            out,
        })
    }
}

/// The arguments of one [`IntegerBackend::upscale`] call.
pub struct UpscaleArgs<'a> {
    /// The integer model.
    pub model: &'a IntModel<'a>,
    /// The `h × w` RGB image, `h·w·3` bytes, interleaved.
    pub img: &'a [u8],
    /// The image's height.
    pub h: usize,
    /// The image's width.
    pub w: usize,
    /// The output, `(s·h)·(s·w)·3` bytes.
    pub out: &'a mut [u8],
}

impl UpscaleArgs<'_> {
    /// The oracle's argument checks ([`crate::int::check_io`]), whose errors
    /// every backend returns for the same bad arguments.
    pub fn check_io(&self) -> Result<(), RunError> {
        crate::int::check_io(self.model, self.img.len(), self.h, self.w, self.out.len())
    }
}

/// The scalar oracle ([`crate::int::upscale`]) behind the trait, with its
/// scratch allocated per call (hence the `alloc` feature; a target without an
/// allocator calls [`crate::int::upscale`] with its own scratch).
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScalarOracle;

#[cfg(feature = "alloc")]
impl ScalarOracle {
    /// The name this backend reports.
    pub const NAME: &'static str = "oracle";
}

#[cfg(feature = "alloc")]
impl IntegerBackend for ScalarOracle {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::HOST_SERIAL
    }

    fn run(&self, args: UpscaleArgs<'_>) -> Result<(), BackendError> {
        // Checked before allocating: a bad size must not size the scratch.
        args.check_io()?;
        let len = crate::int::scratch_len(args.h, args.w).ok_or(RunError::BadSize)?;
        let mut words = alloc::vec![0i32; len.words];
        let mut bytes = alloc::vec![0u8; len.bytes];
        crate::int::upscale(
            &mut crate::int::ScalarKernels,
            args.model,
            args.img,
            args.h,
            args.w,
            args.out,
            &mut words,
            &mut bytes,
        )?;
        Ok(())
    }
}
