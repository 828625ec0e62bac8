/*
 * tdq_requant.cu — requantization of accumulator vectors by one Requantizer.
 *
 * The arithmetic is tdq_requant_* in tdq_arith.cuh (proved equal to
 * core::requant by the CPU parity tests); each kernel is an elementwise,
 * grid-stride map.
 */
#include "tdq_arith.cuh"

/* out[i] = Requantizer::apply_i32(acc[i]) for i < n. */
extern "C" __global__ void tdq_requantize_i32(const int32_t *__restrict__ acc,
                                              int64_t *__restrict__ out, uint64_t n,
                                              tdq_requantizer rq) {
  const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = tdq_requant_i32(rq, acc[i]);
  }
}

/* out[i] = Requantizer::apply_i32_saturating_to(acc[i], min_v, max_v). */
extern "C" __global__ void tdq_requantize_i32_clamp(const int32_t *__restrict__ acc,
                                                    int32_t *__restrict__ out, uint64_t n,
                                                    tdq_requantizer rq, int32_t min_v,
                                                    int32_t max_v) {
  const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = tdq_requant_i32_clamp(rq, acc[i], min_v, max_v);
  }
}

/* out[i] = Requantizer::apply_i64(acc[i]) (95-bit exact product). */
extern "C" __global__ void tdq_requantize_i64(const int64_t *__restrict__ acc,
                                              int64_t *__restrict__ out, uint64_t n,
                                              tdq_requantizer rq) {
  const uint64_t stride = (uint64_t)blockDim.x * gridDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = tdq_requant_i64(rq, acc[i]);
  }
}
