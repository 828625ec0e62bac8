//! Tile-wise execution ([`upscale_tiled`], [`upscale_tiled_with`]) and the
//! output sinks; the tiling rule is in the [`super::runner`] module docs.

use super::kernels::{IntKernels, ScalarKernels};
use super::model::IntModel;
use super::runner::{check_input, check_io, run_region, scratch_len, Rect, RunError, ScratchLen};

/// Tile-wise processing parameters (see the [runner docs](super::runner)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Tiling {
    /// Core side in LR pixels (≥ 1).
    pub tile: usize,
    /// Context added on every side, in LR pixels.
    pub halo: usize,
}

impl Tiling {
    /// Scratch for any core of this tiling (the largest context is
    /// `tile + 2·halo` square).
    pub fn scratch_len(&self) -> Option<ScratchLen> {
        let side = self.halo.checked_mul(2)?.checked_add(self.tile)?;
        scratch_len(side, side)
    }
}

/// Receives the output pixels of [`upscale_tiled_with`].
pub trait PixelSink {
    /// Colour `c` of HR pixel `(y, x)` is `v` (each is delivered once).
    fn put(&mut self, y: usize, x: usize, c: usize, v: u8);
    /// Every HR row `< rows` is complete: no later `put` touches it. Called
    /// after each row of cores, with increasing `rows`.
    fn rows_done(&mut self, rows: usize) {
        let _ = rows;
    }
}

/// A [`PixelSink`] writing a whole interleaved RGB image.
pub(crate) struct ImageOut<'o> {
    out: &'o mut [u8],
    row_bytes: usize,
}

impl<'o> ImageOut<'o> {
    #[allow(clippy::arithmetic_side_effects)] // check_io bounded w·s·3
    pub(crate) fn new(out: &'o mut [u8], w: usize, s: usize) -> Self {
        Self {
            out,
            row_bytes: w * s * 3,
        }
    }
}

impl PixelSink for ImageOut<'_> {
    #[allow(clippy::arithmetic_side_effects)] // y, x inside the checked output image
    fn put(&mut self, y: usize, x: usize, c: usize, v: u8) {
        if let Some(dst) = self.out.get_mut(y * self.row_bytes + x * 3 + c) {
            *dst = v;
        }
    }
}

/// [`upscale`](super::runner::upscale) tile by tile (see the
/// [runner docs](super::runner)). Scratch: [`Tiling::scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn upscale_tiled(
    model: &IntModel<'_>,
    img: &[u8],
    h: usize,
    w: usize,
    tiling: Tiling,
    out: &mut [u8],
    words: &mut [i32],
    bytes: &mut [u8],
) -> Result<(), RunError> {
    check_io(model, img.len(), h, w, out.len())?;
    let mut sink = ImageOut::new(out, w, model.scale());
    upscale_tiled_with(
        &mut ScalarKernels,
        model,
        img,
        h,
        w,
        tiling,
        &mut sink,
        words,
        bytes,
    )
}

/// [`upscale_tiled`] with the operators of `kernels`, handing the output
/// pixels to `sink` (cores in raster order, so a sink can stream finished
/// rows instead of holding the image). The sink is not size-checked.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // see the module docs, Index arithmetic
pub fn upscale_tiled_with<K: IntKernels, S: PixelSink>(
    kernels: &mut K,
    model: &IntModel<'_>,
    img: &[u8],
    h: usize,
    w: usize,
    tiling: Tiling,
    sink: &mut S,
    words: &mut [i32],
    bytes: &mut [u8],
) -> Result<(), RunError> {
    check_input(img.len(), h, w)?;
    if tiling.tile == 0 {
        return Err(RunError::BadSize);
    }
    // The output size must be representable (the sink addresses it).
    h.checked_mul(model.scale())
        .and_then(|v| v.checked_mul(w))
        .and_then(|v| v.checked_mul(3 * model.scale()))
        .ok_or(RunError::BadSize)?;
    let mut ty = 0;
    while ty < h {
        let th = tiling.tile.min(h - ty);
        let mut tx = 0;
        while tx < w {
            let tw = tiling.tile.min(w - tx);
            let core_rect = Rect {
                y: ty,
                x: tx,
                h: th,
                w: tw,
            };
            let y0 = ty.saturating_sub(tiling.halo);
            let x0 = tx.saturating_sub(tiling.halo);
            let y1 = ty.saturating_add(th).saturating_add(tiling.halo).min(h);
            let x1 = tx.saturating_add(tw).saturating_add(tiling.halo).min(w);
            let context = Rect {
                y: y0,
                x: x0,
                h: y1 - y0,
                w: x1 - x0,
            };
            run_region(
                kernels, model, img, w, context, core_rect, sink, words, bytes,
            )?;
            tx += tw;
        }
        ty += th;
        sink.rows_done(ty * model.scale());
    }
    Ok(())
}
