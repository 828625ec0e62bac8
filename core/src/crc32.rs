//! CRC-32/IEEE (the zlib/PNG/Ethernet CRC), used to checksum `.tdq` files.
//!
//! Parameters: reflected polynomial `0xEDB8_8320`, initial value and final
//! XOR `0xFFFF_FFFF`. Check value: `crc32(b"123456789") == 0xCBF4_3926`.
//!
//! The 1 KiB lookup table is built at compile time, so it lives in flash on a
//! microcontroller and costs no start-up time or RAM.

/// Reflected generator polynomial of CRC-32/IEEE.
pub const POLYNOMIAL: u32 = 0xEDB8_8320;

const TABLE: [u32; 256] = build_table();

// Evaluated only at compile time: an out-of-range index or overflow here
// would be a build error, never a run-time panic.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut byte = 0usize;
    while byte < 256 {
        // `byte < 256`, so the cast is lossless.
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

/// One byte of table-driven CRC.
#[allow(clippy::indexing_slicing)] // the index is masked to 0..=255 and TABLE has 256 entries
const fn step(state: u32, byte: u8) -> u32 {
    let lookup = ((state ^ byte as u32) & 0xFF) as usize;
    (state >> 8) ^ TABLE[lookup]
}

/// Streaming CRC-32/IEEE state, for checksumming data that is not contiguous
/// (the container checksums its bytes with the CRC field replaced by zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crc32 {
    /// Running register, before the final XOR.
    state: u32,
}

impl Crc32 {
    /// A fresh state (nothing hashed yet).
    pub const fn new() -> Self {
        Self { state: 0xFFFF_FFFF }
    }

    /// Feeds `data` into the checksum.
    pub const fn update(mut self, data: &[u8]) -> Self {
        let mut rest = data;
        while let Some((&byte, tail)) = rest.split_first() {
            self.state = step(self.state, byte);
            rest = tail;
        }
        self
    }

    /// Feeds `count` zero bytes into the checksum without needing a buffer.
    pub const fn update_zeros(mut self, count: usize) -> Self {
        let mut remaining = count;
        while let Some(next) = remaining.checked_sub(1) {
            self.state = step(self.state, 0);
            remaining = next;
        }
        self
    }

    /// The checksum of everything fed so far.
    pub const fn finalize(self) -> u32 {
        self.state ^ 0xFFFF_FFFF
    }
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

/// CRC-32/IEEE of `data`.
pub const fn crc32(data: &[u8]) -> u32 {
    Crc32::new().update(data).finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [0, 1, 7, 500, 999, 1000] {
            let (a, b) = data.split_at(split);
            assert_eq!(Crc32::new().update(a).update(b).finalize(), crc32(&data));
        }
    }

    #[test]
    fn zeros_match_explicit_zeros() {
        let zeros = [0u8; 37];
        assert_eq!(
            Crc32::new().update(b"ab").update_zeros(37).finalize(),
            Crc32::new().update(b"ab").update(&zeros).finalize()
        );
    }

    #[test]
    fn bitwise_reference_agrees() {
        fn bitwise(data: &[u8]) -> u32 {
            let mut crc = 0xFFFF_FFFFu32;
            for &byte in data {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    let mask = (crc & 1).wrapping_neg();
                    crc = (crc >> 1) ^ (POLYNOMIAL & mask);
                }
            }
            !crc
        }
        let data: Vec<u8> = (0u32..4096)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 2, 3, 15, 16, 255, 4096] {
            assert_eq!(crc32(&data[..len]), bitwise(&data[..len]), "len {len}");
        }
    }
}
