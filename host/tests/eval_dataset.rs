//! Benchmark-set loading: listing, GT cropping, LR generation when a scale's
//! LR folder is missing, and errors for missing files.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::eval::dataset::{crop_gt, lr_dir};
use tdquant_host::eval::{evaluate_sets, BenchmarkSet, RgbImageF32};
use tdquant_host::image_io::read_rgb8;

struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("tdquant-eval-dataset-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_hr(src_root: &Path, set: &str, name: &str, dst_root: &Path, dst_set: &str) {
    let dst = dst_root.join("benchmark").join(dst_set).join("HR");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(
        src_root
            .join("benchmark")
            .join(set)
            .join("HR")
            .join(format!("{name}.png")),
        dst.join(format!("{name}.png")),
    )
    .unwrap();
}

/// Nearest-neighbour x`s` upscaling, a stand-in super-resolver.
fn nearest(lr: &RgbImageF32, s: usize) -> RgbImageF32 {
    let (h, w) = (lr.h * s, lr.w * s);
    let mut out = RgbImageF32::zeros(h, w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                out.data[(c * h + y) * w + x] = lr.get(c, y / s, x / s);
            }
        }
    }
    out
}

#[test]
fn generated_lr_equals_stored_lr() {
    let Some(root) = data_root_for_test("generated_lr_equals_stored_lr") else {
        return;
    };
    let tmp = TempRoot::new("gen");
    // Unsorted on purpose; `bridge` is a gray PNG, `comic` has odd sizes.
    for name in ["zebra", "bridge", "comic"] {
        copy_hr(&root, "Set14", name, &tmp.0, "Mini");
    }
    for s in [2, 3, 4] {
        let gen = BenchmarkSet::open(&tmp.0, "Mini", s).unwrap();
        assert!(gen.generated_lr);
        let names: Vec<&str> = gen.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bridge", "comic", "zebra"]);
        let stored = BenchmarkSet::open(&root, "Set14", s).unwrap();
        assert!(!stored.generated_lr);
        for e in &gen.entries {
            let p = gen.load(e).unwrap();
            let se = stored.entries.iter().find(|x| x.name == e.name).unwrap();
            let q = stored.load(se).unwrap();
            assert_eq!(
                p.lr, q.lr,
                "{} x{s}: generated LR differs from the stored file",
                e.name
            );
            assert_eq!(p.gt, q.gt);
            assert_eq!(p.gt.width(), p.lr.width() * s as u32);
            assert_eq!(p.gt.height(), p.lr.height() * s as u32);
        }
    }
    // The runner gives identical scores on the generated and the stored LR.
    let mut sr = |lr: &RgbImageF32| -> anyhow::Result<RgbImageF32> { Ok(nearest(lr, 3)) };
    let a = evaluate_sets(&tmp.0, &["Mini"], 3, &mut sr).unwrap();
    assert!(a.sets[0].generated_lr);
    let b = evaluate_sets(&root, &["Set14"], 3, &mut sr).unwrap();
    for im in &a.sets[0].images {
        let other = b.sets[0].images.iter().find(|x| x.name == im.name).unwrap();
        assert_eq!(
            (im.psnr_y, im.ssim_y),
            (other.psnr_y, other.ssim_y),
            "{}",
            im.name
        );
    }
    let json = a.to_json();
    assert!(json.contains("\"generated_lr\": true"), "{json}");
}

#[test]
fn missing_pieces_are_errors() {
    let Some(root) = data_root_for_test("missing_pieces_are_errors") else {
        return;
    };
    let tmp = TempRoot::new("missing");
    // No such set.
    let e = BenchmarkSet::open(&tmp.0, "Nope", 4).unwrap_err();
    assert!(format!("{e:#}").contains("Nope"), "{e:#}");
    // LR folder present but one file missing.
    copy_hr(&root, "Set5", "baby", &tmp.0, "Part");
    copy_hr(&root, "Set5", "bird", &tmp.0, "Part");
    let lr = lr_dir(&tmp.0, "Part", 4);
    std::fs::create_dir_all(&lr).unwrap();
    std::fs::copy(
        lr_dir(&root, "Set5", 4).join("babyx4.png"),
        lr.join("babyx4.png"),
    )
    .unwrap();
    let e = BenchmarkSet::open(&tmp.0, "Part", 4).unwrap_err();
    assert!(format!("{e:#}").contains("birdx4"), "{e:#}");
    // Manga109-style names are found.
    std::fs::copy(
        lr_dir(&root, "Set5", 4).join("birdx4.png"),
        lr.join("bird_LRBI_x4.png"),
    )
    .unwrap();
    let set = BenchmarkSet::open(&tmp.0, "Part", 4).unwrap();
    assert!(set.entries[1]
        .lr_path
        .as_ref()
        .unwrap()
        .ends_with("bird_LRBI_x4.png"));
    // A corrupt LR file fails at load time, naming the file.
    std::fs::write(lr.join("babyx4.png"), b"garbage").unwrap();
    let e = set.load(&set.entries[0]).unwrap_err();
    assert!(format!("{e:#}").contains("babyx4.png"), "{e:#}");
}

#[test]
fn gt_crop() {
    let hr = RgbImage::from_fn(10, 9, |x, y| Rgb([x as u8, y as u8, 0]));
    let lr = RgbImage::new(3, 2);
    let gt = crop_gt(&hr, &lr, 3).unwrap();
    assert_eq!(gt.dimensions(), (9, 6));
    assert_eq!(gt.get_pixel(8, 5), hr.get_pixel(8, 5));
    assert!(crop_gt(&hr, &RgbImage::new(4, 2), 3).is_err());
    // Sanity: a stored Set5 pair has HR ≥ LR × 4.
    if let Some(root) = data_root_for_test("gt_crop") {
        let hr = read_rgb8(&root.join("benchmark/Set5/HR/woman.png")).unwrap();
        let lr = read_rgb8(&lr_dir(&root, "Set5", 4).join("womanx4.png")).unwrap();
        assert_eq!(
            crop_gt(&hr, &lr, 4).unwrap().dimensions(),
            (lr.width() * 4, lr.height() * 4)
        );
    }
}
