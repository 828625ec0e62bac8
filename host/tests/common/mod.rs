//! Helpers shared by the host integration tests.
// Each test binary uses a subset.
#![allow(dead_code)]

/// Deterministic SplitMix64 generator with the samplers the calibration and
/// robustness tests draw from.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut g = tdquant_host::calib::data::SplitMix64::new(self.0);
        let v = g.next_u64();
        self.0 = g.state;
        v
    }

    /// In `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)` with 24 random bits (every value exact in `f32`).
    pub fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = (self.uniform() as f64).max(1e-12);
        let u2 = self.uniform() as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// Deterministic pseudo-random bytes (xorshift64), e.g. an `h·w·3` RGB image.
pub fn random_image(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// `max |t|` over every element.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The metadata of a W`bits` DOBI bounds file of the stand-in model, as
/// `calibrate` writes it, for weights `weights_sha256` in `model_file`.
pub fn bounds_meta(
    bits: u8,
    weights_sha256: &str,
    model_file: &str,
) -> tdquant_host::calib::bounds_file::BoundsMeta {
    use tdquant_host::calib::bounds_file::{BoundsMeta, SiteMeta, BOUNDS_FORMAT};
    BoundsMeta {
        format: BOUNDS_FORMAT.into(),
        method: "dobi".into(),
        bits,
        scale: 4,
        seed: 0,
        dobi_mode: "paper".into(),
        preset: "quick".into(),
        weights_sha256: weights_sha256.into(),
        model_file: model_file.into(),
        config: serde_json::json!({}),
        sites: tdquant_host::model::SiteId::all()
            .map(|s| SiteMeta {
                name: s.checkpoint_prefix(),
                kind: "x".into(),
                init: "dobi".into(),
            })
            .collect(),
    }
}
