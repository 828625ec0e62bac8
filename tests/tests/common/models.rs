//! The integer models the cross-backend suite runs, from ONE function,
//! [`integer_models`], so the source can change in one place.
//!
//! * Synthetic models, always: the SwinIR-light ×4 shape with weights and
//!   quantizer bounds drawn from a fixed-seed generator, exported in-process
//!   at W4, W3 and W2 (no data files needed). Random bounds give requantizer
//!   multipliers, shifts, LayerNorm and softmax constants far from any
//!   calibrated model's, which is what a parity test wants.
//! * The golden exports (the stand-in ×4 weights with the released-DOBI
//!   bounds, W4 and W2), when the shared data folder is present.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use tdquant_host::export::{calib_stats, export, ExportOptions, GoldenExport};
use tdquant_host::model::{Site, SwinIR, NUM_SITES};
use tdquant_host::weights::{expected_shapes, from_tensors};
use tdquant_tests::XorShift;

/// One integer model.
pub struct TestModel {
    /// Where it comes from, for reports.
    pub name: String,
    /// The `.tdq` bytes.
    pub bytes: Vec<u8>,
}

/// Every model of the suite (see the module docs).
pub fn integer_models() -> Vec<TestModel> {
    let mut models: Vec<TestModel> = [(4u8, 0x5EED_0004u64), (3, 0x5EED_0003), (2, 0x5EED_0002)]
        .into_iter()
        .map(|(bits, seed)| TestModel {
            name: format!("synthetic W{bits} seed {seed:#x}"),
            bytes: synthetic_model(bits, seed),
        })
        .collect();
    let root = tdquant_host::data_root::data_root(None);
    if root.is_dir() {
        let mut golden = GoldenExport::new(&root).expect("golden export setup");
        for bits in [4u8, 2] {
            models.push(TestModel {
                name: format!("golden W{bits}"),
                bytes: golden.export(bits).expect("golden export").bytes,
            });
        }
    } else {
        println!(
            "golden models not run: no shared data at {} (synthetic models only)",
            root.display()
        );
    }
    models
}

/// Uniform in `[-1, 1)`.
fn unit(rng: &mut XorShift) -> f32 {
    (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// A ×4 SwinIR-light with random weights and bounds, exported at `bits`.
pub fn synthetic_model(bits: u8, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut raw = HashMap::new();
    for (key, shape) in expected_shapes(4) {
        let n: usize = shape.iter().product();
        let (center, spread) = if key.contains("norm") && key.ends_with("weight") {
            (1.0, 0.3)
        } else if key.ends_with("bias") {
            (0.0, 0.05)
        } else if key.contains("relative_position_bias_table") {
            (0.0, 2.0)
        } else {
            (0.0, 0.15)
        };
        let data: Vec<f32> = (0..n).map(|_| center + spread * unit(&mut rng)).collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu).expect("tensor");
        raw.insert(key, t);
    }
    let weights = from_tensors(raw).expect("synthetic weights have the expected shapes");
    let model = SwinIR::from_weights(&weights).expect("synthetic model");
    let batch: Vec<f32> = (0..2 * 3 * 16 * 16)
        .map(|_| 0.5 + 0.5 * unit(&mut rng))
        .collect();
    let batch = Tensor::from_vec(batch, (2, 3, 16, 16), &Device::Cpu).expect("batch");
    let stats = calib_stats(&model, &batch).expect("calibration statistics");
    // Bounds per site, in SiteId::all order (16 sites per block): weights
    // about their ±0.15 range, LayerNorm outputs a few units, GELU outputs
    // from its minimum, probabilities within [0, 1].
    let bounds: Vec<(f32, f32)> = (0..NUM_SITES)
        .map(|i| {
            let r = 0.5 + 0.5 * (unit(&mut rng) + 1.0); // [0.5, 1.5)
            match Site::ALL[i % Site::ALL.len()] {
                Site::QWeight
                | Site::KWeight
                | Site::VWeight
                | Site::ProjWeight
                | Site::Fc1Weight
                | Site::Fc2Weight => (-0.15 * r, 0.15 * r),
                Site::QInput | Site::KInput | Site::VInput | Site::Fc1Input => (-3.0 * r, 3.0 * r),
                Site::ProjInput => (-r, r),
                Site::Fc2Input => (-0.17, 2.0 * r),
                Site::AttnQ | Site::AttnK | Site::AttnV => (-2.0 * r, 2.0 * r),
                Site::AttnProb => (0.0, (0.5 * r).min(1.0)),
            }
        })
        .collect();
    export(&weights, &bounds, bits, &stats, &ExportOptions::default())
        .expect("synthetic export")
        .bytes
}
