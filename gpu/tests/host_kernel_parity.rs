//! CPU parity of the kernels' whole-tensor loops (`HostKernelBackend`: the
//! CUDA kernels with the thread index turned into a loop counter) against
//! the `CpuReference` oracle, results and errors, with `==`.

mod common;

use tdquant_gpu::HostKernelBackend;

#[test]
fn unpack_matches_core() {
    common::suite::unpack(&HostKernelBackend::default(), 1_000);
}

#[test]
fn unpack_extremes_match_core() {
    common::suite::unpack_extremes(&HostKernelBackend::default());
}

#[test]
fn requantize_matches_core() {
    common::suite::requant(&HostKernelBackend::default(), 1_000, 300);
}

#[test]
fn requantize_extremes_match_core() {
    common::suite::requant_extremes(&HostKernelBackend::default());
}

#[test]
fn unpack_large_matches_core() {
    common::suite::unpack_large(&HostKernelBackend::default());
}

#[test]
fn requantize_large_matches_core() {
    common::suite::requant_large(&HostKernelBackend::default());
}
