//! The deterministic random source of the mutation fuzzer and of the host integration tests
//! (`#[path]`-included by `host/tests/common/mod.rs`): SplitMix64 with the samplers both draw
//! from. Its state is one `u64`, so a failing input is reproduced from a single number.

/// SplitMix64 (`tdquant_host::calib::data::SplitMix64`) over a bare `u64` state.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    // Never exhausted, so an `Iterator` (with its `Option`) would only add unwraps at every
    // draw.
    #[allow(clippy::should_implement_trait)]
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

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
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
