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

use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use sha2::{Digest, Sha256};
use tdquant_core::int::{runner, IntKernels, IntModel, ScalarKernels};
use tdquant_firmware_example::clock::{self, Clock};
use tdquant_firmware_example::kernels::DspKernels;
use tdquant_firmware_example::profile::{Profiled, N_OPS, OPS};
use tdquant_firmware_example::{exit, parse_usize, INT_MODEL};

static TILE: &[u8] = include_bytes!(env!("TDQ_TILE_PATH"));
const TILE_H: usize = parse_usize(env!("TDQ_TILE_H"));
const TILE_W: usize = parse_usize(env!("TDQ_TILE_W"));
/// Output tile bytes for scale ≤ 4.
const OUT_MAX: usize = TILE_H * TILE_W * 3 * 16;

/// Scratch words: the two stream maps and the input of the padded tile (see `runner`).
const WORDS: usize = pad8(TILE_H) * pad8(TILE_W) * runner::WORDS_PER_PIXEL;

static mut SCRATCH_WORDS: [i32; WORDS] = [0; WORDS];
static mut SCRATCH_BYTES: [u8; runner::WORK_BYTES] = [0; runner::WORK_BYTES];
static mut OUTPUT: [u8; OUT_MAX] = [0; OUT_MAX];

const fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

#[exception]
fn SysTick() {
    clock::on_systick();
}

/// `TDQ_KERNELS=scalar` at build time runs the core oracle's kernels
/// (the "before" of the README figures); otherwise the DSP kernels.
const SCALAR: bool = tdquant_firmware_example::env_is(option_env!("TDQ_KERNELS"), "scalar");

/// Upscales the tile with `kernels`, profiled per operator.
fn infer<K: IntKernels>(
    kernels: K,
    clock: &Clock,
    model: &IntModel<'_>,
    out: &mut [u8],
    words: &mut [i32],
    bytes: &mut [u8],
) -> (Result<(), runner::RunError>, [u64; N_OPS], [u32; N_OPS]) {
    let mut profiled = Profiled::new(kernels, clock);
    let result = runner::upscale(
        &mut profiled,
        model,
        TILE,
        TILE_H,
        TILE_W,
        out,
        words,
        bytes,
    );
    (result, profiled.spent, profiled.calls)
}

#[entry]
fn main() -> ! {
    let ok = run();
    exit(ok)
}

fn run() -> bool {
    let Some(cp) = cortex_m::Peripherals::take() else {
        return false;
    };
    let model = match IntModel::parse(INT_MODEL) {
        Ok(m) => m,
        Err(e) => {
            defmt::error!(
                "TDQ model rejected ({=usize} bytes): {}",
                INT_MODEL.len(),
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

    let clock = Clock::start(cp.SYST);
    let t0 = clock.ticks();
    let (result, spent, calls) = if SCALAR {
        infer(ScalarKernels, &clock, &model, out, words, bytes)
    } else {
        infer(DspKernels::new(), &clock, &model, out, words, bytes)
    };
    let elapsed = clock.ticks() - t0;
    if let Err(e) = result {
        defmt::error!("TDQ inference failed: {}", defmt::Display2Format(&e));
        return false;
    }
    let hex = tdquant_firmware_example::hex(&Sha256::digest(&*out).into());
    let hex = core::str::from_utf8(&hex).unwrap_or("?");
    defmt::info!(
        "TDQ sizes model_bytes={=usize} scratch_bytes={=usize} output_bytes={=usize}",
        INT_MODEL.len(),
        WORDS * 4 + runner::WORK_BYTES,
        out_len
    );
    defmt::info!("TDQ kernels={=str}", if SCALAR { "scalar" } else { "dsp" });
    defmt::info!(
        "TDQ systick_ticks={=u64} instructions~={=u64} (SysTick ticks per 1000 instructions: {=u64})",
        elapsed,
        clock.instructions(elapsed),
        clock.ticks_per_kilo_insn()
    );
    let pixels = (TILE_H * TILE_W) as u64;
    let mut in_kernels = 0;
    for (&op, (&spent, &calls)) in OPS.iter().zip(spent.iter().zip(calls.iter())) {
        in_kernels += spent;
        defmt::info!(
            "TDQ profile op={=str} calls={=u32} instructions~={=u64} per_lr_pixel~={=u64}",
            op,
            calls,
            clock.instructions(spent),
            clock.instructions(spent) / pixels
        );
    }
    let rest = elapsed.saturating_sub(in_kernels);
    defmt::info!(
        "TDQ profile op=rest instructions~={=u64} per_lr_pixel~={=u64}",
        clock.instructions(rest),
        clock.instructions(rest) / pixels
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
