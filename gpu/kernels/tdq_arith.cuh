/*
 * tdq_arith.cuh — the per-element integer arithmetic of the tdquant kernels.
 *
 * Every function here is a transcription of the scalar oracle in the
 * `tdquant-core` crate and must return exactly the same integers:
 *
 *   tdq_apply_parts_i32      core::requant::apply_parts_i32
 *   tdq_apply_parts          core::requant::apply_parts          (i64 accumulator)
 *   tdq_requant_i32          Requantizer::apply_i32
 *   tdq_requant_i64          Requantizer::apply_i64
 *   tdq_requant_i32_clamp    Requantizer::apply_i32_saturating_to
 *   tdq_word_code            PackedWord::code               (slot < codes per word)
 *   tdq_padding_mask         PackedWord::padding_mask
 *   tdq_row_word_padding     the mask PackedMatrix::new checks on word w of a row
 *   tdq_unpack_word          one word of PackedMatrix::unpack_into (+ its padding check)
 *
 * The same header is compiled three ways: by nvcc into the kernels
 * (gpu/kernels/NAME.cu -> gpu/ptx/NAME.ptx), by the host C++ compiler into the
 * parity shim (gpu/csrc/tdq_host_shim.cpp, built by gpu/build.rs and
 * proptested against the oracle in CI), and as C11 by scripts/gpu-ptx.sh
 * --check (so it stays plain C). A kernel adds only the thread/block mapping.
 *
 * Rules that keep the three compilations identical:
 *  - only 32- and 64-bit integer arithmetic (no __int128, no floating point);
 *    the 95-bit products of i64 accumulators use the tdq_i128 pair below;
 *  - no signed overflow and no left shift of a negative value (both UB):
 *    left shifts go through uint64_t;
 *  - right shifts of negative values are arithmetic (implementation-defined
 *    in C/C++ < 20, but arithmetic in gcc, clang and nvcc; checked below).
 */
#ifndef TDQ_ARITH_CUH
#define TDQ_ARITH_CUH

#if defined(__CUDACC_RTC__)
/* NVRTC has no <stdint.h>. */
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif

#if defined(__CUDACC__)
#define TDQ_HD __host__ __device__
#else
#define TDQ_HD
#endif

/* Every helper is `static inline`: one private copy per translation unit. */
#define TDQ_FN static inline TDQ_HD

#if defined(__cplusplus)
#define TDQ_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define TDQ_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

TDQ_STATIC_ASSERT((-1 >> 1) == -1, "tdq_arith needs arithmetic right shifts");
TDQ_STATIC_ASSERT(((int64_t)-8 >> 2) == -2, "tdq_arith needs arithmetic right shifts");

#define TDQ_I64_MAX ((int64_t)0x7FFFFFFFFFFFFFFFLL)
#define TDQ_I64_MIN (-TDQ_I64_MAX - 1)

/* ------------------------------------------------------------------------ */
/* Requantization                                                           */
/* ------------------------------------------------------------------------ */

/* RoundingMode discriminants (core::requant::RoundingMode, #[repr(u8)]). */
#define TDQ_ROUND_HALF_UP 0
#define TDQ_ROUND_HALF_EVEN 1

/*
 * core::requant::Requantizer, #[repr(C)], 8 bytes, align 4:
 *   multiplier i32 in [2^30, 2^31); shift i8 (total shift = 31 + shift);
 *   rounding u8 (TDQ_ROUND_*); 2 reserved zero bytes.
 * Passed by value as a kernel parameter; mirrored by `KernelRequantizer`
 * in gpu/src/lib.rs.
 */
typedef struct tdq_requantizer {
  int32_t multiplier;
  int8_t shift;
  uint8_t rounding;
  uint8_t reserved[2];
} tdq_requantizer;

TDQ_STATIC_ASSERT(sizeof(tdq_requantizer) == 8, "tdq_requantizer must be 8 bytes");

/* A signed 128-bit value hi·2^64 + lo (two's complement). */
typedef struct tdq_i128 {
  int64_t hi;
  uint64_t lo;
} tdq_i128;

TDQ_FN tdq_i128 tdq_i128_from_i64(int64_t v) {
  tdq_i128 r;
  r.hi = v >> 63;
  r.lo = (uint64_t)v;
  return r;
}

/* a + b; callers keep |a + b| < 2^127. */
TDQ_FN tdq_i128 tdq_i128_add(tdq_i128 a, tdq_i128 b) {
  tdq_i128 r;
  r.lo = a.lo + b.lo;
  /* hi parts are small here (|value| < 2^127), so the sum cannot overflow;
     add through uint64_t anyway so no signed overflow is ever possible. */
  r.hi = (int64_t)((uint64_t)a.hi + (uint64_t)b.hi + (uint64_t)(r.lo < a.lo));
  return r;
}

/* The exact product acc · multiplier (|.| ≤ 2^94). */
TDQ_FN tdq_i128 tdq_mul_i64_i32(int64_t acc, int32_t multiplier) {
  /* acc = a_hi·2^32 + a_lo with a_hi ∈ [−2^31, 2^31), a_lo ∈ [0, 2^32). */
  const int64_t a_hi = acc >> 32;
  const int64_t a_lo = (int64_t)(uint32_t)acc;
  const int64_t m = (int64_t)multiplier;
  /* |a_hi·m| ≤ 2^62 and |a_lo·m| ≤ (2^32 − 1)·2^31 < 2^63: no overflow. */
  const int64_t high = a_hi * m;
  const int64_t low = a_lo * m;
  tdq_i128 shifted; /* high · 2^32 */
  shifted.hi = high >> 32;
  shifted.lo = (uint64_t)high << 32;
  return tdq_i128_add(shifted, tdq_i128_from_i64(low));
}

/* Arithmetic right shift by k, 1 ≤ k ≤ 127. */
TDQ_FN tdq_i128 tdq_i128_shr(tdq_i128 v, uint32_t k) {
  tdq_i128 r;
  if (k < 64) {
    r.lo = (v.lo >> k) | ((uint64_t)v.hi << (64u - k));
    r.hi = v.hi >> k;
  } else {
    r.lo = (uint64_t)(v.hi >> (k - 64u));
    r.hi = v.hi >> 63;
  }
  return r;
}

/* 2^e for 0 ≤ e ≤ 126. */
TDQ_FN tdq_i128 tdq_i128_pow2(uint32_t e) {
  tdq_i128 r;
  if (e < 64) {
    r.hi = 0;
    r.lo = (uint64_t)1 << e;
  } else {
    r.hi = (int64_t)((uint64_t)1 << (e - 64u));
    r.lo = 0;
  }
  return r;
}

/* Whether v fits int64_t. */
TDQ_FN int tdq_i128_fits_i64(tdq_i128 v) {
  return (v.hi == 0 && (v.lo >> 63) == 0) || (v.hi == -1 && (v.lo >> 63) == 1);
}

/* The value saturated to int64_t. */
TDQ_FN int64_t tdq_i128_saturate(tdq_i128 v) {
  if (tdq_i128_fits_i64(v)) {
    return (int64_t)v.lo;
  }
  return v.hi < 0 ? TDQ_I64_MIN : TDQ_I64_MAX;
}

/* core's round_shift_right_i128: round v / 2^k, 1 ≤ k ≤ 126, |v| ≤ 2^94. */
TDQ_FN tdq_i128 tdq_i128_round_shr(tdq_i128 v, uint32_t k, uint32_t rounding) {
  if (rounding != TDQ_ROUND_HALF_EVEN) {
    return tdq_i128_shr(tdq_i128_add(v, tdq_i128_pow2(k - 1u)), k);
  }
  tdq_i128 floor_v = tdq_i128_shr(v, k);
  /* remainder = v − floor·2^k = the low k bits of v, in [0, 2^k). */
  uint64_t rem_hi;
  uint64_t rem_lo;
  if (k <= 64) {
    rem_hi = 0;
    rem_lo = k == 64 ? v.lo : (v.lo & (((uint64_t)1 << k) - 1u));
  } else {
    rem_hi = (uint64_t)v.hi & (((uint64_t)1 << (k - 64u)) - 1u);
    rem_lo = v.lo;
  }
  const tdq_i128 half = tdq_i128_pow2(k - 1u); /* non-negative */
  const uint64_t half_hi = (uint64_t)half.hi;
  const int above = rem_hi > half_hi || (rem_hi == half_hi && rem_lo > half.lo);
  const int tie = rem_hi == half_hi && rem_lo == half.lo;
  if (above || (tie && (floor_v.lo & 1u) == 1u)) {
    floor_v = tdq_i128_add(floor_v, tdq_i128_from_i64(1));
  }
  return floor_v;
}

/* core's shift_left_saturating: v · 2^k saturated to int64_t, |v| ≤ 2^94. */
TDQ_FN int64_t tdq_i128_shl_saturating(tdq_i128 v, uint32_t k) {
  if (v.hi == 0 && v.lo == 0) {
    return 0;
  }
  /* |v| ≥ 1: for k ≥ 64 the result is out of range; if v does not fit
     int64_t, neither does v · 2^k. */
  if (k >= 64 || !tdq_i128_fits_i64(v)) {
    return v.hi < 0 ? TDQ_I64_MIN : TDQ_I64_MAX;
  }
  const int64_t narrow = (int64_t)v.lo;
  /* For k ≤ 63, MAX >> k = ⌊MAX / 2^k⌋ and MIN >> k = −2^(63−k): tight. */
  if (narrow > (TDQ_I64_MAX >> k)) {
    return TDQ_I64_MAX;
  }
  if (narrow < (TDQ_I64_MIN >> k)) {
    return TDQ_I64_MIN;
  }
  return (int64_t)((uint64_t)narrow << k);
}

/*
 * core::requant::apply_parts: round(acc · multiplier / 2^total_shift) with
 * one rounding, saturated to int64_t. Total for every input (any multiplier,
 * any total_shift); total_shift ≤ 0 is an exact, saturating left shift.
 */
TDQ_FN int64_t tdq_apply_parts(int64_t acc, int32_t multiplier, int32_t total_shift,
                               uint32_t rounding) {
  const tdq_i128 product = tdq_mul_i64_i32(acc, multiplier);
  if (total_shift <= 0) {
    /* unsigned_abs: −(i32::MIN) does not fit int32_t, so go through int64_t. */
    const uint64_t k = (uint64_t)(-(int64_t)total_shift);
    return tdq_i128_shl_saturating(product, k >= 64 ? 64u : (uint32_t)k);
  }
  if (total_shift > 126) {
    /* |product| / 2^127 < 2^−33: every rounding mode gives 0. */
    return 0;
  }
  return tdq_i128_saturate(tdq_i128_round_shr(product, (uint32_t)total_shift, rounding));
}

/*
 * core::requant::apply_parts_i32: apply_parts for a 32-bit accumulator with a
 * single 64-bit product (mul.wide.s32 on the GPU) on the common path
 * 1 ≤ total_shift ≤ 62; other shifts take the exact general path.
 */
TDQ_FN int64_t tdq_apply_parts_i32(int32_t acc, int32_t multiplier, int32_t total_shift,
                                   uint32_t rounding) {
  if (total_shift < 1 || total_shift > 62) {
    return tdq_apply_parts((int64_t)acc, multiplier, total_shift, rounding);
  }
  /* |acc · multiplier| ≤ 2^62; the offset 2^(k−1) ≤ 2^61 keeps the sum < 2^63. */
  const int64_t product = (int64_t)acc * (int64_t)multiplier;
  const uint32_t k = (uint32_t)total_shift;
  const int64_t half = (int64_t)((uint64_t)1 << (k - 1u));
  if (rounding != TDQ_ROUND_HALF_EVEN) {
    return (product + half) >> k;
  }
  const int64_t floor_v = product >> k;
  /* product − floor·2^k: the low k bits of product. */
  const int64_t remainder = (int64_t)((uint64_t)product & (((uint64_t)1 << k) - 1u));
  if (remainder > half || (remainder == half && (floor_v & 1) == 1)) {
    return floor_v + 1;
  }
  return floor_v;
}

/* Requantizer::total_shift. */
TDQ_FN int32_t tdq_total_shift(tdq_requantizer rq) { return (int32_t)rq.shift + 31; }

/* Requantizer::apply_i32. */
TDQ_FN int64_t tdq_requant_i32(tdq_requantizer rq, int32_t acc) {
  return tdq_apply_parts_i32(acc, rq.multiplier, tdq_total_shift(rq), rq.rounding);
}

/* Requantizer::apply_i64. */
TDQ_FN int64_t tdq_requant_i64(tdq_requantizer rq, int64_t acc) {
  return tdq_apply_parts(acc, rq.multiplier, tdq_total_shift(rq), rq.rounding);
}

/* Requantizer::apply_i32_saturating_to: clamp to max, then to min (min wins
   when min > max). */
TDQ_FN int32_t tdq_requant_i32_clamp(tdq_requantizer rq, int32_t acc, int32_t min_v,
                                     int32_t max_v) {
  const int64_t value = tdq_requant_i32(rq, acc);
  const int64_t below_max = value > (int64_t)max_v ? (int64_t)max_v : value;
  if (below_max < (int64_t)min_v) {
    return min_v;
  }
  return (int32_t)below_max;
}

/* ------------------------------------------------------------------------ */
/* Packed codes (core::packed; layout in core/src/packed.rs)                */
/* ------------------------------------------------------------------------ */

/* BitWidth::codes_per_word: 16, 10, 8, 4 for 2, 3, 4, 8 bits; 0 otherwise. */
TDQ_FN uint32_t tdq_codes_per_word(uint32_t bits) {
  switch (bits) {
    case 2:
      return 16;
    case 3:
      return 10;
    case 4:
      return 8;
    case 8:
      return 4;
    default:
      return 0;
  }
}

/* BitWidth::code_mask: 2^bits − 1 (bits ∈ {2, 3, 4, 8}). */
TDQ_FN uint32_t tdq_code_mask(uint32_t bits) { return ((uint32_t)1 << bits) - 1u; }

/* PackedLayout::words_per_row: ⌈cols / codes_per_word⌉ (0 for bad widths). */
TDQ_FN uint32_t tdq_words_per_row(uint32_t bits, uint32_t cols) {
  const uint32_t cpw = tdq_codes_per_word(bits);
  if (cpw == 0) {
    return 0;
  }
  return cols / cpw + (cols % cpw != 0 ? 1u : 0u);
}

/* The little-endian word at p (any alignment). */
TDQ_FN uint32_t tdq_load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

/* PackedWord::code for slot < codes_per_word(bits): the code at bit slot·bits. */
TDQ_FN uint32_t tdq_word_code(uint32_t word, uint32_t bits, uint32_t slot) {
  return (word >> (slot * bits)) & tdq_code_mask(bits);
}

/* PackedWord::padding_mask: the bits that must be zero when only the first
   `used` slots (used ≤ codes_per_word) hold codes. */
TDQ_FN uint32_t tdq_padding_mask(uint32_t bits, uint32_t used) {
  const uint32_t cpw = tdq_codes_per_word(bits);
  const uint32_t used_bits = (used >= cpw ? cpw : used) * bits;
  if (used_bits >= 32) {
    return 0;
  }
  return ~(uint32_t)0 << used_bits;
}

/* Codes stored in word `word_in_row` of a row of `cols` codes: codes_per_word
   except in the row's last word. Requires word_in_row < words_per_row. */
TDQ_FN uint32_t tdq_slots_used(uint32_t bits, uint32_t cols, uint32_t word_in_row) {
  const uint32_t cpw = tdq_codes_per_word(bits);
  const uint32_t first = word_in_row * cpw;
  const uint32_t left = cols - first;
  return left < cpw ? left : cpw;
}

/* The padding mask PackedMatrix::new checks on word `word_in_row` of a row. */
TDQ_FN uint32_t tdq_row_word_padding(uint32_t bits, uint32_t cols, uint32_t word_in_row) {
  return tdq_padding_mask(bits, tdq_slots_used(bits, cols, word_in_row));
}

/*
 * One word of PackedMatrix::unpack_into: writes the codes of word
 * `word_in_row` of a row of `cols` codes to row_out[word_in_row·cpw ..]
 * (row_out is the row's first output byte). Returns 1, writing nothing, if a
 * padding bit is set (core: PackError::NonZeroPadding), else 0.
 */
TDQ_FN int tdq_unpack_word(uint32_t word, uint32_t bits, uint32_t cols, uint32_t word_in_row,
                           uint8_t *row_out) {
  const uint32_t used = tdq_slots_used(bits, cols, word_in_row);
  if ((word & tdq_padding_mask(bits, used)) != 0) {
    return 1;
  }
  uint8_t *out = row_out + (uint64_t)word_in_row * tdq_codes_per_word(bits);
  const uint32_t mask = tdq_code_mask(bits);
  for (uint32_t slot = 0; slot < used; ++slot) {
    out[slot] = (uint8_t)((word >> (slot * bits)) & mask);
  }
  return 0;
}

#endif /* TDQ_ARITH_CUH */
