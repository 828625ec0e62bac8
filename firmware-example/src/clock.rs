//! Deterministic instruction counts from SysTick under QEMU `-icount`.
//!
//! With `-icount shift=0` QEMU advances virtual time a fixed amount per
//! executed instruction, so SysTick counts are deterministic. [`Clock::start`]
//! calibrates SysTick against a loop of exactly known instruction count, and
//! [`Clock::instructions`] converts tick differences with that ratio. On a
//! real board the same counter measures cycles instead (QEMU is not
//! cycle-accurate, so no cycle figure is claimed from it).

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;

static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// Counts SysTick wraps; the binaries route their `SysTick` exception here.
pub fn on_systick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// A running SysTick and its calibration.
pub struct Clock {
    syst: SYST,
    ticks_per_kilo_insn: u64,
}

impl Clock {
    /// Starts SysTick (core clock, wrap interrupt) and calibrates it.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYSTICK_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The counter reloads from 0 on its first tick; start after that so
        // the first reading is not a spurious full period.
        while syst.cvr.read() == 0 {}
        let mut clock = Clock {
            syst,
            ticks_per_kilo_insn: 1,
        };
        clock.ticks_per_kilo_insn = clock.calibrate();
        clock
    }

    /// Ticks since start (wraps included).
    pub fn ticks(&self) -> u64 {
        // Read wraps around the counter so a wrap in between is not lost.
        loop {
            let before = SYSTICK_WRAPS.load(Ordering::Relaxed);
            let current = self.syst.cvr.read() & SYSTICK_RELOAD;
            if SYSTICK_WRAPS.load(Ordering::Relaxed) == before {
                return u64::from(before) * u64::from(SYSTICK_RELOAD + 1)
                    + u64::from(SYSTICK_RELOAD - current);
            }
        }
    }

    /// SysTick ticks per 1,000 instructions.
    pub fn ticks_per_kilo_insn(&self) -> u64 {
        self.ticks_per_kilo_insn
    }

    /// Instructions in `ticks` SysTick ticks.
    pub fn instructions(&self, ticks: u64) -> u64 {
        ticks * 1000 / self.ticks_per_kilo_insn
    }

    /// SysTick ticks per 1,000 instructions, measured on a loop of exactly
    /// known length (`subs` + `bne` per iteration).
    fn calibrate(&self) -> u64 {
        const ITERATIONS: u32 = 1_000_000;
        let t0 = self.ticks();
        let mut n = ITERATIONS;
        // SAFETY: a register-only countdown loop; touches no memory.
        unsafe {
            core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) n, options(nomem, nostack));
        }
        let _ = n;
        let t1 = self.ticks();
        // 2 instructions per iteration.
        ((t1 - t0) * 1000)
            .div_ceil(2 * u64::from(ITERATIONS))
            .max(1)
    }
}
