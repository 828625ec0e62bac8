/*
 * tdq_unpack.cu — packed 2/3/4/8-bit codes → one byte per code.
 *
 * The per-word work (padding check, code extraction) is tdq_unpack_word in
 * tdq_arith.cuh, the function the CPU parity tests prove equal to
 * core::packed; this file only maps words to threads.
 */
#include "tdq_arith.cuh"

/*
 * One thread per packed word, grid-stride.
 *
 *   packed     rows · words_per_row little-endian 32-bit words (byte buffer,
 *              4-byte aligned: a cuMemAlloc pointer; rows start on words)
 *   out        rows · cols bytes, row-major
 *   bits       2, 3, 4 or 8
 *   first_bad  initialised to ~0 by the caller; receives the smallest
 *              row-major index of a word with a padding bit set, which is
 *              the word core's PackError::NonZeroPadding reports. The output
 *              is then partial and must be discarded.
 */
extern "C" __global__ void tdq_unpack_codes(const uint8_t *__restrict__ packed,
                                            uint8_t *__restrict__ out, uint32_t rows,
                                            uint32_t cols, uint32_t bits,
                                            unsigned long long *__restrict__ first_bad) {
  const uint64_t words_per_row = tdq_words_per_row(bits, cols);
  const uint64_t total = (uint64_t)rows * words_per_row;
  const uint32_t *words = (const uint32_t *)packed;
  const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
  for (uint64_t w = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; w < total; w += stride) {
    const uint64_t row = w / words_per_row;
    const uint32_t word_in_row = (uint32_t)(w - row * words_per_row);
    if (tdq_unpack_word(words[w], bits, cols, word_in_row, out + row * cols) != 0) {
      atomicMin(first_bad, (unsigned long long)w);
    }
  }
}
