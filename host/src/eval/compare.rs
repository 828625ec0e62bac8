//! The side-by-side crop a person looks at: the same region of HR, bicubic
//! and each model's output, labelled, in one PNG (`compare.png` of
//! `calibrate` and `eval`), so a quality difference is seen, not only read.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use image::{Rgb, RgbImage};

use super::dataset::BenchmarkSet;
use super::score_sr;
use crate::bicubic::imresize_u8;
use crate::image_io::{rgb8_to_f32, save_png_atomic, tensor2img, RgbImageF32};

/// Side of the HR region shown, in pixels (clipped to the image).
pub const REGION: u32 = 96;
/// Each HR pixel is drawn as a `ZOOM × ZOOM` block.
pub const ZOOM: u32 = 2;
const GAP: u32 = 6;
const GLYPH_SCALE: u32 = 2;
const LINE_H: u32 = 9 * GLYPH_SCALE;

/// One labelled image of the comparison, full size (HR geometry).
pub struct Panel {
    /// First label line (what produced it).
    pub label: String,
    /// Second label line (e.g. its PSNR-Y), may be empty.
    pub detail: String,
    /// The image, HR-sized.
    pub image: RgbImage,
}

/// An SR model to show: its label and its LR → SR function (the evaluation
/// interface, CHW floats of `u8/255`).
pub type Contender<'a> = (
    String,
    &'a mut dyn FnMut(&RgbImageF32) -> Result<RgbImageF32>,
);

/// Runs every contender on the first image of `set` and writes the labelled
/// comparison (HR, bicubic, then the contenders) to `out`.
pub fn write_comparison(
    root: &Path,
    set: &str,
    scale: usize,
    contenders: &mut [Contender<'_>],
    out: &Path,
) -> Result<()> {
    let set_data = BenchmarkSet::open(root, set, scale)?;
    let entry = set_data
        .entries
        .first()
        .with_context(|| format!("benchmark set {set} is empty"))?;
    let pair = set_data.load(entry)?;
    let (lw, lh) = (pair.lr.width() as usize, pair.lr.height() as usize);
    let (bic, bh, bw) = imresize_u8(pair.lr.as_raw(), lh, lw, 3, scale as f64);
    let bicubic = RgbImage::from_raw(bw as u32, bh as u32, bic).context("bicubic size")?;
    let mut panels = vec![
        Panel {
            label: format!("HR {set}/{}", entry.name),
            detail: String::new(),
            image: pair.gt.clone(),
        },
        panel_of(&format!("bicubic x{scale}"), bicubic, &pair.gt, scale)?,
    ];
    let lr = rgb8_to_f32(&pair.lr);
    for (label, sr) in contenders.iter_mut() {
        let out = sr(&lr).with_context(|| format!("{label} on {set}/{}", entry.name))?;
        panels.push(panel_of(label, tensor2img(&out), &pair.gt, scale)?);
    }
    let img = compose(&panels)?;
    save_png_atomic(out, &img)?;
    eprintln!(
        "wrote {} ({set}/{}, centre crop)",
        out.display(),
        entry.name
    );
    Ok(())
}

fn panel_of(label: &str, sr: RgbImage, gt: &RgbImage, scale: usize) -> Result<Panel> {
    let s = score_sr(&rgb8_to_f32(&sr), gt, scale)?;
    Ok(Panel {
        label: label.to_string(),
        detail: format!("PSNR-Y {:.2} dB", s.psnr_y),
        image: sr,
    })
}

/// The centre `REGION²` crop of each panel, zoomed, side by side under
/// their labels. Every panel must have the first panel's size.
pub fn compose(panels: &[Panel]) -> Result<RgbImage> {
    let first = &panels.first().context("no panels")?.image;
    let (w, h) = first.dimensions();
    for p in panels {
        ensure!(
            p.image.dimensions() == (w, h),
            "panel {:?} is {:?}, expected {w}x{h}",
            p.label,
            p.image.dimensions()
        );
    }
    let (rw, rh) = (REGION.min(w), REGION.min(h));
    let (x0, y0) = ((w - rw) / 2, (h - rh) / 2);
    let (pw, ph) = (rw * ZOOM, rh * ZOOM);
    let n = panels.len() as u32;
    let label_h = 2 * LINE_H + GAP;
    let mut out = RgbImage::from_pixel(
        n * pw + (n + 1) * GAP,
        ph + label_h + 2 * GAP,
        Rgb([255, 255, 255]),
    );
    for (i, p) in panels.iter().enumerate() {
        let left = GAP + i as u32 * (pw + GAP);
        draw_text(&mut out, left, GAP, &p.label);
        draw_text(&mut out, left, GAP + LINE_H, &p.detail);
        let top = GAP + label_h;
        for y in 0..ph {
            for x in 0..pw {
                let px = *p.image.get_pixel(x0 + x / ZOOM, y0 + y / ZOOM);
                out.put_pixel(left + x, top + y, px);
            }
        }
    }
    Ok(out)
}

/// Draws `text` (upper-cased; unknown characters as `?`) in black.
fn draw_text(img: &mut RgbImage, left: u32, top: u32, text: &str) {
    for (k, ch) in text.chars().enumerate() {
        let rows = glyph(ch.to_ascii_uppercase());
        let cx = left + k as u32 * 6 * GLYPH_SCALE;
        for (r, bits) in rows.iter().enumerate() {
            for c in 0..5u32 {
                if bits >> (4 - c) & 1 == 1 {
                    for dy in 0..GLYPH_SCALE {
                        for dx in 0..GLYPH_SCALE {
                            let (x, y) =
                                (cx + c * GLYPH_SCALE + dx, top + r as u32 * GLYPH_SCALE + dy);
                            if x < img.width() && y < img.height() {
                                img.put_pixel(x, y, Rgb([0, 0, 0]));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A 5×7 bitmap glyph, one row per byte, bit 4 leftmost.
fn glyph(c: char) -> [u8; 7] {
    match c {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ' ' => [0; 7],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, v: u8) -> RgbImage {
        RgbImage::from_pixel(w, h, Rgb([v, v, v]))
    }

    #[test]
    fn panels_sit_side_by_side_with_their_centre_crops() {
        let mut a = solid(200, 120, 10);
        a.put_pixel(100, 60, Rgb([1, 2, 3]));
        let panels = [
            Panel {
                label: "HR".into(),
                detail: String::new(),
                image: a,
            },
            Panel {
                label: "FP 29.30".into(),
                detail: "PSNR-Y 1.00 DB".into(),
                image: solid(200, 120, 200),
            },
        ];
        let out = compose(&panels).unwrap();
        let (pw, ph) = (REGION * ZOOM, REGION * ZOOM);
        let top = GAP + 2 * LINE_H + GAP;
        assert_eq!(out.dimensions(), (2 * pw + 3 * GAP, ph + top + GAP));
        // The crop of panel 0 starts at (52, 12): pixel (100, 60) lands at
        // zoomed offset (48, 48)·ZOOM.
        assert_eq!(
            *out.get_pixel(GAP + 48 * ZOOM, top + 48 * ZOOM),
            Rgb([1, 2, 3])
        );
        assert_eq!(*out.get_pixel(2 * GAP + pw + 5, top + 5), Rgb([200; 3]));
        // Labels are drawn (some black pixel in the label strip of each panel).
        for left in [GAP, 2 * GAP + pw] {
            let inked = (0..LINE_H)
                .any(|y| (0..pw).any(|x| *out.get_pixel(left + x, GAP + y) == Rgb([0; 3])));
            assert!(inked, "no label ink at x = {left}");
        }
    }

    #[test]
    fn panels_of_other_sizes_are_refused() {
        let panels = [
            Panel {
                label: "a".into(),
                detail: String::new(),
                image: solid(10, 10, 0),
            },
            Panel {
                label: "b".into(),
                detail: String::new(),
                image: solid(12, 10, 0),
            },
        ];
        assert!(compose(&panels).is_err());
    }
}
