//! Bicubic weights and a tiny resize against the Python oracle
//! `shared/tools/matlab_resize.py` (no data files needed).
//!
//! Expected weight/index arrays were printed with
//! ```text
//! python3 -c "
//! import sys; sys.path.insert(0,'/work/shared/tools')
//! from matlab_resize import _weights_indices
//! for (n,s) in ((8,2),(9,3),(8,4)):
//!     w,i=_weights_indices(n,n//s,1/s); print([repr(float(x)) for x in w.ravel()]); print(i.tolist())"
//! ```
//! and the resized image with
//! ```text
//! python3 -c "
//! import sys; sys.path.insert(0,'/work/shared/tools')
//! import numpy as np; from matlab_resize import imresize
//! img=np.array([[(x*37+y*91+x*y*13)%256 for x in range(9)] for y in range(12)],dtype=np.uint8)
//! for s in (2,3,4): print(imresize(img[:12-12%s,:9-9%s],1/s).ravel().tolist())"
//! ```

use image::GrayImage;
use tdquant_host::bicubic::{cubic, downscale, imresize_u8, ResizeWeights};

/// Checks `rw` against one oracle table: `w_row` is the weights of every
/// output (one per tap), `idx` each output's source indices; `exact` asks
/// for the weights to the bit.
fn check(what: &str, rw: &ResizeWeights, w_row: &[f64], idx: &[&[usize]], exact: bool) {
    let taps = w_row.len();
    assert_eq!(rw.taps, taps, "{what}: taps");
    assert_eq!(rw.out_len, idx.len(), "{what}: outputs");
    for (i, want_idx) in idx.iter().enumerate() {
        assert_eq!(
            &rw.indices[i * taps..(i + 1) * taps],
            *want_idx,
            "{what}: indices of row {i}"
        );
        for (j, &w) in w_row.iter().enumerate() {
            let g = rw.weights[i * taps + j];
            if exact {
                assert_eq!(g, w, "{what}: weight ({i}, {j})");
            } else {
                // x3: numpy's SIMD `**3` may differ from libm pow in the
                // last bit (machine-dependent), so allow a few ulp.
                assert!(
                    (g - w).abs() <= 4.0 * f64::EPSILON * w.abs(),
                    "{what}: weight ({i}, {j}): {g:e} vs {w:e}"
                );
            }
        }
    }
}

/// A row of the weight tables: the resize, the weights of every output,
/// each output's source indices, and whether the weights match to the bit.
type WeightCase = (
    &'static str,
    ResizeWeights,
    &'static [f64],
    &'static [&'static [usize]],
    bool,
);

/// x3: p = ceil(12) + 2 = 14 candidate taps; the columns at distance ±3 (and
/// the outermost ones) are zero for every output and dropped, leaving 9.
#[test]
#[rustfmt::skip]
fn weights_match_the_oracle() {
    let cases: [WeightCase; 3] = [
        ("x2", ResizeWeights::new(8, 4, 1.0 / 2.0),
            &[-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875],
            &[&[2, 1, 0, 0, 1, 2, 3, 4], &[0, 0, 1, 2, 3, 4, 5, 6], &[1, 2, 3, 4, 5, 6, 7, 7], &[3, 4, 5, 6, 7, 7, 6, 5]],
            true),
        ("x3", ResizeWeights::new(9, 3, 1.0 / 3.0),
            &[-0.012345679012345734, -0.02469135802469117, 0.11111111111111105, 0.2592592592592592, 0.3333333333333333,
              0.2592592592592592, 0.11111111111111105, -0.02469135802469117, -0.012345679012345734],
            &[&[3, 2, 0, 0, 1, 2, 3, 5, 6], &[0, 0, 2, 3, 4, 5, 6, 8, 8], &[2, 3, 5, 6, 7, 8, 8, 6, 5]],
            false),
        ("x4", ResizeWeights::new(8, 2, 1.0 / 4.0),
            &[-0.001708984375, -0.010986328125, -0.018310546875, -0.011962890625, 0.022705078125, 0.097412109375,
              0.181884765625, 0.240966796875, 0.240966796875, 0.181884765625, 0.097412109375, 0.022705078125,
              -0.011962890625, -0.018310546875, -0.010986328125, -0.001708984375],
            &[&[5, 4, 3, 2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 6], &[1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2]],
            true),
    ];
    for (what, rw, w_row, idx, exact) in &cases {
        check(what, rw, w_row, idx, *exact);
    }
}

#[test]
fn cubic_kernel_values() {
    // By hand: cubic(0) = 1; cubic(±1) = 1.5 - 2.5 + 1 = 0;
    // cubic(0.5) = 1.5/8 - 2.5/4 + 1 = 0.5625;
    // cubic(1.5) = -0.5*3.375 + 2.5*2.25 - 6 + 2 = -0.0625; cubic(2) = 0.
    assert_eq!(cubic(0.0), 1.0);
    assert_eq!(cubic(1.0), 0.0);
    assert_eq!(cubic(-1.0), 0.0);
    assert_eq!(cubic(0.5), 0.5625);
    assert_eq!(cubic(-1.5), -0.0625);
    assert_eq!(cubic(2.0), 0.0);
    assert_eq!(cubic(2.5), 0.0);
}

fn test_image() -> GrayImage {
    GrayImage::from_fn(9, 12, |x, y| {
        image::Luma([((x * 37 + y * 91 + x * y * 13) % 256) as u8])
    })
}

#[test]
fn tiny_resize_matches_oracle() {
    let want: [(usize, (u32, u32), &[u8]); 3] = [
        (
            2,
            (4, 6),
            &[
                72, 132, 142, 124, 131, 149, 147, 119, 113, 136, 137, 133, 130, 150, 173, 157, 148,
                133, 98, 136, 157, 92, 121, 114,
            ],
        ),
        (
            3,
            (3, 4),
            &[104, 143, 127, 122, 146, 137, 141, 147, 142, 140, 103, 119],
        ),
        (4, (2, 3), &[117, 133, 135, 147, 134, 119]),
    ];
    let img = test_image();
    for (s, dims, data) in want {
        let got = downscale(&img, s).unwrap();
        assert_eq!(got.dimensions(), dims, "x{s}");
        assert_eq!(got.as_raw().as_slice(), data, "x{s}");
        // The same through the interleaved 3-channel path.
        let rgb: Vec<u8> = img.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
        let (h, w) = (12 - 12 % s, 9 - 9 % s);
        let cropped: Vec<u8> = (0..h)
            .flat_map(|y| rgb[y * 27..y * 27 + 3 * w].to_vec())
            .collect();
        let (out, oh, ow) = imresize_u8(&cropped, h, w, 3, 1.0 / s as f64);
        assert_eq!((ow as u32, oh as u32), dims);
        let back: Vec<u8> = out.chunks_exact(3).map(|p| p[0]).collect();
        assert_eq!(back.as_slice(), data);
    }
}

#[test]
fn too_small_is_an_error() {
    let img = GrayImage::new(3, 5);
    assert!(downscale(&img, 4).is_err());
    assert!(downscale(&img, 0).is_err());
}
