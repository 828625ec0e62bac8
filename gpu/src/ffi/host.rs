//! FFI to `gpu/csrc/tdq_host_shim.cpp`: `gpu/kernels/tdq_arith.cuh` and the
//! kernels of `gpu/kernels/*.cu`, compiled for the host by `build.rs`.

use tdquant_core::{BitWidth, PackedLayout, Requantizer, RoundingMode};

use crate::{check_same_len, GpuError, KernelRequantizer};

// Linked by build.rs (`cargo:rustc-link-lib=static=tdq_host_shim`).
// Signatures mirror the C definitions; every function is total on the
// values the safe wrappers below pass.
extern "C" {
    fn tdq_host_apply_parts_i32(acc: i32, multiplier: i32, total_shift: i32, rounding: u32) -> i64;
    fn tdq_host_apply_parts(acc: i64, multiplier: i32, total_shift: i32, rounding: u32) -> i64;
    fn tdq_host_requant_i32(rq: KernelRequantizer, acc: i32) -> i64;
    fn tdq_host_requant_i64(rq: KernelRequantizer, acc: i64) -> i64;
    fn tdq_host_requant_i32_clamp(rq: KernelRequantizer, acc: i32, min_v: i32, max_v: i32) -> i32;
    fn tdq_host_codes_per_word(bits: u32) -> u32;
    fn tdq_host_words_per_row(bits: u32, cols: u32) -> u32;
    fn tdq_host_word_code(word: u32, bits: u32, slot: u32) -> u32;
    fn tdq_host_padding_mask(bits: u32, used: u32) -> u32;
    fn tdq_host_row_word_padding(bits: u32, cols: u32, word_in_row: u32) -> u32;
    fn tdq_host_load_le32(p: *const u8) -> u32;
    fn tdq_emu_unpack_codes(
        grid: u32,
        block: u32,
        words: *const u8,
        out: *mut u8,
        rows: u32,
        cols: u32,
        bits: u32,
    ) -> u64;
    fn tdq_emu_requantize_i32(
        grid: u32,
        block: u32,
        acc: *const i32,
        out: *mut i64,
        n: u64,
        rq: KernelRequantizer,
    );
    fn tdq_emu_requantize_i32_clamp(
        grid: u32,
        block: u32,
        acc: *const i32,
        out: *mut i32,
        n: u64,
        rq: KernelRequantizer,
        min_v: i32,
        max_v: i32,
    );
    fn tdq_emu_requantize_i64(
        grid: u32,
        block: u32,
        acc: *const i64,
        out: *mut i64,
        n: u64,
        rq: KernelRequantizer,
    );
}

pub mod host_arith {
    //! The CUDA kernels compiled for the host CPU, as safe Rust functions:
    //! the per-element functions of `gpu/kernels/tdq_arith.cuh`, and the
    //! kernels themselves run under an emulated launch (every thread of
    //! every block in turn; `gpu/csrc/cuda_host_emu.h`).
    //!
    //! Each per-element function transcribes the `tdquant-core` function it
    //! names and must return exactly the same value for every input; the
    //! CPU parity tests (`gpu/tests/host_arith_parity.rs`,
    //! `gpu/tests/host_kernel_parity.rs`) check that with proptest and
    //! hand-picked extremes.

    use super::*;

    fn rounding_code(rounding: RoundingMode) -> u32 {
        u32::from(rounding as u8)
    }

    /// `tdq_apply_parts_i32`: [`tdquant_core::apply_parts_i32`].
    pub fn apply_parts_i32(
        acc: i32,
        multiplier: i32,
        total_shift: i32,
        rounding: RoundingMode,
    ) -> i64 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_apply_parts_i32(acc, multiplier, total_shift, rounding_code(rounding)) }
    }

    /// `tdq_apply_parts`: [`tdquant_core::apply_parts`].
    pub fn apply_parts(acc: i64, multiplier: i32, total_shift: i32, rounding: RoundingMode) -> i64 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_apply_parts(acc, multiplier, total_shift, rounding_code(rounding)) }
    }

    /// `tdq_requant_i32`: [`Requantizer::apply_i32`].
    pub fn requant_i32(rq: Requantizer, acc: i32) -> i64 {
        // SAFETY: pure integer function; the struct is passed by value.
        unsafe { tdq_host_requant_i32(rq.into(), acc) }
    }

    /// `tdq_requant_i64`: [`Requantizer::apply_i64`].
    pub fn requant_i64(rq: Requantizer, acc: i64) -> i64 {
        // SAFETY: pure integer function; the struct is passed by value.
        unsafe { tdq_host_requant_i64(rq.into(), acc) }
    }

    /// `tdq_requant_i32_clamp`: [`Requantizer::apply_i32_saturating_to`].
    pub fn requant_i32_clamp(rq: Requantizer, acc: i32, min: i32, max: i32) -> i32 {
        // SAFETY: pure integer function; the struct is passed by value.
        unsafe { tdq_host_requant_i32_clamp(rq.into(), acc, min, max) }
    }

    /// `tdq_codes_per_word`: [`BitWidth::codes_per_word`].
    pub fn codes_per_word(bits: BitWidth) -> u32 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_codes_per_word(u32::from(bits.bits())) }
    }

    /// `tdq_words_per_row`: [`PackedLayout::words_per_row`].
    pub fn words_per_row(bits: BitWidth, cols: u32) -> u32 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_words_per_row(u32::from(bits.bits()), cols) }
    }

    /// `tdq_word_code`: [`tdquant_core::PackedWord::code`] (`None` past the
    /// last slot, where the C function's precondition does not hold).
    pub fn word_code(word: u32, bits: BitWidth, slot: u32) -> Option<u8> {
        if slot >= bits.codes_per_word() {
            return None;
        }
        // SAFETY: bits ∈ {2, 3, 4, 8} and slot < codes per word, so every
        // shift in the C function is < 32.
        let code = unsafe { tdq_host_word_code(word, u32::from(bits.bits()), slot) };
        u8::try_from(code).ok()
    }

    /// `tdq_padding_mask`: [`tdquant_core::PackedWord::padding_mask`].
    pub fn padding_mask(bits: BitWidth, used: u32) -> u32 {
        // SAFETY: pure integer function; shifts are bounded inside.
        unsafe { tdq_host_padding_mask(u32::from(bits.bits()), used) }
    }

    /// `tdq_row_word_padding`: the padding mask of word `word_in_row` of a
    /// row of `cols` codes (`None` if the row has no such word).
    pub fn row_word_padding(bits: BitWidth, cols: u32, word_in_row: u32) -> Option<u32> {
        if word_in_row >= PackedLayout::new(bits, 1, cols).words_per_row() {
            return None;
        }
        // SAFETY: pure integer function; the precondition holds.
        Some(unsafe { tdq_host_row_word_padding(u32::from(bits.bits()), cols, word_in_row) })
    }

    /// `tdq_load_le32`: the little-endian word in `bytes`.
    pub fn load_le32(bytes: [u8; 4]) -> u32 {
        // SAFETY: reads exactly the 4 bytes of the array.
        unsafe { tdq_host_load_le32(bytes.as_ptr()) }
    }

    /// Launch geometry of the emulated kernels: the CUDA backend's block
    /// size, but at most [`EMU_MAX_BLOCKS`] blocks, so that every input over
    /// `EMU_MAX_BLOCKS · BLOCK` elements takes the grid-stride loop's wrap.
    pub(crate) fn emu_grid(n: u64) -> (u32, u32) {
        (crate::grid_for(n, EMU_MAX_BLOCKS), crate::BLOCK)
    }

    /// Most blocks one emulated launch runs.
    pub const EMU_MAX_BLOCKS: u64 = 16;

    /// The `tdq_unpack_codes` kernel (gpu/kernels/tdq_unpack.cu) run on the
    /// CPU under an emulated launch. `Ok(None)` when every padding bit is
    /// zero, else `Ok(Some(w))` for the first bad word `w` (row-major) with
    /// `out` partly written. Lengths must match `layout`.
    pub fn unpack_codes(
        layout: PackedLayout,
        packed: &[u8],
        out: &mut [u8],
    ) -> Result<Option<u64>, GpuError> {
        check_same_len(layout.byte_len()?, packed.len())?;
        check_same_len(layout.element_count()?, out.len())?;
        // The kernel loads aligned 32-bit words, as from a cuMemAlloc
        // buffer: copy into u32s (same bytes on this little-endian host).
        let words: Vec<u32> = packed
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let (grid, block) = emu_grid(len64(&words));
        // SAFETY: the kernel reads `rows · words_per_row = words.len()`
        // aligned words and writes `rows · cols = out.len()` bytes (both
        // checked above, with overflow checks in core); bits is a valid
        // width; its threads run one after another.
        let bad = unsafe {
            tdq_emu_unpack_codes(
                grid,
                block,
                words.as_ptr().cast::<u8>(),
                out.as_mut_ptr(),
                layout.rows,
                layout.cols,
                u32::from(layout.bits.bits()),
            )
        };
        Ok((bad != u64::MAX).then_some(bad))
    }

    /// The `tdq_requantize_i32` kernel under an emulated launch.
    pub fn requantize_i32(rq: Requantizer, acc: &[i32], out: &mut [i64]) -> Result<(), GpuError> {
        check_same_len(acc.len(), out.len())?;
        let (grid, block) = emu_grid(len64(acc));
        // SAFETY: both slices hold `acc.len()` elements.
        unsafe {
            tdq_emu_requantize_i32(
                grid,
                block,
                acc.as_ptr(),
                out.as_mut_ptr(),
                len64(acc),
                rq.into(),
            );
        }
        Ok(())
    }

    /// The `tdq_requantize_i32_clamp` kernel under an emulated launch.
    pub fn requantize_i32_clamped(
        rq: Requantizer,
        acc: &[i32],
        min: i32,
        max: i32,
        out: &mut [i32],
    ) -> Result<(), GpuError> {
        check_same_len(acc.len(), out.len())?;
        let (grid, block) = emu_grid(len64(acc));
        // SAFETY: both slices hold `acc.len()` elements.
        unsafe {
            tdq_emu_requantize_i32_clamp(
                grid,
                block,
                acc.as_ptr(),
                out.as_mut_ptr(),
                len64(acc),
                rq.into(),
                min,
                max,
            );
        }
        Ok(())
    }

    /// The `tdq_requantize_i64` kernel under an emulated launch.
    pub fn requantize_i64(rq: Requantizer, acc: &[i64], out: &mut [i64]) -> Result<(), GpuError> {
        check_same_len(acc.len(), out.len())?;
        let (grid, block) = emu_grid(len64(acc));
        // SAFETY: both slices hold `acc.len()` elements.
        unsafe {
            tdq_emu_requantize_i64(
                grid,
                block,
                acc.as_ptr(),
                out.as_mut_ptr(),
                len64(acc),
                rq.into(),
            );
        }
        Ok(())
    }

    fn len64<T>(slice: &[T]) -> u64 {
        // usize ≤ 64 bits on every supported target.
        u64::try_from(slice.len()).unwrap_or(u64::MAX)
    }
}
