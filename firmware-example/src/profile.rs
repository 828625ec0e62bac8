//! Per-operator instruction counts: an [`IntKernels`] wrapper that times
//! every call of the wrapped kernels with the SysTick [`Clock`].
//!
//! A linear's time includes its `emit` epilogue (requantization, GELU
//! thresholds, residual add), a conv's its requantize-and-store closure.
//! Everything not in a kernel call (LN1/LN2 affine and the input quantizers,
//! the window gather, `i16` shifts, pixel output) is the rest of the run.

use tdquant_core::int::attention::{AvParams, QkParams};
use tdquant_core::int::conv::Conv;
use tdquant_core::int::linear::CodeAffine;
use tdquant_core::int::{I32Src, IntKernels, LeI16, OpError};
use tdquant_core::packed::PackedMatrix;

use crate::clock::Clock;

/// The profiled operators, in [`Profiled::spent`] order.
/// `linear_codes` is q, k, v; `linear_stream` proj and fc2 (residual add);
/// `linear_gelu` fc1 with its GELU-threshold epilogue.
pub const OPS: [&str; N_OPS] = [
    "linear_codes",
    "linear_stream",
    "linear_gelu",
    "softmax",
    "av",
    "conv",
    "normalize",
];
/// Number of timed operators.
pub const N_OPS: usize = 7;

/// `K` with a tick counter per operator.
pub struct Profiled<'c, K> {
    /// The kernels that do the work.
    pub inner: K,
    clock: &'c Clock,
    /// SysTick ticks per operator ([`OPS`] order).
    pub spent: [u64; N_OPS],
    /// Calls per operator.
    pub calls: [u32; N_OPS],
}

impl<'c, K> Profiled<'c, K> {
    /// Wraps `inner`.
    pub fn new(inner: K, clock: &'c Clock) -> Self {
        Self {
            inner,
            clock,
            spent: [0; N_OPS],
            calls: [0; N_OPS],
        }
    }

    fn timed<R>(&mut self, op: usize, f: impl FnOnce(&mut K) -> R) -> R {
        let t0 = self.clock.ticks();
        let r = f(&mut self.inner);
        let t1 = self.clock.ticks();
        if let (Some(s), Some(c)) = (self.spent.get_mut(op), self.calls.get_mut(op)) {
            *s += t1 - t0;
            *c += 1;
        }
        r
    }
}

impl<K: IntKernels> IntKernels for Profiled<'_, K> {
    fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
        &mut self,
        input: &[u8],
        k: usize,
        weights: &PackedMatrix<'_>,
        row0: u32,
        rows: usize,
        affine: &CodeAffine,
        c: &W,
        emit: F,
    ) -> Result<(), OpError> {
        self.timed(2, |kk| {
            kk.linear(input, k, weights, row0, rows, affine, c, emit)
        })
    }

    fn linear_gelu<W: I32Src + ?Sized, G: I32Src + ?Sized>(
        &mut self,
        input: &[u8],
        k: usize,
        weights: &PackedMatrix<'_>,
        row0: u32,
        rows: usize,
        affine: &CodeAffine,
        c: &W,
        gelu: &G,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        self.timed(2, |kk| {
            kk.linear_gelu(input, k, weights, row0, rows, affine, c, gelu, out)
        })
    }

    fn linear_codes<W: I32Src + ?Sized>(
        &mut self,
        input: &[u8],
        k: usize,
        weights: &PackedMatrix<'_>,
        row0: u32,
        rows: usize,
        affine: &CodeAffine,
        c: &W,
        levels: u8,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        self.timed(0, |kk| {
            kk.linear_codes(input, k, weights, row0, rows, affine, c, levels, out)
        })
    }

    fn linear_stream<W: I32Src + ?Sized>(
        &mut self,
        input: &[u8],
        k: usize,
        weights: &PackedMatrix<'_>,
        row0: u32,
        rows: usize,
        affine: &CodeAffine,
        c: &W,
        pos: &[usize],
        stride: usize,
        r: &mut [i32],
    ) -> Result<(), OpError> {
        self.timed(1, |kk| {
            kk.linear_stream(input, k, weights, row0, rows, affine, c, pos, stride, r)
        })
    }

    fn softmax_codes<W: I32Src + ?Sized>(
        &mut self,
        q: &[u8],
        k: &[u8],
        stride: usize,
        col: usize,
        qk: &QkParams,
        rpb: LeI16<'_>,
        labels: Option<&[u8]>,
        thresholds: &W,
        probs: &mut [u8],
    ) -> Result<(), OpError> {
        self.timed(3, |kk| {
            kk.softmax_codes(q, k, stride, col, qk, rpb, labels, thresholds, probs)
        })
    }

    fn av_codes(
        &mut self,
        probs: &[u8],
        v: &[u8],
        stride: usize,
        col: usize,
        av: &AvParams,
        levels: u8,
        out: &mut [u8],
        out_stride: usize,
    ) -> Result<(), OpError> {
        self.timed(4, |kk| {
            kk.av_codes(probs, v, stride, col, av, levels, out, out_stride)
        })
    }

    fn conv<W: I32Src, F: FnMut(usize, usize, i64)>(
        &mut self,
        conv: &Conv<'_, W>,
        input: &[i32],
        h: usize,
        w: usize,
        emit: F,
    ) -> Result<(), OpError> {
        self.timed(5, |kk| kk.conv(conv, input, h, w, emit))
    }

    fn normalize(&mut self, x: &[i32], eps_t: i64, xhat: &mut [i32]) -> Result<(), OpError> {
        self.timed(6, |kk| kk.normalize(x, eps_t, xhat))
    }
}
