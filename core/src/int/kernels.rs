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

use crate::packed::PackedMatrix;

use super::attention::{self, AvParams, QkParams};
use super::conv::Conv;
use super::gelu::{gelu_code, GeluTable};
use super::layernorm;
use super::linear::{self, CodeAffine};
use super::view::{I32Src, LeI16};
use super::OpError;

/// The operators [`super::runner`] dispatches; defaults are the oracle.
pub trait IntKernels {
    /// [`linear::linear`].
    #[allow(clippy::too_many_arguments)]
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
        linear::linear(input, k, weights, row0, rows, affine, c, emit)
    }

    /// fc1 and the GELU-threshold quantizer: [`linear::linear`] with every
    /// output `t` of token `i`, row `j` turned into [`gelu_code`]`(t, gelu)`
    /// at `out[i·rows + j]` (positions outside `out` are skipped).
    #[allow(clippy::too_many_arguments)]
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
        let table = GeluTable::new(gelu);
        linear::linear(input, k, weights, row0, rows, affine, c, |t, j, v| {
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
    #[allow(clippy::too_many_arguments)]
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
        linear::linear_codes(input, k, weights, row0, rows, affine, c, levels, out)
    }

    /// [`linear::linear_stream`].
    #[allow(clippy::too_many_arguments)]
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
        linear::linear_stream(input, k, weights, row0, rows, affine, c, pos, stride, r)
    }

    /// [`attention::softmax_codes`].
    #[allow(clippy::too_many_arguments)]
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
        attention::softmax_codes(q, k, stride, col, qk, rpb, labels, thresholds, probs)
    }

    /// [`attention::av_codes`].
    #[allow(clippy::too_many_arguments)]
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
        attention::av_codes(probs, v, stride, col, av, levels, out, out_stride)
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
