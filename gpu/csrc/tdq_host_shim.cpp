/*
 * tdq_host_shim.cpp — the CUDA kernels compiled for the host CPU, behind
 * extern "C" wrappers for Rust FFI (gpu/src/ffi/host.rs). Built by
 * gpu/build.rs with the system C++ compiler.
 *
 * Two layers are exported:
 *  - the per-element functions of tdq_arith.cuh (tdq_host_*), which the CPU
 *    parity tests compare with the tdquant-core oracle one value at a time;
 *  - the kernels themselves (the .cu sources, included below) under an
 *    emulated launch (cuda_host_emu.h; tdq_emu_*), which the
 *    HostKernelBackend runs, so CI also covers the kernels' index
 *    arithmetic and grid-stride loops. On a GPU only the driver plumbing
 *    (copies, launch parameters) and the hardware are left to check.
 *
 * No C++ runtime is used (no exceptions, RTTI or library calls), so the
 * static library links without libstdc++.
 */
#include "tdq_arith.cuh"
#include "cuda_host_emu.h"

/* The kernels, compiled as host functions. */
#include "tdq_requant.cu"
#include "tdq_unpack.cu"

extern "C" {

int64_t tdq_host_apply_parts_i32(int32_t acc, int32_t multiplier, int32_t total_shift,
                                 uint32_t rounding) {
  return tdq_apply_parts_i32(acc, multiplier, total_shift, rounding);
}

int64_t tdq_host_apply_parts(int64_t acc, int32_t multiplier, int32_t total_shift,
                             uint32_t rounding) {
  return tdq_apply_parts(acc, multiplier, total_shift, rounding);
}

int64_t tdq_host_requant_i32(tdq_requantizer rq, int32_t acc) { return tdq_requant_i32(rq, acc); }

int64_t tdq_host_requant_i64(tdq_requantizer rq, int64_t acc) { return tdq_requant_i64(rq, acc); }

int32_t tdq_host_requant_i32_clamp(tdq_requantizer rq, int32_t acc, int32_t min_v,
                                   int32_t max_v) {
  return tdq_requant_i32_clamp(rq, acc, min_v, max_v);
}

uint32_t tdq_host_codes_per_word(uint32_t bits) { return tdq_codes_per_word(bits); }

uint32_t tdq_host_words_per_row(uint32_t bits, uint32_t cols) {
  return tdq_words_per_row(bits, cols);
}

uint32_t tdq_host_word_code(uint32_t word, uint32_t bits, uint32_t slot) {
  return tdq_word_code(word, bits, slot);
}

uint32_t tdq_host_padding_mask(uint32_t bits, uint32_t used) {
  return tdq_padding_mask(bits, used);
}

uint32_t tdq_host_row_word_padding(uint32_t bits, uint32_t cols, uint32_t word_in_row) {
  return tdq_row_word_padding(bits, cols, word_in_row);
}

uint32_t tdq_host_load_le32(const uint8_t *p) { return tdq_load_le32(p); }

/* tdq_unpack_codes<<<grid, block>>>; `words` must be 4-byte aligned.
   Returns the kernel's first_bad (UINT64_MAX when all padding is zero). */
uint64_t tdq_emu_unpack_codes(uint32_t grid, uint32_t block, const uint8_t *words, uint8_t *out,
                              uint32_t rows, uint32_t cols, uint32_t bits) {
  unsigned long long first_bad = ~0ull;
  tdq_emu_launch(grid, block,
                 [&] { tdq_unpack_codes(words, out, rows, cols, bits, &first_bad); });
  return first_bad;
}

void tdq_emu_requantize_i32(uint32_t grid, uint32_t block, const int32_t *acc, int64_t *out,
                            uint64_t n, tdq_requantizer rq) {
  tdq_emu_launch(grid, block, [&] { tdq_requantize_i32(acc, out, n, rq); });
}

void tdq_emu_requantize_i32_clamp(uint32_t grid, uint32_t block, const int32_t *acc,
                                  int32_t *out, uint64_t n, tdq_requantizer rq, int32_t min_v,
                                  int32_t max_v) {
  tdq_emu_launch(grid, block,
                 [&] { tdq_requantize_i32_clamp(acc, out, n, rq, min_v, max_v); });
}

void tdq_emu_requantize_i64(uint32_t grid, uint32_t block, const int64_t *acc, int64_t *out,
                            uint64_t n, tdq_requantizer rq) {
  tdq_emu_launch(grid, block, [&] { tdq_requantize_i64(acc, out, n, rq); });
}

} /* extern "C" */
