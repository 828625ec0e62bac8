//! Memory-bounded upscaling of any image size: the image is cut into bands
//! of `tile` LR rows and each band into `tile`-wide cores; every core is
//! upscaled as an independent image, its **context** (the core grown by
//! `halo` pixels, clipped to the image), and only the core's output pixels
//! are kept. Output leaves band by band, so memory is one context's working
//! set plus one band of output, whatever the image size.
//!
//! # Exact tiling
//!
//! A context starts at a multiple of 8 in image coordinates, so its 8×8
//! attention windows (and the shifted ones) are the image's own, and a
//! context that reaches the image's bottom/right edge is padded exactly as
//! the whole image is. The shifted windows wrap around (a cyclic roll): the
//! image's first 4 rows/columns share windows with its last 4, and in the
//! integer (and fake-quant) model a masked key still contributes through
//! its quantized probability, so the two edges are coupled. A context that
//! reaches one edge of an axis but not the other therefore carries a
//! **strip** of the opposite edge ([`EXACT_HALO`] wide, on the window grid,
//! stitched on), so its wrap partner is the image's own.
//!
//! What still differs from the whole-image run is confined to the cuts and
//! stitches and spreads inwards by at most the receptive field: 1
//! (`conv_first`) + 4 × (6 blocks × 7 within a window + 1 conv) + 1
//! (`conv_after_body`) + 1 (upsample conv) = [`RECEPTIVE_FIELD`] = 175 LR
//! pixels, starting up to 8 pixels inside a cut (a window straddling it).
//! A halo and strips of [`EXACT_HALO`] = 192 ≥ 175 + 8 therefore make the
//! tiled output **byte-identical** to the untiled one for the integer model
//! (`tests/tiling_exact.rs`); the FP model with a smaller halo is within the
//! tolerance that test states.

use anyhow::{bail, Result};

/// Receptive field of SwinIR-light, in LR pixels (see the module docs).
pub const RECEPTIVE_FIELD: usize = 175;
/// Smallest multiple of 8 covering the receptive field plus a straddling
/// window: with it, tiled integer output equals untiled output exactly.
pub const EXACT_HALO: usize = 192;
/// Default memory budget of one upscale (override: `--mem-budget-mib`).
pub const DEFAULT_BUDGET: usize = 1 << 30;
/// Working set of the fast integer path per LR pixel (padded maps, code
/// buffers, output), measured: `tests/tiling_exact.rs` prints it.
pub const INT_BYTES_PER_LR_PIXEL: usize = 1_700;
/// Working set of the candle FP forward per LR pixel (attention maps and
/// activations of one block), measured likewise.
pub const FP_BYTES_PER_LR_PIXEL: usize = 6_000;

/// How an image is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePlan {
    /// Core side in LR pixels (a multiple of 8).
    pub tile: usize,
    /// Context added on every side (a multiple of 8).
    pub halo: usize,
}

/// One axis of a cut: the image intervals stitched into the context, in
/// order, and where the core sits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxisCut {
    /// `[start, end)` intervals of the image, concatenated.
    pub pieces: Vec<(usize, usize)>,
    /// The core's `[start, end)` in the image.
    pub core: (usize, usize),
    /// The core's start in the context.
    pub core_offset: usize,
}

impl AxisCut {
    /// Length of the context along this axis.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|(a, b)| b - a).sum()
    }

    /// True for an empty context (never produced by [`TilePlan::band`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The image index of every context index, in order.
    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.pieces.iter().flat_map(|&(a, b)| a..b)
    }
}

/// One core and its context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Rows.
    pub rows: AxisCut,
    /// Columns.
    pub cols: AxisCut,
}

impl TilePlan {
    /// A user's `--tile` / `--halo`, validated and clipped to the image:
    /// both rounded up to multiples of 8 (the window grid), the core no
    /// larger than the image's longer side, the halo no larger than needed
    /// to reach across the image.
    pub fn clipped(tile: usize, halo: usize, h: usize, w: usize) -> Result<Self> {
        if tile == 0 {
            bail!("--tile must be at least 1 LR pixel");
        }
        let side = h.max(w).max(1);
        let round8 = |v: usize| v.min(side).div_ceil(8) * 8;
        Ok(Self {
            tile: round8(tile),
            halo: round8(halo),
        })
    }

    /// The largest exact plan whose context fits `budget` bytes at
    /// `bytes_per_px`, or `None` when the whole image fits (no tiling).
    pub fn for_budget(
        h: usize,
        w: usize,
        halo: usize,
        budget: usize,
        bytes_per_px: usize,
    ) -> Result<Option<Self>> {
        let need = h.saturating_mul(w).saturating_mul(bytes_per_px);
        if need <= budget {
            return Ok(None);
        }
        let max_side = ((budget / bytes_per_px.max(1)) as f64).sqrt() as usize;
        let tile = max_side.saturating_sub(Self::context_extra(halo)) / 8 * 8;
        if tile < 8 {
            bail!(
                "memory budget of {} MiB is too small for tiles with a {halo}-pixel halo \
                 (a context of at least {} LR pixels square needs {} MiB)",
                budget >> 20,
                8 + Self::context_extra(halo),
                ((8 + Self::context_extra(halo)).pow(2) * bytes_per_px) >> 20
            );
        }
        Ok(Some(Self { tile, halo }))
    }

    /// How much longer than its core a context can be along one axis: a halo
    /// on each side, or, where the core reaches an edge, a halo on the inner
    /// side and the opposite edge's strip instead of the clipped outer halo.
    /// Cores and halos lie on the window grid; the far strip starts on it
    /// too, so it is up to 7 pixels wider than [`EXACT_HALO`].
    pub const fn context_extra(halo: usize) -> usize {
        let strip = EXACT_HALO + 7;
        halo + if halo > strip { halo } else { strip }
    }

    /// The cuts of one band of core rows starting at `y`, left to right.
    pub fn band(&self, h: usize, w: usize, y: usize) -> Vec<Cut> {
        let rows = axis((y, (y + self.tile).min(h)), self.halo, h);
        (0..w)
            .step_by(self.tile)
            .map(|x| Cut {
                rows: rows.clone(),
                cols: axis((x, (x + self.tile).min(w)), self.halo, w),
            })
            .collect()
    }
}

const fn align_down(v: usize) -> usize {
    v / 8 * 8
}

/// The context of core `[a, b)` on an axis of length `n` (see the module
/// docs): the core grown by `halo` on the window grid, plus a strip of the
/// opposite edge when only one edge is reached.
fn axis((a, b): (usize, usize), halo: usize, n: usize) -> AxisCut {
    let mut c0 = align_down(a.saturating_sub(halo));
    let mut c1 = (b + halo).div_ceil(8) * 8;
    if c1 >= n {
        c1 = n;
    }
    // Strips are EXACT_HALO wide: what reaches them from the stitch must
    // die out before their far end, the edge that wraps.
    let tail = align_down(n.saturating_sub(EXACT_HALO));
    let head = EXACT_HALO;
    if c0 == 0 && c1 < n && tail <= c1 {
        c1 = n;
    }
    if c1 == n && c0 > 0 && head >= c0 {
        c0 = 0;
    }
    let mut pieces = Vec::with_capacity(2);
    let mut core_offset = a - c0;
    if c1 == n && c0 > 0 {
        pieces.push((0, head));
        core_offset += head;
    }
    pieces.push((c0, c1));
    if c0 == 0 && c1 < n {
        pieces.push((tail, n));
    }
    AxisCut {
        pieces,
        core: (a, b),
        core_offset,
    }
}

/// How to cut the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileChoice {
    /// `--tile`: forces tiling with this core side (clipped to the image).
    pub tile: Option<usize>,
    /// `--halo` (default: exact for the integer model, [`FP_HALO`] for FP).
    pub halo: Option<usize>,
    /// Memory budget in bytes for automatic tiling.
    pub budget: usize,
}

impl Default for TileChoice {
    fn default() -> Self {
        Self {
            tile: None,
            halo: None,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl TileChoice {
    /// The plan for an `h × w` image (`None`: untiled).
    pub fn plan(
        &self,
        h: usize,
        w: usize,
        default_halo: usize,
        bytes_per_px: usize,
    ) -> Result<Option<TilePlan>> {
        let halo = self.halo.unwrap_or(default_halo);
        match self.tile {
            Some(t) => Ok(Some(TilePlan::clipped(t, halo, h, w)?)),
            None => TilePlan::for_budget(h, w, halo, self.budget, bytes_per_px),
        }
    }
}

/// A whole-image upscaler: `(rgb8, h, w)` → the `(s·h) × (s·w)` RGB8 output.
pub type Upscaler<'a> = dyn FnMut(&[u8], usize, usize) -> Result<Vec<u8>> + 'a;

/// Upscales `img` (`h × w` RGB8) by `scale` tile by tile (`plan`), handing
/// each finished band of output rows (`rows × (scale·w) × 3` bytes) to
/// `emit`. `upscale(ctx, ch, cw)` is any whole-image upscaler.
pub fn upscale_bands(
    img: &[u8],
    h: usize,
    w: usize,
    scale: usize,
    plan: TilePlan,
    upscale: &mut Upscaler<'_>,
    emit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if img.len() != h * w * 3 {
        bail!("input: expected {} bytes, got {}", h * w * 3, img.len());
    }
    let out_w = w * scale;
    let mut y = 0;
    while y < h {
        let cuts = plan.band(h, w, y);
        let core_h = cuts[0].rows.core.1 - y;
        let mut band = vec![0u8; core_h * scale * out_w * 3];
        for cut in &cuts {
            let (ch, cw) = (cut.rows.len(), cut.cols.len());
            let mut ctx = Vec::with_capacity(ch * cw * 3);
            for row in cut.rows.indices() {
                for &(a, b) in &cut.cols.pieces {
                    ctx.extend_from_slice(&img[(row * w + a) * 3..(row * w + b) * 3]);
                }
            }
            let up = upscale(&ctx, ch, cw)?;
            if up.len() != ch * scale * cw * scale * 3 {
                bail!(
                    "upscaler returned {} bytes for a {ch}x{cw} context",
                    up.len()
                );
            }
            let (cx0, cx1) = cut.cols.core;
            let row_bytes = (cx1 - cx0) * scale * 3;
            for oy in 0..core_h * scale {
                let sy = cut.rows.core_offset * scale + oy;
                let sx = cut.cols.core_offset * scale;
                let src = &up[(sy * cw * scale + sx) * 3..][..row_bytes];
                band[(oy * out_w + cx0 * scale) * 3..][..row_bytes].copy_from_slice(src);
            }
        }
        emit(&band)?;
        y += core_h;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_sit_on_the_window_grid_and_carry_the_wrap_partner() {
        let plan = TilePlan { tile: 40, halo: 16 };
        let (h, w) = (100, 700);
        let mut covered = vec![0u8; h * w];
        let check = |ax: &AxisCut, n: usize| {
            let mut off = 0;
            for (i, &(a, b)) in ax.pieces.iter().enumerate() {
                assert_eq!(a % 8, 0, "piece start off the grid: {ax:?}");
                assert_eq!(off % 8, 0, "piece placed off the grid: {ax:?}");
                if i + 1 < ax.pieces.len() {
                    assert_eq!(b % 8, 0, "inner piece end off the grid: {ax:?}");
                }
                off += b - a;
            }
            // Both edges or neither: the wrap partner is the image's own.
            let (first, last) = (ax.pieces[0].0, ax.pieces[ax.pieces.len() - 1].1);
            assert_eq!(first == 0, last == n, "{ax:?}");
            let (a, b) = ax.core;
            assert_eq!(ax.indices().nth(ax.core_offset), Some(a), "{ax:?}");
            let main = ax.pieces.iter().find(|p| p.0 <= a && b <= p.1).unwrap();
            assert!(main.0 + 16 <= a || main.0 == 0, "{ax:?}");
            assert!(main.1 >= (b + 16).min(n), "{ax:?}");
        };
        let mut y = 0;
        while y < h {
            let cuts = plan.band(h, w, y);
            for c in &cuts {
                check(&c.rows, h);
                check(&c.cols, w);
                for yy in c.rows.core.0..c.rows.core.1 {
                    for xx in c.cols.core.0..c.cols.core.1 {
                        covered[yy * w + xx] += 1;
                    }
                }
            }
            y = cuts[0].rows.core.1;
        }
        assert!(
            covered.iter().all(|&c| c == 1),
            "every pixel in exactly one core"
        );
    }

    #[test]
    fn bands_reassemble_an_identity_upscaler_exactly() {
        // A 2x nearest-neighbour "upscaler" that depends only on the pixel:
        // any tiling must give the untiled image.
        let (h, w, s) = (37, 29, 2);
        let img: Vec<u8> = (0..h * w * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut nn = |x: &[u8], ch: usize, cw: usize| -> Result<Vec<u8>> {
            let mut o = vec![0u8; ch * s * cw * s * 3];
            for y in 0..ch * s {
                for xx in 0..cw * s {
                    let src = ((y / s) * cw + xx / s) * 3;
                    o[(y * cw * s + xx) * 3..][..3].copy_from_slice(&x[src..src + 3]);
                }
            }
            Ok(o)
        };
        let whole = nn(&img, h, w).unwrap();
        for (tile, halo) in [(8, 0), (16, 8), (24, 16), (64, 64)] {
            let mut got = Vec::new();
            upscale_bands(&img, h, w, s, TilePlan { tile, halo }, &mut nn, &mut |b| {
                got.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
            assert!(got == whole, "tile {tile} halo {halo}");
        }
    }

    #[test]
    fn user_tiles_are_clipped_and_budgets_checked() {
        let p = TilePlan::clipped(100_000, 100_000, 50, 70).unwrap();
        assert_eq!(p, TilePlan { tile: 72, halo: 72 });
        assert!(TilePlan::clipped(0, 8, 10, 10).is_err());
        assert_eq!(
            TilePlan::for_budget(10, 10, 192, 1 << 30, 1700).unwrap(),
            None
        );
        let p = TilePlan::for_budget(4000, 4000, 192, 1 << 30, 1700)
            .unwrap()
            .unwrap();
        assert_eq!(p.tile % 8, 0);
        // Every context of the plan fits the budget, and the bound is
        // reached (the plan is not needlessly small).
        for (h, w, halo) in [(4000, 4000, 192), (1500, 1500, 32), (999, 4000, 64)] {
            let p = TilePlan::for_budget(h, w, halo, 1 << 30, 1700)
                .unwrap()
                .unwrap();
            let mut largest = 0;
            let mut y = 0;
            while y < h {
                for cut in p.band(h, w, y) {
                    let (ch, cw) = (cut.rows.len(), cut.cols.len());
                    assert!(ch * cw * 1700 <= 1 << 30, "{h}x{w} halo {halo}: {ch}x{cw}");
                    largest = largest.max(ch.max(cw));
                }
                y += p.tile;
            }
            assert!(largest <= p.tile + TilePlan::context_extra(halo));
            assert!(largest + 8 > p.tile + TilePlan::context_extra(halo) - 8);
        }
        let e = TilePlan::for_budget(4000, 4000, 192, 1 << 20, 1700).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
    }
}
