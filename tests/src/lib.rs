//! Shared helpers for the workspace tests, and the demo model the firmware
//! example embeds.
//!
//! The demo model (`tests/fixtures/demo.tdq`) is small and fully determined
//! by [`demo_model`]: a packed `[rows, cols]` code matrix for every bit width
//! plus an `i32` section, with codes from a fixed-seed xorshift generator.
//! Regenerate it with
//! `cargo run --release -p tdquant-tests --example demo_fixture -- write tests/fixtures/demo.tdq`;
//! the `demo_fixture` test fails when the committed file is stale.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use tdquant_core::{
    pack_codes, unpack_codes, BitWidth, Container, ContainerWriter, Dtype, PackedLayout,
    SectionSpec,
};

/// Deterministic xorshift64* generator (no dependency, stable across platforms).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed (zero is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The packed sections of the demo model: name, bit width, rows, cols.
/// Column counts straddle the codes-per-word boundaries on purpose.
pub const DEMO_PACKED: &[(&str, BitWidth, u32, u32)] = &[
    ("demo.w2", BitWidth::B2, 5, 33),
    ("demo.w3", BitWidth::B3, 7, 31),
    ("demo.w4", BitWidth::B4, 6, 60),
    ("demo.w8", BitWidth::B8, 3, 17),
];

/// Builds the demo `.tdq` model bytes.
pub fn demo_model() -> Vec<u8> {
    let mut rng = XorShift::new(0x7D9_2D0A);
    let mut payloads = Vec::new();
    for &(_, bits, rows, cols) in DEMO_PACKED {
        let layout = PackedLayout::new(bits, rows, cols);
        let max = u64::from(bits.levels());
        let codes: Vec<u8> = (0..rows * cols)
            .map(|_| (rng.next_u64() % (max + 1)) as u8)
            .collect();
        let mut packed = vec![0u8; layout.byte_len().expect("demo layout fits")];
        pack_codes(layout, &codes, &mut packed).expect("demo codes are in range");
        payloads.push(packed);
    }
    let bias: Vec<u8> = [-7i32, 0, 123_456, i32::MIN, i32::MAX, 42]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let shapes: Vec<[u32; 2]> = DEMO_PACKED.iter().map(|&(_, _, r, c)| [r, c]).collect();
    let mut specs: Vec<SectionSpec<'_>> = DEMO_PACKED
        .iter()
        .zip(&payloads)
        .zip(&shapes)
        .map(|((&(name, bits, _, _), data), shape)| SectionSpec::packed(name, bits, shape, data))
        .collect();
    specs.push(SectionSpec::new("demo.bias", Dtype::I32, &[6], &bias));
    let len = ContainerWriter::required_len(&specs).expect("demo specs are valid");
    let mut out = vec![0u8; len];
    let written = ContainerWriter::write(&specs, &mut out).expect("demo specs are valid");
    out.truncate(written);
    out
}

/// The lines the firmware must print for `model` (its `TDQ …` log lines),
/// computed on the host through an independent path: whole-matrix
/// [`unpack_codes`] and one CRC over the buffer, where the firmware streams
/// codes row by row.
pub fn expected_firmware_lines(model: &[u8]) -> Result<Vec<String>, String> {
    let container = Container::parse(model).map_err(|e| format!("model rejected: {e}"))?;
    let mut lines = vec![format!(
        "TDQ model bytes={} crc32={}",
        model.len(),
        tdquant_core::crc32(model)
    )];
    let packed = container
        .sections()
        .filter(|section| section.dtype() == Dtype::Packed);
    let mut count = 0u32;
    for section in packed {
        let shape = section.shape();
        let bits = section.bit_width().ok_or("packed section without bits")?;
        let layout = PackedLayout::new(bits, shape[0], shape[1]);
        let mut codes = vec![0u8; layout.element_count().map_err(|e| e.to_string())?];
        unpack_codes(layout, section.data(), &mut codes).map_err(|e| e.to_string())?;
        lines.push(format!(
            "TDQ section={} bits={} rows={} cols={} codes_crc32={}",
            section.name(),
            bits.bits(),
            layout.rows,
            layout.cols,
            tdquant_core::crc32(&codes)
        ));
        count += 1;
    }
    lines.push(format!("TDQ done packed_sections={count}"));
    Ok(lines)
}
