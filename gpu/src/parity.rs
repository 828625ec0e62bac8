//! Bit-for-bit comparison of two backends' upscaled images, as
//! `tdquant parity` and the device check (`gpu/examples/gpu_parity.rs`)
//! report it: SHA-256 of both outputs and the first differing pixel.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The first byte where two RGB outputs differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelDiff {
    /// Output row.
    pub y: usize,
    /// Output column.
    pub x: usize,
    /// Channel (0 = R).
    pub channel: usize,
    /// The reference's value.
    pub reference: u8,
    /// The other backend's value.
    pub other: u8,
}

/// The outcome for one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageParity {
    /// SHA-256 of the reference output.
    pub sha_reference: String,
    /// SHA-256 of the other backend's output.
    pub sha_other: String,
    /// The first difference (`None` when the outputs are identical).
    pub first_diff: Option<PixelDiff>,
}

impl ImageParity {
    /// Whether the outputs are identical.
    pub fn matches(&self) -> bool {
        self.first_diff.is_none() && self.sha_reference == self.sha_other
    }
}

/// Compares two interleaved RGB outputs of width `out_w` pixels.
pub fn compare(reference: &[u8], other: &[u8], out_w: usize) -> ImageParity {
    let first_diff = reference
        .iter()
        .zip(other)
        .position(|(a, b)| a != b)
        .map(|i| PixelDiff {
            y: i / 3 / out_w.max(1),
            x: i / 3 % out_w.max(1),
            channel: i % 3,
            reference: reference[i],
            other: other[i],
        });
    ImageParity {
        sha_reference: sha256_hex(reference),
        sha_other: sha256_hex(other),
        first_diff,
    }
}

impl core::fmt::Display for PixelDiff {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "first difference at output pixel (y={}, x={}) channel {}: reference {} vs {}",
            self.y,
            self.x,
            ["R", "G", "B"][self.channel.min(2)],
            self.reference,
            self.other
        )
    }
}
