//! Cortex-M4 integer SwinIR-light: runs the `tdquant-core` integer network
//! over an LR tile embedded in flash, with a static scratch buffer and no
//! allocator, and reports over defmt: the SHA-256 of the output tile, the
//! model and scratch sizes, and a deterministic instruction-count proxy.
//!
//! Timing: run QEMU with `-icount shift=0`, where virtual time advances a
//! fixed amount per executed instruction, so SysTick counts are
//! deterministic. The firmware calibrates SysTick against a loop of exactly
//! known instruction count and reports the inference's instruction count
//! from that ratio. On a real board the same SysTick count measures cycles
//! (QEMU is not cycle-accurate, so no cycle figure is claimed here).
//!
//! Exit status (semihosting): 0 on success, 1 when the embedded model or
//! tile is rejected.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use defmt_semihosting as _;
use sha2::{Digest, Sha256};
use tdquant_core::int::{runner, IntModel};

static MODEL: &[u8] = include_bytes!(env!("TDQ_INT_MODEL_PATH"));
static TILE: &[u8] = include_bytes!(env!("TDQ_TILE_PATH"));
const TILE_H: usize = parse_usize(env!("TDQ_TILE_H"));
const TILE_W: usize = parse_usize(env!("TDQ_TILE_W"));
/// Output tile bytes for scale ≤ 4.
const OUT_MAX: usize = TILE_H * TILE_W * 3 * 16;

/// Scratch words: four stream maps of the padded tile (see `runner`).
const WORDS: usize = pad8(TILE_H) * pad8(TILE_W) * 4 * 60;

static mut SCRATCH_WORDS: [i32; WORDS] = [0; WORDS];
static mut SCRATCH_BYTES: [u8; runner::WORK_BYTES] = [0; runner::WORK_BYTES];
static mut OUTPUT: [u8; OUT_MAX] = [0; OUT_MAX];

static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

const fn parse_usize(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0usize;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    v
}

const fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

#[exception]
fn SysTick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::Relaxed);
}

#[defmt::panic_handler]
fn defmt_panic() -> ! {
    debug::exit(EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic");
    debug::exit(EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn ticks(syst: &cortex_m::peripheral::SYST) -> u64 {
    // Read wraps around the counter so a wrap in between is not lost.
    loop {
        let before = SYSTICK_WRAPS.load(Ordering::Relaxed);
        let current = syst.cvr.read() & SYSTICK_RELOAD;
        if SYSTICK_WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) * u64::from(SYSTICK_RELOAD + 1)
                + u64::from(SYSTICK_RELOAD - current);
        }
    }
}

/// SysTick ticks per 1,000 instructions, measured on a loop of exactly
/// known length (`subs` + `bne` per iteration), so the reported instruction
/// count does not depend on the board's clock wiring.
fn calibrate(syst: &cortex_m::peripheral::SYST) -> u64 {
    const ITERATIONS: u32 = 1_000_000;
    let t0 = ticks(syst);
    let mut n = ITERATIONS;
    // SAFETY: a register-only countdown loop; touches no memory.
    unsafe {
        core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) n, options(nomem, nostack));
    }
    let _ = n;
    let t1 = ticks(syst);
    // 2 instructions per iteration.
    ((t1 - t0) * 1000)
        .div_ceil(2 * u64::from(ITERATIONS))
        .max(1)
}

#[entry]
fn main() -> ! {
    let ok = run();
    debug::exit(if ok { EXIT_SUCCESS } else { EXIT_FAILURE });
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run() -> bool {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        return false;
    };
    let model = match IntModel::parse(MODEL) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!(
                "TDQ model rejected ({=usize} bytes): {}",
                MODEL.len(),
                defmt::Display2Format(&e)
            );
            return false;
        }
    };
    let scale = model.scale();
    let out_len = TILE_H * TILE_W * 3 * scale * scale;
    if TILE_H == 0 || TILE_W == 0 || TILE.len() != TILE_H * TILE_W * 3 || out_len > OUT_MAX {
        defmt::error!(
            "TDQ tile rejected: {=usize} bytes for {=usize}x{=usize}",
            TILE.len(),
            TILE_H,
            TILE_W
        );
        return false;
    }
    // SAFETY: single-threaded firmware; these statics are borrowed once,
    // here, and never aliased (no interrupt handler touches them).
    let (words, bytes, out) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(SCRATCH_WORDS),
            &mut *core::ptr::addr_of_mut!(SCRATCH_BYTES),
            &mut *core::ptr::addr_of_mut!(OUTPUT),
        )
    };
    let out = &mut out[..out_len];

    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(SYSTICK_RELOAD);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();
    // The counter reloads from 0 on its first tick; start after that so the
    // first reading is not a spurious full period.
    while cp.SYST.cvr.read() == 0 {}
    let ticks_per_kilo_insn = calibrate(&cp.SYST);
    let t0 = ticks(&cp.SYST);
    let result = runner::upscale(&model, TILE, TILE_H, TILE_W, out, words, bytes);
    let t1 = ticks(&cp.SYST);
    cp.SYST.disable_counter();
    if let Err(e) = result {
        defmt::error!("TDQ inference failed: {}", defmt::Display2Format(&e));
        return false;
    }
    let digest = Sha256::digest(&*out);
    let mut hex = [0u8; 64];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 15)];
    }
    let hex = core::str::from_utf8(&hex).unwrap_or("?");
    defmt::info!(
        "TDQ sizes model_bytes={=usize} scratch_bytes={=usize} output_bytes={=usize}",
        MODEL.len(),
        WORDS * 4 + runner::WORK_BYTES,
        out_len
    );
    let elapsed = t1 - t0;
    defmt::info!(
        "TDQ systick_ticks={=u64} instructions~={=u64} (SysTick ticks per 1000 instructions: {=u64})",
        elapsed,
        elapsed * 1000 / ticks_per_kilo_insn,
        ticks_per_kilo_insn
    );
    defmt::info!(
        "TDQ tile h={=usize} w={=usize} scale={=usize} sha256={=str}",
        TILE_H,
        TILE_W,
        scale,
        hex
    );
    true
}
