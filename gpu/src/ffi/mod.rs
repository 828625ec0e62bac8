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
