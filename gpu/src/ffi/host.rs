//! FFI to `gpu/csrc/tdq_host_shim.cpp`: `gpu/kernels/tdq_arith.cuh` and the
//! kernels of `gpu/kernels/*.cu`, compiled for the host by `build.rs`.

use tdquant_core::{BitWidth, PackedLayout, Requantizer, RoundingMode};

use crate::{check_same_len, DriverFailure, GpuError, KernelRequantizer};

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
    fn tdq_host_rshift_round(v: i64, k: u32) -> i64;
    fn tdq_host_exp2_neg_q31(d: u64) -> u32;
    fn tdq_host_isqrt_u128(hi: u64, lo: u64) -> u64;
    fn tdq_host_ln_normalize(x: *const i32, n: u32, eps_t: i64, xhat: *mut i32);
    fn tdq_host_ln_output(ln: *const LnParamsC, c: u32, xhat: i32) -> i64;
    fn tdq_host_fixed_quant_code(fq: *const FixedQuantC, y: i64) -> u8;
    fn tdq_host_linear_t(
        x: *const u8,
        k: u32,
        w: *const PackedMatrixC,
        row: u32,
        aff: *const CodeAffineC,
        c: i32,
    ) -> i64;
    fn tdq_host_gelu_code(t: i64, hi: *const i64, lo: *const i64, levels: u32) -> u8;
    fn tdq_host_softmax_row(
        q: *const u8,
        k: *const u8,
        stride: u32,
        col: u32,
        qk: *const QkParamsC,
        rpb: *const i16,
        labels: *const u8,
        thresholds: *const i64,
        levels: u32,
        i: u32,
        out: *mut u8,
    );
    fn tdq_host_av_row(
        probs_row: *const u8,
        v: *const u8,
        stride: u32,
        col: u32,
        av: *const AvParamsC,
        levels: u32,
        out: *mut u8,
    );
    fn tdq_host_conv_output(
        input: *const i32,
        h: u32,
        w: u32,
        cin: u32,
        y: u32,
        x: u32,
        w_row: *const i16,
        multiplier: i32,
        shift: i32,
        bias: i32,
    ) -> i64;
    fn tdq_host_window_token(
        wy: u32,
        wx: u32,
        t: u32,
        hp: u32,
        wp: u32,
        shifted: u32,
        pos: *mut u32,
        label: *mut u8,
    );
    fn tdq_host_struct_size(which: u32) -> u32;
    fn tdq_emu_swinir(kernel: u32, grid: u32, block: u32, args: *const u8) -> u32;
}

use crate::swinir::{
    AvParamsC, CodeAffineC, FixedQuantC, KernelRunner, Launch, LnParamsC, PackedMatrixC, QkParamsC,
    BLOCK_THREADS,
};
use tdquant_core::int::{HEAD_DIM, RPB_ROWS, TOKENS};
use tdquant_core::PackedMatrix;

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
        elementwise(acc, out, |grid, block, acc, out, n| {
            // SAFETY: `acc` and `out` point to `n` elements each.
            unsafe { tdq_emu_requantize_i32(grid, block, acc, out, n, rq.into()) }
        })
    }

    /// The `tdq_requantize_i32_clamp` kernel under an emulated launch.
    pub fn requantize_i32_clamped(
        rq: Requantizer,
        acc: &[i32],
        min: i32,
        max: i32,
        out: &mut [i32],
    ) -> Result<(), GpuError> {
        elementwise(acc, out, |grid, block, acc, out, n| {
            // SAFETY: `acc` and `out` point to `n` elements each.
            unsafe { tdq_emu_requantize_i32_clamp(grid, block, acc, out, n, rq.into(), min, max) }
        })
    }

    /// The `tdq_requantize_i64` kernel under an emulated launch.
    pub fn requantize_i64(rq: Requantizer, acc: &[i64], out: &mut [i64]) -> Result<(), GpuError> {
        elementwise(acc, out, |grid, block, acc, out, n| {
            // SAFETY: `acc` and `out` point to `n` elements each.
            unsafe { tdq_emu_requantize_i64(grid, block, acc, out, n, rq.into()) }
        })
    }

    /// An elementwise kernel from `acc` to `out` (same length) under an
    /// emulated launch: `launch(grid, block, acc, out, n)`.
    fn elementwise<A, O>(
        acc: &[A],
        out: &mut [O],
        launch: impl FnOnce(u32, u32, *const A, *mut O, u64),
    ) -> Result<(), GpuError> {
        check_same_len(acc.len(), out.len())?;
        let n = len64(acc);
        let (grid, block) = emu_grid(n);
        launch(grid, block, acc.as_ptr(), out.as_mut_ptr(), n);
        Ok(())
    }

    fn len64<T>(slice: &[T]) -> u64 {
        // usize ≤ 64 bits on every supported target.
        u64::try_from(slice.len()).unwrap_or(u64::MAX)
    }
}

pub mod swinir_arith {
    //! The per-element functions of `gpu/kernels/tdq_swinir.cuh`, compiled
    //! for the host, as safe Rust functions. Each checks the lengths and
    //! ranges its C function relies on and returns `None` where they do not
    //! hold; `gpu/tests/swinir_op_parity.rs` compares every one with the
    //! `tdquant-core` operator it transcribes.

    use super::*;

    /// `tdq_rshift_round`: `core::int::arith::rshift_round`.
    pub fn rshift_round(v: i64, k: u32) -> i64 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_rshift_round(v, k) }
    }

    /// `tdq_exp2_neg_q31`: `core::int::exp2::exp2_neg_q31`.
    pub fn exp2_neg_q31(d: u64) -> u32 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_exp2_neg_q31(d) }
    }

    /// `tdq_isqrt_u128`: `⌊√n⌋`.
    pub fn isqrt_u128(n: u128) -> u64 {
        // SAFETY: pure integer function, defined for every argument.
        unsafe { tdq_host_isqrt_u128((n >> 64) as u64, n as u64) }
    }

    /// `tdq_ln_normalize`: `core::int::layernorm::normalize` (`None` where
    /// the oracle returns an error: `n ∉ 1..=64` or `eps_t ∉ 1..=2^40`).
    pub fn ln_normalize(x: &[i32], eps_t: i64) -> Option<Vec<i32>> {
        if !(1..=64).contains(&x.len()) || !(1..=1i64 << 40).contains(&eps_t) {
            return None;
        }
        let mut out = vec![0i32; x.len()];
        // SAFETY: both buffers hold n ≤ 64 elements; eps_t is in range.
        unsafe { tdq_host_ln_normalize(x.as_ptr(), x.len() as u32, eps_t, out.as_mut_ptr()) };
        Some(out)
    }

    /// `tdq_ln_output`: `LnParams::output` for channel `c < 60`.
    pub fn ln_output(ln: &LnParamsC, c: usize, xhat: i32) -> Option<i64> {
        if c >= ln.gamma.len() {
            return None;
        }
        // SAFETY: `ln` is a valid struct and c < 60 indexes its arrays.
        Some(unsafe { tdq_host_ln_output(ln, c as u32, xhat) })
    }

    /// `tdq_fixed_quant_code`: `FixedQuant::code`.
    pub fn fixed_quant_code(fq: &FixedQuantC, y: i64) -> u8 {
        // SAFETY: pure integer function of a valid struct.
        unsafe { tdq_host_fixed_quant_code(fq, y) }
    }

    /// `tdq_linear_t`: the `t` that `core::int::linear::linear` emits for
    /// input row `x` against weight row `row` of `w` with constant `c`.
    pub fn linear_t(
        x: &[u8],
        w: &PackedMatrix<'_>,
        row: u32,
        aff: &CodeAffineC,
        c: i32,
    ) -> Option<i64> {
        if x.len() != w.cols() as usize || row >= w.rows() || x.len() > 128 {
            return None;
        }
        let words: Vec<u32> = w
            .as_bytes()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let m = PackedMatrixC {
            words: words.as_ptr() as u64,
            bits: u32::from(w.bits().bits()),
            rows: w.rows(),
            cols: w.cols(),
            words_per_row: w.layout().words_per_row(),
        };
        // SAFETY: `words` holds rows·words_per_row words (a valid
        // PackedMatrix), row < rows, and x holds cols codes.
        Some(unsafe { tdq_host_linear_t(x.as_ptr(), x.len() as u32, &m, row, aff, c) })
    }

    /// `tdq_gelu_code`: `core::int::gelu::gelu_code` with the table split
    /// into `H_k` and `L_k`.
    pub fn gelu_code(t: i64, hi: &[i64], lo: &[i64]) -> Option<u8> {
        if hi.len() != lo.len() {
            return None;
        }
        // SAFETY: both arrays hold `levels` values.
        Some(unsafe { tdq_host_gelu_code(t, hi.as_ptr(), lo.as_ptr(), hi.len() as u32) })
    }

    /// `tdq_softmax_row`: row `i` of `core::int::attention::SoftmaxCall::run`.
    #[allow(clippy::too_many_arguments)]
    pub fn softmax_row(
        q: &[u8],
        k: &[u8],
        stride: usize,
        col: usize,
        qk: &QkParamsC,
        rpb: &[i16],
        labels: Option<&[u8]>,
        thresholds: &[i64],
        i: usize,
    ) -> Option<[u8; TOKENS]> {
        let fits = col + HEAD_DIM <= stride
            && q.len() == TOKENS * stride
            && k.len() == TOKENS * stride
            && rpb.len() == RPB_ROWS
            && labels.is_none_or(|l| l.len() == TOKENS)
            && thresholds.len() <= crate::swinir::MAX_LEVELS
            && i < TOKENS;
        if !fits {
            return None;
        }
        let mut out = [0u8; TOKENS];
        // SAFETY: every length the C function reads was checked above.
        unsafe {
            tdq_host_softmax_row(
                q.as_ptr(),
                k.as_ptr(),
                stride as u32,
                col as u32,
                qk,
                rpb.as_ptr(),
                labels.map_or(core::ptr::null(), <[u8]>::as_ptr),
                thresholds.as_ptr(),
                thresholds.len() as u32,
                i as u32,
                out.as_mut_ptr(),
            );
        }
        Some(out)
    }

    /// `tdq_av_row`: row of `core::int::attention::AvCall::run`; writes
    /// `out_row[col .. col + 10]`.
    pub fn av_row(
        probs_row: &[u8],
        v: &[u8],
        stride: usize,
        col: usize,
        av: &AvParamsC,
        levels: u8,
        out_row: &mut [u8],
    ) -> Option<()> {
        let fits = probs_row.len() == TOKENS
            && col + HEAD_DIM <= stride
            && v.len() == TOKENS * stride
            && col + HEAD_DIM <= out_row.len();
        if !fits {
            return None;
        }
        // SAFETY: every length the C function reads or writes was checked.
        unsafe {
            tdq_host_av_row(
                probs_row.as_ptr(),
                v.as_ptr(),
                stride as u32,
                col as u32,
                av,
                u32::from(levels),
                out_row.as_mut_ptr(),
            );
        }
        Some(())
    }

    /// `tdq_conv_output`: output `(y, x, o)` of `Conv::run` on an
    /// `h × w × cin` map, `w_row` = output channel o's `9·cin` weights.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_output(
        input: &[i32],
        h: usize,
        w: usize,
        cin: usize,
        y: usize,
        x: usize,
        w_row: &[i16],
        multiplier: i32,
        shift: i32,
        bias: i32,
    ) -> Option<i64> {
        let fits = input.len() == h * w * cin && w_row.len() == 9 * cin && y < h && x < w;
        if !fits {
            return None;
        }
        // SAFETY: lengths checked; the requantizer parts are plain integers.
        Some(unsafe {
            tdq_host_conv_output(
                input.as_ptr(),
                h as u32,
                w as u32,
                cin as u32,
                y as u32,
                x as u32,
                w_row.as_ptr(),
                multiplier,
                shift,
                bias,
            )
        })
    }

    /// `tdq_window_token`: `(pixel, label)` of token `t` of window `(wy, wx)`.
    pub fn window_token(
        wy: u32,
        wx: u32,
        t: u32,
        hp: u32,
        wp: u32,
        shifted: bool,
    ) -> Option<(u32, u8)> {
        if hp == 0 || wp == 0 || t >= TOKENS as u32 {
            return None;
        }
        let (mut pos, mut label) = (0u32, 0u8);
        // SAFETY: hp, wp > 0 (no division by zero); the outputs are locals.
        unsafe {
            tdq_host_window_token(wy, wx, t, hp, wp, u32::from(shifted), &mut pos, &mut label)
        };
        Some((pos, label))
    }

    /// `sizeof` of shared struct `which` (the order of
    /// [`crate::swinir::STRUCT_SIZES`]), 0 past the end.
    pub fn struct_size(which: u32) -> u32 {
        // SAFETY: pure function.
        unsafe { tdq_host_struct_size(which) }
    }
}

/// [`KernelRunner`] over the host-compiled kernels: "device memory" is host
/// memory owned by the runner, a launch runs every thread in turn.
#[derive(Default)]
pub(crate) struct EmulatedRunner {
    /// Allocations (16-byte aligned), alive as long as the runner.
    buffers: Vec<Vec<u128>>,
}

impl EmulatedRunner {
    /// The allocation holding `[ptr, ptr + len)`: its base pointer.
    fn find(&mut self, ptr: u64, len: usize) -> Result<*mut u8, GpuError> {
        for b in &mut self.buffers {
            let base = b.as_mut_ptr() as u64;
            let size = (b.len() * 16) as u64;
            if ptr >= base && ptr - base + len as u64 <= size {
                // SAFETY: ptr − base + len ≤ size: inside this allocation.
                return Ok(unsafe { b.as_mut_ptr().cast::<u8>().add((ptr - base) as usize) });
            }
        }
        Err(GpuError::Cuda(DriverFailure {
            step: "emulated copy bounds",
            // CUDA_ERROR_INVALID_VALUE, as the driver would answer.
            code: 1,
            message: format!(
                "emulated copy of {len} bytes at {ptr:#x} is outside every allocation"
            ),
        }))
    }
}

impl KernelRunner for EmulatedRunner {
    fn alloc(&mut self, bytes: usize) -> Result<u64, GpuError> {
        let mut b = vec![0u128; bytes.div_ceil(16).max(1)];
        let ptr = b.as_mut_ptr() as u64;
        self.buffers.push(b);
        Ok(ptr)
    }
    fn upload(&mut self, dst: u64, src: &[u8]) -> Result<(), GpuError> {
        let p = self.find(dst, src.len())?;
        // SAFETY: `find` proved [dst, dst + len) inside one live allocation.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Ok(())
    }
    fn download(&mut self, src: u64, dst: &mut [u8]) -> Result<(), GpuError> {
        let p = self.find(src, dst.len())?;
        // SAFETY: as in `upload`.
        unsafe { core::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
    fn launch(&mut self, launch: Launch<'_>) -> Result<(), GpuError> {
        let kernel = launch.kernel;
        let (grid, block) = (
            crate::grid_for(launch.items, host_arith::EMU_MAX_BLOCKS),
            BLOCK_THREADS,
        );
        // SAFETY: `args` is the kernel's argument struct (crate::swinir::run
        // builds it) whose device addresses point into this runner's
        // allocations, each sized by `run` for the launch's work items.
        let status = unsafe { tdq_emu_swinir(kernel as u32, grid, block, launch.args.as_ptr()) };
        if status == 0 {
            Ok(())
        } else {
            Err(GpuError::Cuda(DriverFailure {
                step: kernel.entry(),
                // CUDA_ERROR_NOT_FOUND: no such entry point.
                code: 500,
                message: format!("emulator has no kernel {}", kernel.entry()),
            }))
        }
    }
    fn synchronize(&mut self) -> Result<(), GpuError> {
        Ok(())
    }
}
