//! Support code of the Cortex-M4 firmware binaries: the DSP kernels of the
//! integer SwinIR-light ([`kernels::DspKernels`]), the instruction clock
//! ([`clock`]) and the per-operator profiler ([`profile`]), and what every
//! binary shares: its [`exit`] through semihosting, the panic handlers and
//! the build-time settings parsers.
#![no_std]

use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};

/// Implements `IntKernels` for `$ty` (generic parameters in the brackets)
/// from one line per operator, `op(self, args…) => body;`, all eight in the
/// trait's order. The signatures are written here once, so each
/// implementation reads as the table of what its operators run.
macro_rules! impl_int_kernels {
    (
        [$($gen:tt)*] $ty:ty {
            linear($s0:ident, $call0:ident, $emit0:ident) => $linear:expr;
            linear_gelu($s1:ident, $call1:ident, $gelu1:ident, $out1:ident) => $linear_gelu:expr;
            linear_codes(
                $s2:ident, $call2:ident, $levels2:ident, $out2:ident
            ) => $linear_codes:expr;
            linear_stream(
                $s3:ident, $call3:ident, $pos3:ident, $stride3:ident, $r3:ident
            ) => $linear_stream:expr;
            softmax_codes($s4:ident, $call4:ident, $probs4:ident) => $softmax_codes:expr;
            av_codes($s5:ident, $call5:ident, $out5:ident) => $av_codes:expr;
            conv(
                $s6:ident, $conv6:ident, $input6:ident, $h6:ident, $w6:ident, $emit6:ident
            ) => $conv:expr;
            normalize($s7:ident, $x7:ident, $eps7:ident, $xhat7:ident) => $normalize:expr;
        }
    ) => {
        impl<$($gen)*> tdquant_core::int::IntKernels for $ty {
            fn linear<W, F>(
                &mut $s0,
                $call0: &tdquant_core::int::linear::LinearCall<'_, W>,
                $emit0: F,
            ) -> Result<(), tdquant_core::int::OpError>
            where
                W: tdquant_core::int::I32Src + ?Sized,
                F: FnMut(usize, usize, i64),
            {
                $linear
            }

            fn linear_gelu<W, G>(
                &mut $s1,
                $call1: &tdquant_core::int::linear::LinearCall<'_, W>,
                $gelu1: &G,
                $out1: &mut [u8],
            ) -> Result<(), tdquant_core::int::OpError>
            where
                W: tdquant_core::int::I32Src + ?Sized,
                G: tdquant_core::int::I32Src + ?Sized,
            {
                $linear_gelu
            }

            fn linear_codes<W: tdquant_core::int::I32Src + ?Sized>(
                &mut $s2,
                $call2: &tdquant_core::int::linear::LinearCall<'_, W>,
                $levels2: u8,
                $out2: &mut [u8],
            ) -> Result<(), tdquant_core::int::OpError> {
                $linear_codes
            }

            fn linear_stream<W: tdquant_core::int::I32Src + ?Sized>(
                &mut $s3,
                $call3: &tdquant_core::int::linear::LinearCall<'_, W>,
                $pos3: &[usize],
                $stride3: usize,
                $r3: &mut [i32],
            ) -> Result<(), tdquant_core::int::OpError> {
                $linear_stream
            }

            fn softmax_codes<W: tdquant_core::int::I32Src + ?Sized>(
                &mut $s4,
                $call4: &tdquant_core::int::attention::SoftmaxCall<'_, W>,
                $probs4: &mut [u8],
            ) -> Result<(), tdquant_core::int::OpError> {
                $softmax_codes
            }

            fn av_codes(
                &mut $s5,
                $call5: &tdquant_core::int::attention::AvCall<'_>,
                $out5: &mut [u8],
            ) -> Result<(), tdquant_core::int::OpError> {
                $av_codes
            }

            fn conv<W: tdquant_core::int::I32Src, F: FnMut(usize, usize, i64)>(
                &mut $s6,
                $conv6: &tdquant_core::int::conv::Conv<'_, W>,
                $input6: &[i32],
                $h6: usize,
                $w6: usize,
                $emit6: F,
            ) -> Result<(), tdquant_core::int::OpError> {
                $conv
            }

            fn normalize(
                &mut $s7,
                $x7: &[i32],
                $eps7: i64,
                $xhat7: &mut [i32],
            ) -> Result<(), tdquant_core::int::OpError> {
                $normalize
            }
        }
    };
}

pub mod clock;
pub mod dsp;
pub mod kernels;
pub mod parity;
pub mod profile;

/// The integer `.tdq` model the upscaling binaries embed: the file `TDQ_INT_MODEL` names at
/// build time (`build.rs`), or nothing, which they reject at run time.
pub static INT_MODEL: &[u8] = include_bytes!(env!("TDQ_INT_MODEL_PATH"));

/// Ends the run with status 0 if `ok`, else 1, through semihosting (so
/// QEMU's own exit code carries it).
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[defmt::panic_handler]
fn defmt_panic() -> ! {
    exit(false)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic");
    exit(false)
}

/// SHA-256 digest as lowercase hex.
pub fn hex(digest: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 15)];
    }
    out
}

/// `var == Some(value)`, usable in a `const` (build-time `option_env!` switches).
pub const fn env_is(var: Option<&str>, value: &str) -> bool {
    let Some(var) = var else {
        return false;
    };
    let (a, b) = (var.as_bytes(), value.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Decimal digits as a `usize`, in a `const` (build-time sizes from `env!`).
pub const fn parse_usize(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0usize;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    v
}

/// `var` as decimal digits (as [`parse_usize`]), or `default` when unset: a
/// build-time `option_env!` setting, in a `const`.
pub const fn parse_u32_or(var: Option<&str>, default: u32) -> u32 {
    let Some(s) = var else {
        return default;
    };
    let v = parse_usize(s);
    assert!(v <= u32::MAX as usize, "setting above u32::MAX");
    v as u32
}
