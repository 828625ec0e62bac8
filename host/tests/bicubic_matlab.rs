//! The Rust bicubic downscaler against the benchmark LR files (MATLAB
//! `imresize` outputs, or files made by the bit-exact `matlab_resize.py`):
//! byte for byte, every HR image of Set5, Set14 and B100, at x2, x3, x4.

use std::path::Path;

use image::{DynamicImage, RgbImage};
use tdquant_host::bicubic::{downscale, mod_crop};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::eval::dataset::{find_lr_file, list_images, lr_dir};
use tdquant_host::image_io::read_rgb8;

/// Compares two RGB8 images; `Err` describes the first difference and counts.
fn compare(got: &RgbImage, want: &RgbImage) -> Result<(), String> {
    if got.dimensions() != want.dimensions() {
        return Err(format!(
            "size {:?} vs expected {:?}",
            got.dimensions(),
            want.dimensions()
        ));
    }
    let mut first = None;
    let mut count = 0usize;
    let mut max = 0u8;
    for (x, y, p) in got.enumerate_pixels() {
        let q = want.get_pixel(x, y);
        for c in 0..3 {
            if p[c] != q[c] {
                count += 1;
                max = max.max(p[c].abs_diff(q[c]));
                first.get_or_insert((x, y, c, p[c], q[c]));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((x, y, c, g, w)) => Err(format!(
            "{count} samples differ (max |diff| {max}); first at x={x} y={y} channel {c}: got {g}, expected {w}"
        )),
    }
}

fn check_set(root: &Path, set: &str, failures: &mut Vec<String>) -> usize {
    let hr_dir = root.join("benchmark").join(set).join("HR");
    let hr = list_images(&hr_dir).expect("list HR");
    assert!(!hr.is_empty(), "no HR images in {}", hr_dir.display());
    let mut checked = 0;
    for (name, hr_path) in &hr {
        let hr_img = read_rgb8(hr_path).expect("read HR");
        // Gray sources are also checked through the single-channel path.
        let gray = match image::open(hr_path).expect("open HR") {
            DynamicImage::ImageLuma8(g) => Some(g),
            _ => None,
        };
        for s in [2usize, 3, 4] {
            let lr_path = find_lr_file(&lr_dir(root, set, s), name, s)
                .unwrap_or_else(|| panic!("{set}: no x{s} LR file for {name}"));
            let want = read_rgb8(&lr_path).expect("read LR");
            let got = downscale(&hr_img, s).expect("downscale");
            if let Err(e) = compare(&got, &want) {
                failures.push(format!("{set}/{name} x{s}: {e}"));
            }
            if let Some(g) = &gray {
                let gl = downscale(g, s).expect("downscale gray");
                let rgb = RgbImage::from_fn(gl.width(), gl.height(), |x, y| {
                    let v = gl.get_pixel(x, y)[0];
                    image::Rgb([v, v, v])
                });
                if let Err(e) = compare(&rgb, &want) {
                    failures.push(format!("{set}/{name} x{s} (gray path): {e}"));
                }
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn bicubic_matches_benchmark_lr_files() {
    let Some(root) = data_root_for_test("bicubic_matches_benchmark_lr_files") else {
        return;
    };
    let mut failures = Vec::new();
    let mut total = 0;
    for set in ["Set5", "Set14", "B100"] {
        let n = check_set(&root, set, &mut failures);
        eprintln!("{set}: {n} (image, scale) pairs checked");
        total += n;
    }
    assert_eq!(total, (5 + 14 + 100) * 3);
    assert!(
        failures.is_empty(),
        "{} of {total} LR images differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mod_crop_keeps_top_left() {
    let img = RgbImage::from_fn(11, 7, |x, y| image::Rgb([x as u8, y as u8, 0]));
    let c = mod_crop(&img, 3);
    assert_eq!(c.dimensions(), (9, 6));
    assert_eq!(c.get_pixel(8, 5), img.get_pixel(8, 5));
    assert_eq!(mod_crop(&img, 1), img);
}
