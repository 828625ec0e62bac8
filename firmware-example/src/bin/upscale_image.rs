//! Cortex-M4 integer SwinIR-light on a whole LR image, tile by tile with
//! halos (`tdquant_core::int::upscale_tiled_with`, DSP kernels), in bounded
//! RAM: the runner's scratch is sized for one `core + 2·halo` context, and
//! the output is streamed: each finished row of cores (`core·s` HR rows)
//! goes through SHA-256 and the strip is reused, so the HR image is never
//! held. Reports over defmt the SHA-256 of the whole output, the RAM use
//! (scratch, strip, measured stack high-water mark) and the instruction
//! count (see `upscale_tile` for the `-icount` method).
//!
//! Exit status (semihosting): 0 on success, 1 when the embedded model or
//! image is rejected or the run fails.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use sha2::{Digest, Sha256};
use tdquant_core::int::{runner, IntModel, PixelSink, Tiling};
use tdquant_firmware_example::clock::{self, Clock};
use tdquant_firmware_example::kernels::DspKernels;
use tdquant_firmware_example::{exit, hex, parse_usize, INT_MODEL};

static IMAGE: &[u8] = include_bytes!(env!("TDQ_IMAGE_PATH"));
const IMAGE_H: usize = parse_usize(env!("TDQ_IMAGE_H"));
const IMAGE_W: usize = parse_usize(env!("TDQ_IMAGE_W"));
const TILING: Tiling = Tiling {
    tile: parse_usize(env!("TDQ_CORE")),
    halo: parse_usize(env!("TDQ_HALO")),
};
/// Largest upscaling factor the strip is sized for.
const MAX_SCALE: usize = 4;

/// Side of the largest context, padded to the window (8).
const CONTEXT: usize = (TILING.tile + 2 * TILING.halo).div_ceil(8) * 8;
/// Scratch words: the two stream maps and the input of one context (`runner::scratch_len`).
const WORDS: usize = CONTEXT * CONTEXT * runner::WORDS_PER_PIXEL;
/// One row of cores of output: `core·s` HR rows.
const STRIP: usize = TILING.tile * MAX_SCALE * IMAGE_W * MAX_SCALE * 3;
/// Bytes below the top of the stack painted to measure stack use.
const STACK_PROBE: usize = 128 * 1024;
const PAINT: u32 = 0x5AA5_C33C;

static mut SCRATCH_WORDS: [i32; WORDS] = [0; WORDS];
static mut SCRATCH_BYTES: [u8; runner::WORK_BYTES] = [0; runner::WORK_BYTES];
static mut STRIP_BYTES: [u8; STRIP] = [0; STRIP];

#[exception]
fn SysTick() {
    clock::on_systick();
}

/// Hashes finished HR rows out of a strip of `core·s` rows.
struct StreamingSink<'s> {
    strip: &'s mut [u8],
    row_bytes: usize,
    /// First HR row held by the strip.
    y0: usize,
    hasher: Sha256,
    rows_hashed: usize,
}

impl PixelSink for StreamingSink<'_> {
    fn put(&mut self, y: usize, x: usize, c: usize, v: u8) {
        let at = y
            .checked_sub(self.y0)
            .map(|dy| dy * self.row_bytes + x * 3 + c);
        if let Some(dst) = at.and_then(|at| self.strip.get_mut(at)) {
            *dst = v;
        }
    }

    fn rows_done(&mut self, rows: usize) {
        let n = rows.saturating_sub(self.y0) * self.row_bytes;
        if let Some(done) = self.strip.get(..n) {
            self.hasher.update(done);
        }
        self.rows_hashed += rows.saturating_sub(self.y0);
        self.y0 = rows;
    }
}

extern "C" {
    /// The initial stack pointer, the top of RAM (cortex-m-rt's `link.x`).
    static _stack_start: u32;
}

/// The address the stack grows down from.
fn stack_top() -> usize {
    // Only the symbol's address is taken (safe for an extern static).
    core::ptr::addr_of!(_stack_start) as usize
}

/// Paints the `STACK_PROBE` bytes below the top of the stack that lie
/// below the current frame (called from `main` before the work starts).
fn paint_stack() {
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = stack_top() - STACK_PROBE;
    while p < sp - 256 {
        // SAFETY: [top − STACK_PROBE, sp − 256) lies below every live stack
        // frame (the stack grows down from `sp`) and above the statics (RAM
        // is 4 MiB, the statics well under 1 MiB); nothing else uses it yet.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes from the top of the stack down to the lowest word that no longer
/// holds the paint: every frame, `main`'s and the reset handler's included.
fn stack_used() -> usize {
    let top = stack_top();
    let mut p = top - STACK_PROBE;
    // SAFETY: reads the region of `paint_stack`, below every live frame.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

#[entry]
fn main() -> ! {
    paint_stack();
    let ok = run();
    exit(ok)
}

/// The embedded model, parsed in a frame of its own: the parser's
/// temporaries (about 12 KiB) are gone before the kernels' buffers are
/// allocated in `run`'s.
#[inline(never)]
fn parse_model() -> Option<IntModel<'static>> {
    IntModel::parse(INT_MODEL)
        .map_err(|e| {
            defmt::error!(
                "TDQ model rejected ({=usize} bytes): {}",
                INT_MODEL.len(),
                defmt::Display2Format(&e)
            );
        })
        .ok()
}

/// Everything after the paint, in a frame of its own so that its locals
/// (the kernels' 28 KiB of buffers among them) land in the painted region.
#[inline(never)]
fn run() -> bool {
    let Some(cp) = cortex_m::Peripherals::take() else {
        return false;
    };
    let Some(model) = parse_model() else {
        return false;
    };
    let s = model.scale();
    let row_bytes = IMAGE_W * s * 3;
    if s > MAX_SCALE || IMAGE.len() != IMAGE_H * IMAGE_W * 3 {
        defmt::error!(
            "TDQ image rejected: {=usize} bytes for {=usize}x{=usize}, scale {=usize}",
            IMAGE.len(),
            IMAGE_H,
            IMAGE_W,
            s
        );
        return false;
    }
    // SAFETY: single-threaded firmware; these statics are borrowed once,
    // here, and never aliased (no interrupt handler touches them).
    let (words, bytes, strip) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(SCRATCH_WORDS),
            &mut *core::ptr::addr_of_mut!(SCRATCH_BYTES),
            &mut *core::ptr::addr_of_mut!(STRIP_BYTES),
        )
    };
    let mut sink = StreamingSink {
        strip: &mut strip[..TILING.tile * s * row_bytes],
        row_bytes,
        y0: 0,
        hasher: Sha256::new(),
        rows_hashed: 0,
    };
    let clock = Clock::start(cp.SYST);
    let t0 = clock.ticks();
    let result = runner::upscale_tiled_with(
        &mut DspKernels::new(),
        &model,
        IMAGE,
        IMAGE_H,
        IMAGE_W,
        TILING,
        &mut sink,
        words,
        bytes,
    );
    let elapsed = clock.ticks() - t0;
    if let Err(e) = result {
        defmt::error!("TDQ inference failed: {}", defmt::Display2Format(&e));
        return false;
    }
    if sink.rows_hashed != IMAGE_H * s {
        defmt::error!(
            "TDQ streamed {=usize} HR rows, expected {=usize}",
            sink.rows_hashed,
            IMAGE_H * s
        );
        return false;
    }
    let digest = hex(&sink.hasher.finalize().into());
    let digest = core::str::from_utf8(&digest).unwrap_or("?");
    let scratch = WORDS * 4 + runner::WORK_BYTES;
    let stack = stack_used();
    if stack >= STACK_PROBE {
        // Every painted word was overwritten: the true high-water mark is
        // unknown, so no RAM figure would be honest.
        defmt::error!("TDQ stack use reached the {=usize}-byte probe", STACK_PROBE);
        return false;
    }
    defmt::info!(
        "TDQ ram scratch_bytes={=usize} strip_bytes={=usize} scratch+strip={=usize} stack_high_water={=usize} total={=usize} (limit 262144)",
        scratch,
        STRIP,
        scratch + STRIP,
        stack,
        scratch + STRIP + stack
    );
    let lr_pixels = (IMAGE_H * IMAGE_W) as u64;
    let insn = clock.instructions(elapsed);
    defmt::info!(
        "TDQ instructions~={=u64} per_lr_pixel~={=u64} (SysTick ticks per 1000 instructions: {=u64})",
        insn,
        insn.checked_div(lr_pixels).unwrap_or(0),
        clock.ticks_per_kilo_insn()
    );
    defmt::info!(
        "TDQ image h={=usize} w={=usize} scale={=usize} tile={=usize} halo={=usize} sha256={=str}",
        IMAGE_H,
        IMAGE_W,
        s,
        TILING.tile,
        TILING.halo,
        digest
    );
    true
}
