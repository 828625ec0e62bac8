//! Parity firmware: every DSP kernel of `tdquant_firmware_example::kernels`
//! against the core scalar oracle, on `EDGES` hand-picked and
//! `TDQ_PARITY_CASES` (default 1,000) seeded random cases per kernel, on the
//! Cortex-M4 itself (QEMU). Mismatches are reported over defmt; the exit
//! status is 0 only when every case of every kernel agreed.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_semihosting as _;
use tdquant_firmware_example::kernels::DspKernels;
use tdquant_firmware_example::parity::{cases, Rng};
use tdquant_firmware_example::{exit, parse_u32_or};

/// Random cases per kernel.
const CASES: u32 = parse_u32_or(option_env!("TDQ_PARITY_CASES"), 1000);
/// Seed of the case generator.
const SEED: u32 = parse_u32_or(option_env!("TDQ_PARITY_SEED"), 20261204);

type Check = fn(&mut DspKernels, &mut Rng, u32) -> bool;

#[entry]
fn main() -> ! {
    let kernels: [(&str, Check); 10] = [
        ("linear", cases::linear),
        ("linear_codes", cases::linear_codes),
        ("linear_stream", cases::linear_stream),
        ("softmax", cases::softmax),
        ("av", cases::av),
        ("conv", cases::conv),
        ("normalize", cases::normalize),
        ("exp2", cases::exp2),
        ("rho", cases::rho),
        ("linear_gelu", cases::linear_gelu),
    ];
    // One instance for every case: the kernels keep their buffers between
    // calls, so a case would see anything a previous one left behind.
    let mut dsp = DspKernels::new();
    let mut failed = 0u32;
    for (index, (name, check)) in kernels.iter().enumerate() {
        let mut rng = Rng::new(u64::from(SEED) << 8 | index as u64);
        let total = cases::EDGES + CASES;
        let mut mismatches = 0u32;
        for case in 0..total {
            if !check(&mut dsp, &mut rng, case) {
                mismatches += 1;
            }
        }
        defmt::info!(
            "TDQ parity kernel={=str} cases={=u32} (edges {=u32} + random {=u32}, seed {=u32}) mismatches={=u32}",
            name,
            total,
            cases::EDGES,
            CASES,
            SEED,
            mismatches
        );
        failed += mismatches;
    }
    if failed == 0 {
        defmt::info!("TDQ parity OK");
    } else {
        defmt::error!("TDQ parity FAILED: {=u32} mismatching cases", failed);
    }
    exit(failed == 0)
}
