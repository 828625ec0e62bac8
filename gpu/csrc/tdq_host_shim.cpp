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
#include "tdq_swinir.cu"
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

/* ---- tdq_swinir.cuh per-element functions (gpu/tests/swinir_op_parity.rs) ---- */

int64_t tdq_host_rshift_round(int64_t v, uint32_t k) { return tdq_rshift_round(v, k); }

uint32_t tdq_host_exp2_neg_q31(uint64_t d) { return tdq_exp2_neg_q31(d); }

uint64_t tdq_host_isqrt_u128(uint64_t hi, uint64_t lo) {
  return (uint64_t)tdq_isqrt_u128(((tdq_u128)hi << 64) | (tdq_u128)lo);
}

void tdq_host_ln_normalize(const int32_t *x, uint32_t n, int64_t eps_t, int32_t *xhat) {
  tdq_ln_normalize(x, n, eps_t, xhat);
}

int64_t tdq_host_ln_output(const tdq_ln_params *ln, uint32_t c, int32_t xhat) {
  return tdq_ln_output(ln, c, xhat);
}

uint8_t tdq_host_fixed_quant_code(const tdq_fixed_quant *fq, int64_t y) {
  return tdq_fixed_quant_code(fq, y);
}

int64_t tdq_host_linear_t(const uint8_t *x, uint32_t k, const tdq_packed_matrix *w, uint32_t row,
                          const tdq_code_affine *aff, int32_t c) {
  return tdq_linear_t(x, k, w, row, aff, c);
}

uint8_t tdq_host_gelu_code(int64_t t, const int64_t *hi, const int64_t *lo, uint32_t levels) {
  return tdq_gelu_code(t, hi, lo, levels);
}

void tdq_host_softmax_row(const uint8_t *q, const uint8_t *k, uint32_t stride, uint32_t col,
                          const tdq_qk_params *qk, const int16_t *rpb, const uint8_t *labels,
                          const int64_t *thresholds, uint32_t levels, uint32_t i, uint8_t *out) {
  tdq_softmax_row(q, k, stride, col, qk, rpb, labels, thresholds, levels, i, out);
}

void tdq_host_av_row(const uint8_t *probs_row, const uint8_t *v, uint32_t stride, uint32_t col,
                     const tdq_av_params *av, uint32_t levels, uint8_t *out) {
  tdq_av_row(probs_row, v, stride, col, av, levels, out);
}

int64_t tdq_host_conv_output(const int32_t *input, uint32_t h, uint32_t w, uint32_t cin,
                             uint32_t y, uint32_t x, const int16_t *w_row, int32_t multiplier,
                             int32_t shift, int32_t bias) {
  return tdq_conv_output(input, h, w, cin, y, x, w_row, multiplier, shift, bias);
}

void tdq_host_window_token(uint32_t wy, uint32_t wx, uint32_t t, uint32_t hp, uint32_t wp,
                           uint32_t shifted, uint32_t *pos, uint8_t *label) {
  tdq_window_token(wy, wx, t, hp, wp, shifted, pos, label);
}

/* sizeof of every struct shared with Rust, in a fixed order (gpu/src/swinir.rs). */
uint32_t tdq_host_struct_size(uint32_t which) {
  switch (which) {
    case 0: return sizeof(tdq_ln_params);
    case 1: return sizeof(tdq_fixed_quant);
    case 2: return sizeof(tdq_code_affine);
    case 3: return sizeof(tdq_qk_params);
    case 4: return sizeof(tdq_av_params);
    case 5: return sizeof(tdq_block_params);
    case 6: return sizeof(tdq_packed_matrix);
    case 7: return sizeof(tdq_input_args);
    case 8: return sizeof(tdq_conv_args);
    case 9: return sizeof(tdq_ln_stream_args);
    case 10: return sizeof(tdq_to_i16_args);
    case 11: return sizeof(tdq_copy_args);
    case 12: return sizeof(tdq_block_args);
    case 13: return sizeof(tdq_mlp_args);
    default: return 0;
  }
}

/* ---- tdq_swinir.cu kernels under the emulated launch ----
   `kernel` is the index in gpu/src/swinir.rs `Kernel`; `args` points at the
   kernel's argument struct. Returns 0, or 1 for an unknown kernel. */
uint32_t tdq_emu_swinir(uint32_t kernel, uint32_t grid, uint32_t block, const void *args) {
  switch (kernel) {
    case 0: tdq_emu_launch(grid, block, [&] { tdq_k_input(*(const tdq_input_args *)args); }); return 0;
    case 1: tdq_emu_launch(grid, block, [&] { tdq_k_conv3x3(*(const tdq_conv_args *)args); }); return 0;
    case 2: tdq_emu_launch(grid, block, [&] { tdq_k_ln_stream(*(const tdq_ln_stream_args *)args); }); return 0;
    case 3: tdq_emu_launch(grid, block, [&] { tdq_k_to_i16(*(const tdq_to_i16_args *)args); }); return 0;
    case 4: tdq_emu_launch(grid, block, [&] { tdq_k_copy(*(const tdq_copy_args *)args); }); return 0;
    case 5: tdq_emu_launch(grid, block, [&] { tdq_k_attn_in(*(const tdq_block_args *)args); }); return 0;
    case 6: tdq_emu_launch(grid, block, [&] { tdq_k_linear(*(const tdq_block_args *)args); }); return 0;
    case 7: tdq_emu_launch(grid, block, [&] { tdq_k_softmax(*(const tdq_block_args *)args); }); return 0;
    case 8: tdq_emu_launch(grid, block, [&] { tdq_k_av(*(const tdq_block_args *)args); }); return 0;
    case 9: tdq_emu_launch(grid, block, [&] { tdq_k_attn_fused(*(const tdq_block_args *)args); }); return 0;
    case 10: tdq_emu_launch(grid, block, [&] { tdq_k_mlp_in(*(const tdq_block_args *)args); }); return 0;
    case 11: tdq_emu_launch(grid, block, [&] { tdq_k_mlp_fused(*(const tdq_mlp_args *)args); }); return 0;
    default: return 1;
  }
}

} /* extern "C" */
