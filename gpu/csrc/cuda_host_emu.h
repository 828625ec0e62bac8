/*
 * cuda_host_emu.h — just enough of CUDA to compile the gpu/kernels sources with the
 * host C++ compiler and run them on the CPU: the kernel qualifiers, the
 * launch geometry built-ins, atomicMin, and a launcher that runs every
 * thread of every block one after another.
 *
 * Valid only for kernels whose threads do not communicate: no shared
 * memory, no barriers (__syncthreads), no warp intrinsics. Every kernel of
 * tdquant is a grid-stride loop over independent work items (an element,
 * a pixel, a (token, row) output, a query row); a kernel that needs
 * more must not be added to the emulated set (it will fail to compile here,
 * since none of those built-ins is defined).
 */
#ifndef TDQ_CUDA_HOST_EMU_H
#define TDQ_CUDA_HOST_EMU_H

#if defined(__CUDACC__)
#error "cuda_host_emu.h is for host compilers only"
#endif

#include <stdint.h>

#define __global__
#define __device__
#define __host__

struct tdq_emu_dim3 {
  uint32_t x, y, z;
};

/* Per host thread: Rust tests call the emulated kernels from many threads. */
static thread_local tdq_emu_dim3 gridDim;
static thread_local tdq_emu_dim3 blockDim;
static thread_local tdq_emu_dim3 blockIdx;
static thread_local tdq_emu_dim3 threadIdx;

/* Sequential threads: a plain read-modify-write is atomic enough. */
static inline unsigned long long atomicMin(unsigned long long *address, unsigned long long val) {
  const unsigned long long old = *address;
  if (val < old) {
    *address = val;
  }
  return old;
}

/* kernel<<<grid, block>>>(...) as loops: body() runs once per thread. */
template <typename Body>
static void tdq_emu_launch(uint32_t grid, uint32_t block, Body body) {
  gridDim = tdq_emu_dim3{grid, 1, 1};
  blockDim = tdq_emu_dim3{block, 1, 1};
  for (uint32_t b = 0; b < grid; ++b) {
    for (uint32_t t = 0; t < block; ++t) {
      blockIdx = tdq_emu_dim3{b, 0, 0};
      threadIdx = tdq_emu_dim3{t, 0, 0};
      body();
    }
  }
}

#endif /* TDQ_CUDA_HOST_EMU_H */
