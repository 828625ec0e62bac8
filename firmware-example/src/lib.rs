//! Support code of the Cortex-M4 firmware binaries: the DSP kernels of the
//! integer SwinIR-light ([`kernels::DspKernels`]), the instruction clock
//! ([`clock`]) and the per-operator profiler ([`profile`]), and what every
//! binary shares: its [`exit`] through semihosting, the panic handlers and
//! the build-time settings parsers.
#![no_std]

use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};

pub mod clock;
pub mod dsp;
pub mod kernels;
pub mod parity;
pub mod profile;

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
