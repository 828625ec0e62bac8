//! Per-operator instruction counts: an [`IntKernels`] wrapper that times
//! every call of the wrapped kernels with the SysTick [`Clock`].
//!
//! A linear's time includes its `emit` epilogue (requantization, GELU
//! thresholds, residual add), a conv's its requantize-and-store closure.
//! Everything not in a kernel call (LN1/LN2 affine and the input quantizers,
//! the window gather, `i16` shifts, pixel output) is the rest of the run.

use tdquant_core::int::attention::{AvCall, SoftmaxCall};
use tdquant_core::int::conv::Conv;
use tdquant_core::int::linear::LinearCall;
use tdquant_core::int::{I32Src, IntKernels, OpError};

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
        call: &LinearCall<'_, W>,
        emit: F,
    ) -> Result<(), OpError> {
        self.timed(2, |kk| kk.linear(call, emit))
    }

    fn linear_gelu<W: I32Src + ?Sized, G: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        gelu: &G,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        self.timed(2, |kk| kk.linear_gelu(call, gelu, out))
    }

    fn linear_codes<W: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        levels: u8,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        self.timed(0, |kk| kk.linear_codes(call, levels, out))
    }

    fn linear_stream<W: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        pos: &[usize],
        stride: usize,
        r: &mut [i32],
    ) -> Result<(), OpError> {
        self.timed(1, |kk| kk.linear_stream(call, pos, stride, r))
    }

    fn softmax_codes<W: I32Src + ?Sized>(
        &mut self,
        call: &SoftmaxCall<'_, W>,
        probs: &mut [u8],
    ) -> Result<(), OpError> {
        self.timed(3, |kk| kk.softmax_codes(call, probs))
    }

    fn av_codes(&mut self, call: &AvCall<'_>, out: &mut [u8]) -> Result<(), OpError> {
        self.timed(4, |kk| kk.av_codes(call, out))
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
