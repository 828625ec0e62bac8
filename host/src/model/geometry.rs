//! Size-dependent index tables: evaluation padding, window partition (with the cyclic shift),
//! shifted-window region labels and masks, relative-position indices.
//!
//! Conventions: pixels are row-major (`p = y·W + x`); windows are row-major over the
//! `(H/8) × (W/8)` grid; the window-partitioned order lists window 0's 64 tokens (row-major
//! inside the window), then window 1's, and so on, as `window_partition` does.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor};

use crate::weights::WINDOW;

/// Cyclic shift of the odd blocks (`window_size / 2`).
pub const SHIFT: usize = WINDOW / 2;
/// Value of a masked attention logit.
pub const MASK_VALUE: f32 = -100.0;
/// Tokens per window.
pub const WINDOW_TOKENS: usize = WINDOW * WINDOW;

/// Padding the evaluation adds to a side of length `n`: up to the next multiple of 8, 0 if `n`
/// is already one.
pub fn pad_amount(n: usize) -> usize {
    (WINDOW - n % WINDOW) % WINDOW
}

/// Source index of each of the `target` positions of the mirror padding of a side of length
/// `n`: the image followed by its flipped copy (which repeats the edge pixel), repeated as
/// needed, cropped to `target`. For `n = 5, target = 8`: `0 1 2 3 4 4 3 2`.
pub fn mirror_pad_indices(n: usize, target: usize) -> Vec<u32> {
    assert!(n > 0, "empty side");
    (0..target)
        .map(|i| {
            let m = i % (2 * n);
            (if m < n { m } else { 2 * n - 1 - m }) as u32
        })
        .collect()
}

/// Pads `x` (`[B, C, H, W]`) bottom/right to multiples of 8 with [`mirror_pad_indices`]; returns
/// `x` itself when nothing is padded.
pub fn pad_to_window(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (ph, pw) = (pad_amount(h), pad_amount(w));
    let mut x = x.clone();
    if ph > 0 {
        let idx = mirror_pad_indices(h, h + ph);
        let idx = Tensor::from_vec(idx, h + ph, x.device())?;
        x = x.index_select(&idx, 2)?;
    }
    if pw > 0 {
        let idx = mirror_pad_indices(w, w + pw);
        let idx = Tensor::from_vec(idx, w + pw, x.device())?;
        x = x.index_select(&idx, 3)?;
    }
    Ok(x)
}

/// Shifted-window region label of every pixel of an `h × w` map (row-major), in the rolled
/// frame: rows split at `[0, h−8) [h−8, h−4) [h−4, h)`, the same for columns,
/// label = `3·row_region + col_region`.
pub fn region_labels(h: usize, w: usize) -> Vec<u8> {
    let region = |i: usize, n: usize| -> u8 {
        if i < n - WINDOW {
            0
        } else if i < n - SHIFT {
            1
        } else {
            2
        }
    };
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            out.push(3 * region(y, h) + region(x, w));
        }
    }
    out
}

/// The shifted-window attention mask, `[nW, 64, 64]` flattened: [`MASK_VALUE`] where the region
/// labels of the two tokens of a window differ, 0 elsewhere.
pub fn shift_mask(h: usize, w: usize) -> Vec<f32> {
    let labels = region_labels(h, w);
    let order = partition_order(h, w, false);
    let n_w = (h / WINDOW) * (w / WINDOW);
    let mut mask = vec![0f32; n_w * WINDOW_TOKENS * WINDOW_TOKENS];
    for win in 0..n_w {
        let toks = &order[win * WINDOW_TOKENS..(win + 1) * WINDOW_TOKENS];
        for (i, &pi) in toks.iter().enumerate() {
            for (j, &pj) in toks.iter().enumerate() {
                if labels[pi as usize] != labels[pj as usize] {
                    mask[(win * WINDOW_TOKENS + i) * WINDOW_TOKENS + j] = MASK_VALUE;
                }
            }
        }
    }
    mask
}

/// The shifted-window mask in compact form. A window's mask depends only on whether it is in
/// the last window row and/or the last window column (elsewhere all its tokens share one
/// region and the mask is zero), so 4 mask classes of `64·64` values cover any input size.
#[derive(Debug, Clone)]
pub struct ShiftMask {
    /// Class `c = 2·last_row + last_col`, `4·64·64` values ([`MASK_VALUE`] or 0).
    pub classes: Vec<f32>,
    /// Class of each window (row-major over the window grid).
    pub window_class: Vec<u8>,
}

impl ShiftMask {
    /// The mask of an `h × w` input (multiples of 8).
    pub fn new(h: usize, w: usize) -> Self {
        assert!(
            h.is_multiple_of(WINDOW) && w.is_multiple_of(WINDOW) && h > 0 && w > 0,
            "{h}×{w} is not a non-zero multiple of {WINDOW}"
        );
        let (gh, gw) = (h / WINDOW, w / WINDOW);
        // Region of in-window row r for an interior window row (0) or the last one (1/2).
        let region = |last: bool, r: usize| -> u8 {
            if !last {
                0
            } else if r < SHIFT {
                1
            } else {
                2
            }
        };
        let n = WINDOW_TOKENS;
        let mut classes = vec![0f32; 4 * n * n];
        for class in 0..4 {
            let (last_row, last_col) = (class / 2 == 1, class % 2 == 1);
            let label = |t: usize| 3 * region(last_row, t / WINDOW) + region(last_col, t % WINDOW);
            for i in 0..n {
                for j in 0..n {
                    if label(i) != label(j) {
                        classes[(class * n + i) * n + j] = MASK_VALUE;
                    }
                }
            }
        }
        let window_class = (0..gh * gw)
            .map(|win| 2 * u8::from(win / gw == gh - 1) + u8::from(win % gw == gw - 1))
            .collect();
        ShiftMask {
            classes,
            window_class,
        }
    }

    /// Number of windows.
    pub fn n_windows(&self) -> usize {
        self.window_class.len()
    }

    /// The `64·64` mask of window `win`, or `None` when it is all zeros.
    #[inline]
    pub fn window(&self, win: usize) -> Option<&[f32]> {
        let c = self.window_class[win] as usize;
        let n = WINDOW_TOKENS * WINDOW_TOKENS;
        (c != 0).then(|| &self.classes[c * n..(c + 1) * n])
    }

    /// The full `[nW, 64, 64]` mask, flattened (equals [`shift_mask`]).
    pub fn expand(&self) -> Vec<f32> {
        let n = WINDOW_TOKENS * WINDOW_TOKENS;
        let mut out = Vec::with_capacity(self.n_windows() * n);
        for win in 0..self.n_windows() {
            match self.window(win) {
                Some(m) => out.extend_from_slice(m),
                None => out.extend(std::iter::repeat_n(0f32, n)),
            }
        }
        out
    }
}

/// For each token of the window-partitioned order, the pixel it is read from. With
/// `shifted`, the map is first rolled by (−4, −4) (`torch.roll(x, (−4, −4), (1, 2))`), so the
/// token at rolled position `(y, x)` reads pixel `((y+4) mod h, (x+4) mod w)`. The same table
/// undoes the partition and the roll: output pixel `order[t]` takes token `t`.
pub fn partition_order(h: usize, w: usize, shifted: bool) -> Vec<u32> {
    assert!(
        h.is_multiple_of(WINDOW) && w.is_multiple_of(WINDOW),
        "{h}×{w} is not a multiple of {WINDOW}"
    );
    let s = if shifted { SHIFT } else { 0 };
    let mut out = Vec::with_capacity(h * w);
    for wy in 0..h / WINDOW {
        for wx in 0..w / WINDOW {
            for r in 0..WINDOW {
                for c in 0..WINDOW {
                    let y = (wy * WINDOW + r + s) % h;
                    let x = (wx * WINDOW + c + s) % w;
                    out.push((y * w + x) as u32);
                }
            }
        }
    }
    out
}

/// Inverse permutation.
pub fn invert(perm: &[u32]) -> Vec<u32> {
    let mut inv = vec![0u32; perm.len()];
    for (t, &p) in perm.iter().enumerate() {
        inv[p as usize] = t as u32;
    }
    inv
}

/// Relative-position index of token pair `(i, j)` of a window, `64 × 64` row-major:
/// `(y_i − y_j + 7)·15 + (x_i − x_j + 7)`.
pub fn relative_position_index() -> Vec<u32> {
    let n = WINDOW as i64;
    let mut out = Vec::with_capacity(WINDOW_TOKENS * WINDOW_TOKENS);
    for i in 0..WINDOW_TOKENS as i64 {
        for j in 0..WINDOW_TOKENS as i64 {
            let (yi, xi, yj, xj) = (i / n, i % n, j / n, j % n);
            out.push(((yi - yj + n - 1) * (2 * n - 1) + (xi - xj + n - 1)) as u32);
        }
    }
    out
}

/// The per-size tables of one input size, built once and cached by the model.
#[derive(Debug)]
pub struct Geometry {
    /// Height (multiple of 8).
    pub h: usize,
    /// Width (multiple of 8).
    pub w: usize,
    /// Number of windows per image.
    pub n_windows: usize,
    /// [`partition_order`] without shift, `u32 [HW]`.
    pub order: Tensor,
    /// Its inverse.
    pub inverse: Arc<Vec<u32>>,
    /// [`partition_order`] with shift.
    pub order_shifted: Tensor,
    /// Its inverse.
    pub inverse_shifted: Arc<Vec<u32>>,
    /// The shifted-window mask ([`ShiftMask`], compact).
    pub mask: Arc<ShiftMask>,
}

impl Geometry {
    /// Builds the tables for an `h × w` input (multiples of 8).
    pub fn new(h: usize, w: usize, device: &Device) -> Result<Self> {
        if h == 0 || w == 0 || !h.is_multiple_of(WINDOW) || !w.is_multiple_of(WINDOW) {
            candle_core::bail!("input {h}×{w} is not a non-zero multiple of {WINDOW}");
        }
        let n_windows = (h / WINDOW) * (w / WINDOW);
        let order = partition_order(h, w, false);
        let order_shifted = partition_order(h, w, true);
        let t = |v: Vec<u32>| Tensor::from_vec(v, h * w, device);
        Ok(Geometry {
            h,
            w,
            n_windows,
            inverse: Arc::new(invert(&order)),
            order: t(order)?,
            inverse_shifted: Arc::new(invert(&order_shifted)),
            order_shifted: t(order_shifted)?,
            mask: Arc::new(ShiftMask::new(h, w)),
        })
    }
}
