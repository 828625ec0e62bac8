//! Tiled upscaling against untiled upscaling of the same image: the integer
//! model is byte-identical with the exact halo (and visibly not with a halo
//! below the receptive field, so the comparison can fail); the FP model is
//! within the stated tolerance with its default halo.

mod common;

use tdquant_host::cpu_backend::FastIntModel;
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::tiling::{upscale_bands, TilePlan, EXACT_HALO};
use tdquant_host::upscale::{fp_upscale_raw, FP_HALO};

/// A deterministic image with edges and texture at every scale.
fn image(h: usize, w: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let smooth = (x * (c + 1) + 2 * y) as u64 % 256;
                let noise =
                    (((y * 7919 + x * 104_729 + c * 31) as u64).wrapping_mul(2_654_435_761) >> 24)
                        % 64;
                let block = if (x / 37 + y / 23) % 2 == 0 { 40 } else { 0 };
                v.push(((smooth + noise + block) % 256) as u8);
            }
        }
    }
    v
}

fn tiled(
    img: &[u8],
    h: usize,
    w: usize,
    s: usize,
    plan: TilePlan,
    run: &mut tdquant_host::tiling::Upscaler<'_>,
) -> Vec<u8> {
    let mut out = Vec::new();
    upscale_bands(img, h, w, s, plan, run, &mut |b| {
        out.extend_from_slice(b);
        Ok(())
    })
    .unwrap();
    out
}

fn first_diff(a: &[u8], b: &[u8], out_w: usize) -> Option<String> {
    a.iter().zip(b).position(|(x, y)| x != y).map(|i| {
        let px = i / 3;
        format!(
            "first difference at output ({}, {}) channel {}: untiled {} tiled {}",
            px / out_w,
            px % out_w,
            i % 3,
            a[i],
            b[i]
        )
    })
}

#[test]
fn integer_tiles_with_the_exact_halo_are_byte_identical() {
    let Some(sr) = common::golden_w4a4("tiling_exact integer") else {
        return;
    };
    let model = sr.model();
    let fast = FastIntModel::new(&model).unwrap();
    let s = sr.scale();
    // Wider than a core plus two halos, so some tiles are cut on both sides;
    // two bands, so rows are cut too (a taller image would only recompute
    // the same clipped columns: every band's context spans the full height).
    let (h, w) = (48, 472);
    let img = image(h, w);
    let mut run = |x: &[u8], ch: usize, cw: usize| fast.upscale(x, ch, cw);
    let whole = run(&img, h, w).unwrap();
    let plan = TilePlan {
        tile: 40,
        halo: EXACT_HALO,
    };
    let exact = tiled(&img, h, w, s, plan, &mut run);
    assert!(
        exact == whole,
        "halo {EXACT_HALO}: {}",
        first_diff(&whole, &exact, w * s).unwrap_or_default()
    );
    let short = tiled(&img, h, w, s, TilePlan { tile: 40, halo: 16 }, &mut run);
    assert!(
        short != whole,
        "a 16-pixel halo gave identical output: the comparison cannot see seams"
    );
}

#[test]
fn fp_tiles_with_the_default_halo_are_within_tolerance() {
    let Some(root) = data_root_for("tiling_exact fp", TestData::Bundle) else {
        return;
    };
    let model =
        tdquant_host::model::SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let s = model.scale();
    let (h, w) = (72, 160);
    let img = image(h, w);
    let mut run = |x: &[u8], ch: usize, cw: usize| fp_upscale_raw(&model, x, ch, cw);
    let whole = run(&img, h, w).unwrap();
    let plan = TilePlan {
        tile: 48,
        halo: FP_HALO,
    };
    let t = tiled(&img, h, w, s, plan, &mut run);
    let (mut max, mut se) = (0u8, 0f64);
    for (a, b) in whole.iter().zip(&t) {
        let d = a.abs_diff(*b);
        max = max.max(d);
        se += f64::from(d) * f64::from(d);
    }
    let mse = se / whole.len() as f64;
    let psnr = if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    };
    println!("fp tiled vs untiled, halo {FP_HALO}: max |diff| {max}, PSNR {psnr:.2} dB");
    // The tolerance the README states for FP tiling at the default halo.
    assert!(psnr >= 45.0, "PSNR tiled vs untiled {psnr:.2} dB < 45 dB");
    assert!(max <= 24, "max |diff| {max} > 24");
}
