//! The runner's hot operators behind one trait, so a backend can run the
//! network's control flow from [`super::runner`] with its own kernels.
//!
//! [`ScalarKernels`] is the scalar oracle itself: every default method calls
//! the reference operator of this crate. A backend (the Cortex-M4 firmware's
//! DSP kernels, for instance) overrides the methods it accelerates; each
//! override must return exactly the integers (and the same errors for the
//! same arguments) as the default, which its own parity tests check.
//!
//! The methods take `&mut self` so an implementation may own scratch
//! buffers or profiling counters.

use super::attention::{AvCall, SoftmaxCall};
use super::conv::Conv;
use super::gelu::{gelu_code, GeluTable};
use super::layernorm;
use super::linear::{self, LinearCall};
use super::view::I32Src;
use super::OpError;

/// The operators [`super::runner`] dispatches; defaults are the oracle.
pub trait IntKernels {
    /// [`linear::linear`].
    fn linear<W: I32Src + ?Sized, F: FnMut(usize, usize, i64)>(
        &mut self,
        call: &LinearCall<'_, W>,
        emit: F,
    ) -> Result<(), OpError> {
        linear::linear(call, emit)
    }

    /// fc1 and the GELU-threshold quantizer: [`linear::linear`] with every
    /// output `t` of token `i`, row `j` turned into [`gelu_code`]`(t, gelu)`
    /// at `out[i·rows + j]` (positions outside `out` are skipped).
    fn linear_gelu<W: I32Src + ?Sized, G: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        gelu: &G,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        let table = GeluTable::new(gelu);
        let rows = call.rows;
        linear::linear(call, |t, j, v| {
            let at = t.checked_mul(rows).and_then(|i| i.checked_add(j));
            if let Some(dst) = at.and_then(|i| out.get_mut(i)) {
                *dst = match &table {
                    Some(table) => table.code(v),
                    None => gelu_code(v, gelu),
                };
            }
        })
    }

    /// [`linear::linear_codes`].
    fn linear_codes<W: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        levels: u8,
        out: &mut [u8],
    ) -> Result<(), OpError> {
        linear::linear_codes(call, levels, out)
    }

    /// [`linear::linear_stream`].
    fn linear_stream<W: I32Src + ?Sized>(
        &mut self,
        call: &LinearCall<'_, W>,
        pos: &[usize],
        stride: usize,
        r: &mut [i32],
    ) -> Result<(), OpError> {
        linear::linear_stream(call, pos, stride, r)
    }

    /// [`SoftmaxCall::run`].
    fn softmax_codes<W: I32Src + ?Sized>(
        &mut self,
        call: &SoftmaxCall<'_, W>,
        probs: &mut [u8],
    ) -> Result<(), OpError> {
        call.run(probs)
    }

    /// [`AvCall::run`].
    fn av_codes(&mut self, call: &AvCall<'_>, out: &mut [u8]) -> Result<(), OpError> {
        call.run(out)
    }

    /// [`Conv::run`].
    fn conv<W: I32Src, F: FnMut(usize, usize, i64)>(
        &mut self,
        conv: &Conv<'_, W>,
        input: &[i32],
        h: usize,
        w: usize,
        emit: F,
    ) -> Result<(), OpError> {
        conv.run(input, h, w, emit)
    }

    /// [`layernorm::normalize`].
    fn normalize(&mut self, x: &[i32], eps_t: i64, xhat: &mut [i32]) -> Result<(), OpError> {
        layernorm::normalize(x, eps_t, xhat)
    }
}

/// The scalar oracle: every [`IntKernels`] method is the reference operator.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScalarKernels;

impl IntKernels for ScalarKernels {}
