//! Padding rule, shifted-window regions and masks, window partition, relative positions.

use candle_core::{Device, Tensor};
use tdquant_host::model::geometry::{
    invert, mirror_pad_indices, pad_amount, pad_to_window, partition_order, region_labels,
    relative_position_index, shift_mask, Geometry, ShiftMask, MASK_VALUE,
};
use tdquant_host::model::pixel_shuffle;

#[test]
fn pad_amounts() {
    assert_eq!(pad_amount(64), 0);
    assert_eq!(pad_amount(8), 0);
    assert_eq!(pad_amount(57), 7);
    assert_eq!(pad_amount(86), 2);
    assert_eq!(pad_amount(70), 2);
    assert_eq!(pad_amount(72), 0);
    assert_eq!(pad_amount(1), 7);
}

#[test]
fn mirror_repeats_the_edge_pixel() {
    // Concatenate [0..n) with its flip, crop.
    assert_eq!(mirror_pad_indices(5, 8), vec![0, 1, 2, 3, 4, 4, 3, 2]);
    assert_eq!(mirror_pad_indices(6, 8), vec![0, 1, 2, 3, 4, 5, 5, 4]);
    assert_eq!(
        mirror_pad_indices(57, 64)[57..],
        [56, 55, 54, 53, 52, 51, 50]
    );
    // Tiny sides keep mirroring.
    assert_eq!(mirror_pad_indices(2, 8), vec![0, 1, 1, 0, 0, 1, 1, 0]);
    assert_eq!(mirror_pad_indices(8, 8), (0..8).collect::<Vec<u32>>());
}

#[test]
fn pad_to_window_on_a_small_image() {
    let dev = Device::Cpu;
    // 1×1×6×5 image with value 10·y + x.
    let v: Vec<f32> = (0..6)
        .flat_map(|y| (0..5).map(move |x| (10 * y + x) as f32))
        .collect();
    let x = Tensor::from_vec(v, (1, 1, 6, 5), &dev).unwrap();
    let p = pad_to_window(&x).unwrap();
    assert_eq!(p.dims(), &[1, 1, 8, 8]);
    let p = p
        .squeeze(0)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(p[0], vec![0., 1., 2., 3., 4., 4., 3., 2.]);
    assert_eq!(p[5], vec![50., 51., 52., 53., 54., 54., 53., 52.]);
    assert_eq!(p[6], p[5], "row 6 repeats the edge row 5");
    assert_eq!(p[7], vec![40., 41., 42., 43., 44., 44., 43., 42.]);
    // 64×64: nothing padded (same tensor).
    let x = Tensor::zeros((2, 3, 64, 64), candle_core::DType::F32, &dev).unwrap();
    let p = pad_to_window(&x).unwrap();
    assert_eq!(p.dims(), x.dims());
    assert!(p.is_contiguous());
}

#[test]
fn region_labels_16x16() {
    // Rows split at [0,8) [8,12) [12,16); label = 3·row_region + col_region.
    let l = region_labels(16, 16);
    let at = |y: usize, x: usize| l[y * 16 + x];
    assert_eq!(at(0, 0), 0);
    assert_eq!(at(7, 7), 0);
    assert_eq!(at(0, 8), 1);
    assert_eq!(at(0, 11), 1);
    assert_eq!(at(0, 12), 2);
    assert_eq!(at(8, 0), 3);
    assert_eq!(at(11, 11), 4);
    assert_eq!(at(12, 8), 7);
    assert_eq!(at(15, 15), 8);
    assert_eq!(at(9, 13), 5);
    // 8×8: only the last two regions exist.
    let l = region_labels(8, 8);
    assert_eq!(l[0], 4);
    assert_eq!(l[4], 5);
    assert_eq!(l[4 * 8], 7);
    assert_eq!(l[63], 8);
}

#[test]
fn shift_mask_16x16() {
    let m = shift_mask(16, 16);
    assert_eq!(m.len(), 4 * 64 * 64);
    let at = |w: usize, i: usize, j: usize| m[(w * 64 + i) * 64 + j];
    // Window 0 (top-left) is entirely region 0: no masking.
    assert!((0..64 * 64).all(|k| m[k] == 0.0));
    // Window 1 (top-right): columns 8..12 region 1, 12..16 region 2.
    assert_eq!(at(1, 0, 3), 0.0); // (0,8) vs (0,11)
    assert_eq!(at(1, 0, 4), MASK_VALUE); // (0,8) vs (0,12)
    assert_eq!(at(1, 4, 12), 0.0); // (0,12) vs (1,12)
                                   // Window 3 (bottom-right) has four regions; token 0 = (8,8) label 4, token 63 = (15,15) label 8.
    assert_eq!(at(3, 0, 63), MASK_VALUE);
    assert_eq!(at(3, 0, 27), 0.0); // (11,11)
    assert_eq!(at(3, 0, 28), MASK_VALUE); // (11,12)
                                          // Symmetric, zero diagonal, values in {0, −100}.
    for w in 0..4 {
        for i in 0..64 {
            assert_eq!(at(w, i, i), 0.0);
            for j in 0..64 {
                assert_eq!(at(w, i, j), at(w, j, i));
                assert!(at(w, i, j) == 0.0 || at(w, i, j) == MASK_VALUE);
            }
        }
    }
    // Count of masked entries in window 3: 4 regions of 16 tokens → 64² − 4·16² unmasked pairs.
    let masked = (0..64 * 64).filter(|&k| m[3 * 64 * 64 + k] != 0.0).count();
    assert_eq!(masked, 64 * 64 - 4 * 16 * 16);
}

#[test]
fn partition_orders() {
    let o = partition_order(16, 8, false);
    assert_eq!(&o[..9], &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(o[64], 64, "window 1 starts at row 8");
    let s = partition_order(16, 16, true);
    // Token 0 of the rolled map reads pixel (4, 4).
    assert_eq!(s[0], 4 * 16 + 4);
    // Window 0, token (0, 7) → rolled (0, 7) → pixel (4, 11).
    assert_eq!(s[7], 4 * 16 + 11);
    // Window 3, token (7, 7) → rolled (15, 15) → pixel (3, 3).
    assert_eq!(s[3 * 64 + 63], 3 * 16 + 3);
    let inv = invert(&s);
    for (t, &p) in s.iter().enumerate() {
        assert_eq!(inv[p as usize] as usize, t);
    }
    let g = Geometry::new(24, 16, &Device::Cpu).unwrap();
    assert_eq!(g.n_windows, 6);
    assert_eq!(g.mask.n_windows(), 6);
    assert!(Geometry::new(20, 16, &Device::Cpu).is_err());
}

#[test]
fn relative_positions() {
    let r = relative_position_index();
    assert_eq!(r.len(), 4096);
    assert_eq!(r[0], 7 * 15 + 7, "a token with itself");
    assert_eq!(r[63], 0, "(0,0) vs (7,7)");
    assert_eq!(r[63 * 64], 224, "(7,7) vs (0,0)");
    assert_eq!(r[1], 7 * 15 + 6, "(0,0) vs (0,1)");
    assert_eq!(r[8], 6 * 15 + 7, "(0,0) vs (1,0)");
    assert!(r.iter().all(|&v| v < 225));
}

#[test]
fn pixel_shuffle_matches_pytorch() {
    // [1, 4, 1, 2] with r = 2: out[0, 0, i, 2w + j] = in[0, 2i + j, 0, w].
    let x = Tensor::from_vec(
        (0..8).map(|v| v as f32).collect::<Vec<_>>(),
        (1, 4, 1, 2),
        &Device::Cpu,
    )
    .unwrap();
    let y = pixel_shuffle(&x, 2).unwrap();
    assert_eq!(y.dims(), &[1, 1, 2, 4]);
    let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // channels: c0=[0,1] c1=[2,3] c2=[4,5] c3=[6,7]
    assert_eq!(y, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
}

#[test]
fn compact_mask_equals_full_mask() {
    for (h, w) in [(8, 8), (16, 16), (24, 16), (64, 64), (88, 64), (8, 40)] {
        let m = ShiftMask::new(h, w);
        assert_eq!(m.n_windows(), (h / 8) * (w / 8));
        assert_eq!(m.expand(), shift_mask(h, w), "{h}×{w}");
    }
    // Interior windows are unmasked.
    let m = ShiftMask::new(24, 24);
    assert!(m.window(0).is_none());
    assert!(m.window(8).is_some());
}
