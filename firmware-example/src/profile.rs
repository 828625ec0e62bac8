//! Per-operator instruction counts: an [`IntKernels`] wrapper that times
//! every call of the wrapped kernels with the SysTick [`Clock`].
//!
//! A linear's time includes its `emit` epilogue (requantization, GELU
//! thresholds, residual add), a conv's its requantize-and-store closure.
//! Everything not in a kernel call (LN1/LN2 affine and the input quantizers,
//! the window gather, `i16` shifts, pixel output) is the rest of the run.

use tdquant_core::int::IntKernels;

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

impl_int_kernels!([K: IntKernels] Profiled<'_, K> {
    linear(self, call, emit) => self.timed(2, |kk| kk.linear(call, emit));
    linear_gelu(self, call, gelu, out) => self.timed(2, |kk| kk.linear_gelu(call, gelu, out));
    linear_codes(self, call, levels, out) => self.timed(0, |kk| kk.linear_codes(call, levels, out));
    linear_stream(self, call, pos, stride, r) => {
        self.timed(1, |kk| kk.linear_stream(call, pos, stride, r))
    };
    softmax_codes(self, call, probs) => self.timed(3, |kk| kk.softmax_codes(call, probs));
    av_codes(self, call, out) => self.timed(4, |kk| kk.av_codes(call, out));
    conv(self, conv, input, h, w, emit) => self.timed(5, |kk| kk.conv(conv, input, h, w, emit));
    normalize(self, x, eps_t, xhat) => self.timed(6, |kk| kk.normalize(x, eps_t, xhat));
});
