//! Cortex-M4 example: links `tdquant-core`, parses the `.tdq` model embedded
//! in flash (zero-copy, no allocator), decodes every packed tensor and reports
//! a CRC-32 of its codes over defmt. The host computes the same lines from
//! the same file (`scripts/firmware-check.sh` compares them).
//!
//! Exit status (through semihosting, so QEMU's own exit code carries it):
//! 0 when every section decoded, 1 when the model was rejected.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use defmt_semihosting as _;
use tdquant_core::crc32::Crc32;
use tdquant_core::{Container, Dtype};
use tdquant_firmware_example::exit;

/// The model, placed in flash by the linker (path chosen at build time).
static MODEL: &[u8] = include_bytes!(env!("TDQ_MODEL_PATH"));

#[entry]
fn main() -> ! {
    let ok = report(MODEL);
    exit(ok)
}

/// Prints one `TDQ …` line per packed section; false if the model is bad.
fn report(model: &[u8]) -> bool {
    let container = match Container::parse(model) {
        Ok(c) => c,
        Err(e) => {
            defmt::error!("TDQ model rejected: {}", e);
            return false;
        }
    };
    defmt::info!(
        "TDQ model bytes={=usize} crc32={=u32}",
        model.len(),
        tdquant_core::crc32(model)
    );
    let mut packed_sections = 0u32;
    for section in container.sections() {
        if section.dtype() != Dtype::Packed {
            continue;
        }
        let matrix = match section.as_packed() {
            Ok(m) => m,
            Err(e) => {
                defmt::error!("TDQ section {=str}: {}", section.name(), e);
                return false;
            }
        };
        let layout = matrix.layout();
        let mut crc = Crc32::new();
        for row in 0..layout.rows {
            let Some(codes) = matrix.row_codes(row) else {
                defmt::error!(
                    "TDQ section {=str}: row {=u32} missing",
                    section.name(),
                    row
                );
                return false;
            };
            for code in codes {
                crc = crc.update(&[code]);
            }
        }
        defmt::info!(
            "TDQ section={=str} bits={=u8} rows={=u32} cols={=u32} codes_crc32={=u32}",
            section.name(),
            layout.bits.bits(),
            layout.rows,
            layout.cols,
            crc.finalize()
        );
        packed_sections += 1;
    }
    defmt::info!("TDQ done packed_sections={=u32}", packed_sections);
    true
}
