//! Every `unsafe` block of the crate lives under this module (the crate root
//! denies `unsafe_code`):
//!
//! - [`host`]: `extern "C"` calls into the host-compiled kernel arithmetic
//!   (`gpu/csrc/tdq_host_shim.cpp`), behind safe wrappers that check every
//!   length and index the C side relies on;
//! - `cuda` (feature `cuda`): kernel launches through `cust` and the
//!   `DeviceCopy` impl of the kernel parameter struct.
#![allow(unsafe_code)]

#[cfg(feature = "cuda")]
pub(crate) mod cuda;
pub(crate) mod host;

use crate::swinir::{
    AvParamsC, BlockArgs, BlockParamsC, CodeAffineC, ConvArgs, CopyArgs, FixedQuantC, InputArgs,
    LnParamsC, LnStreamArgs, MlpArgs, PackedMatrixC, QkParamsC, ToI16Args,
};

/// Plain-old-data that may be viewed as bytes: `#[repr(C)]`, integer fields
/// only, no implicit padding.
///
/// # Safety
/// Implementors must have no padding bytes and accept every bit pattern.
pub(crate) unsafe trait Pod: Copy {}

// SAFETY: every struct below is #[repr(C)] of integers and integer arrays,
// with explicit `reserved` fields where alignment would otherwise pad; the
// const size assertions in swinir.rs equal the sum of the field sizes.
unsafe impl Pod for LnParamsC {}
unsafe impl Pod for FixedQuantC {}
unsafe impl Pod for CodeAffineC {}
unsafe impl Pod for QkParamsC {}
unsafe impl Pod for AvParamsC {}
unsafe impl Pod for BlockParamsC {}
unsafe impl Pod for PackedMatrixC {}
unsafe impl Pod for InputArgs {}
unsafe impl Pod for ConvArgs {}
unsafe impl Pod for LnStreamArgs {}
unsafe impl Pod for ToI16Args {}
unsafe impl Pod for CopyArgs {}
unsafe impl Pod for BlockArgs {}
unsafe impl Pod for MlpArgs {}
unsafe impl Pod for u8 {}
unsafe impl Pod for i16 {}
unsafe impl Pod for i32 {}
unsafe impl Pod for u32 {}

/// The bytes of a slice of [`Pod`] values.
pub(crate) fn pod_bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: T is Pod (no padding, every byte initialised); the length is
    // the slice's size in bytes, and u8 has alignment 1.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), core::mem::size_of_val(v)) }
}
