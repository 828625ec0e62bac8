//! Helpers shared by the core integration tests: a deterministic generator
//! and the builders and byte surgery the container tests use.
// Each test binary uses a subset.
#![allow(dead_code)]

use tdquant_core::{
    crc32, pack_codes, BitWidth, ContainerWriter, Dtype, PackedLayout, SectionSpec,
};

/// Deterministic xorshift64 generator, for dense sweeps that need no
/// proptest runner. The state must be non-zero.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n` (modulo bias is irrelevant for tests).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Byte offset of the CRC field in the header.
pub const CRC_AT: usize = 20;
/// Byte offset of the file length field in the header.
pub const FILE_LEN_AT: usize = 16;

/// Recomputes the header CRC of a (possibly mutated) file in place, so a
/// test reaches the structural check it targets instead of stopping at
/// `ChecksumMismatch`.
pub fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() < CRC_AT + 4 {
        return;
    }
    bytes[CRC_AT..CRC_AT + 4].fill(0);
    let crc = crc32(bytes);
    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Sets the header file length to the actual length, then fixes the CRC.
pub fn fix_len_and_crc(bytes: &mut [u8]) {
    if bytes.len() >= FILE_LEN_AT + 4 {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        bytes[FILE_LEN_AT..FILE_LEN_AT + 4].copy_from_slice(&len.to_le_bytes());
    }
    fix_crc(bytes);
}

/// Writes `specs` into a fresh vector of exactly the required length.
pub fn write_vec(specs: &[SectionSpec<'_>]) -> Vec<u8> {
    let len = ContainerWriter::required_len(specs).expect("valid specs");
    let mut out = vec![0u8; len];
    assert_eq!(ContainerWriter::write(specs, &mut out), Ok(len));
    out
}

/// Owned data for one section, from which a `SectionSpec` is borrowed.
#[derive(Clone, Debug)]
pub struct OwnedSection {
    pub name: String,
    pub dtype: Dtype,
    pub bits: u8,
    pub shape: Vec<u32>,
    pub data: Vec<u8>,
}

impl OwnedSection {
    pub fn spec(&self) -> SectionSpec<'_> {
        SectionSpec {
            name: &self.name,
            dtype: self.dtype,
            bits: self.bits,
            shape: &self.shape,
            data: &self.data,
        }
    }

    pub fn packed(name: &str, bits: BitWidth, rows: u32, cols: u32, codes: &[u8]) -> Self {
        let layout = PackedLayout::new(bits, rows, cols);
        let mut data = vec![0u8; layout.byte_len().unwrap()];
        pack_codes(layout, codes, &mut data).unwrap();
        Self {
            name: name.to_owned(),
            dtype: Dtype::Packed,
            bits: bits.bits(),
            shape: vec![rows, cols],
            data,
        }
    }

    pub fn plain(name: &str, dtype: Dtype, shape: &[u32], data: Vec<u8>) -> Self {
        Self {
            name: name.to_owned(),
            dtype,
            bits: 0,
            shape: shape.to_vec(),
            data,
        }
    }
}

/// The reference file used by the hand-written error tests:
///
/// ```text
///   0..32   header
///  32..224  3 entries
/// 224..248  "w": packed 3-bit [3, 11] (2 words per row)
/// 248..256  zero padding
/// 256..268  "b": i32 [3]
/// 268..272  zero padding
/// 272..276  "s": f32 scalar (rank 0)
/// ```
pub fn reference_sections() -> Vec<OwnedSection> {
    let codes: Vec<u8> = (0..33).map(|i| (i % 8) as u8).collect();
    let bias: Vec<u8> = [1i32, -2, 300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    vec![
        OwnedSection::packed("w", BitWidth::B3, 3, 11, &codes),
        OwnedSection::plain("b", Dtype::I32, &[3], bias),
        OwnedSection::plain("s", Dtype::F32, &[], 0.25f32.to_le_bytes().to_vec()),
    ]
}

pub fn reference_file() -> Vec<u8> {
    let owned = reference_sections();
    let specs: Vec<SectionSpec<'_>> = owned.iter().map(OwnedSection::spec).collect();
    write_vec(&specs)
}

/// Offset of section-table entry `index`.
pub const fn entry(index: usize) -> usize {
    32 + 64 * index
}

pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}
