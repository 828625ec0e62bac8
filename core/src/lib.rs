//! `tdquant-core`: the `no_std`, allocation-free integer core of tdquant, a
//! Rust implementation of 2DQuant low-bit post-training quantization of
//! SwinIR-light, carried to integer-only inference that is bit-identical on
//! CPU, CUDA and Cortex-M.
//!
//! This crate is the oracle every backend is tested against with `==`, so
//! every number format and every rounding rule is defined here, once.
//!
//! # Modules
//!
//! * [`quant`]: the 2DQuant quantizer (`clamp`, `round_ties_even((c − l)/s)`,
//!   `s·r + l`) reproduced bit-for-bit in `f32`, as torch computes it.
//! * [`requant`]: integer requantization with a Q0.31 multiplier and a
//!   shift, a named [`RoundingMode`], and a documented error bound.
//! * [`packed`]: the packed 2/3/4/8-bit code layout (little-endian `u32`
//!   words, element 0 in the low bits, 3-bit codes never crossing a word)
//!   and zero-copy views over it.
//! * [`container`]: the `.tdq` model file (header, section table, aligned
//!   payloads, CRC-32), parsed zero-copy and written without allocation.
//! * [`crc32`](mod@crc32): CRC-32/IEEE with a compile-time table.
//! * [`int`]: the integer-only SwinIR-light (operators, the validated
//!   [`IntModel`](int::IntModel), whole-image and tiled execution); the
//!   contract is `docs/integer-semantics.md`.
//!
//! # Data path
//!
//! ```text
//!  host (std)                                   any backend (no_std ok)
//!  ─────────                                    ───────────────────────
//!  f32 weights + learned (l, u, b)
//!     │ QuantParams::encode        (quant)
//!     ▼
//!  codes 0..=2^b−1 (one per byte)
//!     │ pack_codes                 (packed)
//!     ▼
//!  packed words ──┐
//!  i32 biases,    ├─ ContainerWriter::write ──► .tdq bytes ──► Container::parse
//!  multipliers …  ┘                 (container)       (flash / file)   │
//!                                                                       ▼
//!                                          Section::as_packed → PackedMatrix
//!                                          integer GEMM accumulators (i32)
//!                                                  │ Requantizer::apply_i32 (requant)
//!                                                  ▼
//!                                          next layer's integer input
//! ```
//!
//! # Guarantees
//!
//! * `no_std`, no allocator, `forbid(unsafe_code)`.
//! * No panics on any input: every fallible operation returns a `Result`
//!   with a specific error enum (each implements `Display` and
//!   `core::error::Error`); arithmetic is checked or proven not to
//!   overflow (the crate is tested with overflow checks on in release).
//! * Optional `defmt` feature: `defmt::Format` for every public type,
//!   derived where the derived text serves and hand-written in one module
//!   where it does not.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Mechanical enforcement of the no-panic rule for library code; tests may
// index and unwrap freely.
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[macro_use]
mod display;

pub mod backend;
pub mod container;
pub mod crc32;
#[cfg(feature = "defmt")]
mod defmt_impls;
pub mod int;
pub mod packed;
pub mod quant;
pub mod requant;

pub use container::{
    Container, ContainerError, ContainerWriter, Dtype, DtypeError, Element, Elements, Section,
    SectionError, SectionSpec, Sections, ShapeIssue,
};
pub use crc32::crc32;
pub use packed::{
    get_code, pack_codes, unpack_codes, PackError, PackedLayout, PackedMatrix, PackedWeights2,
    PackedWeights3, PackedWeights4, PackedWeights8, PackedWord, RowCodes, RowWords,
    TypedPackedMatrix,
};
pub use quant::{BitWidth, BitWidthError, QuantParams, QuantParamsError};
pub use requant::{apply_parts, apply_parts_i32, RequantError, Requantizer, RoundingMode};
