//! DOBI (Distribution-Oriented Bound Initialization) and the MinMax /
//! Percentile baselines, on a whole tensor given as `&[f32]`.
//!
//! # Released code vs paper
//!
//! Released `basicsr/archs/quant_arch.py: DOBI(input, bit, one_direction,
//! num=100)` with `mn = min(v)`, `mx = max(v)`, `K = num`:
//!
//! * two-sided (the only strategy the release ever uses):
//!   `diff = (mx − mn)/(2K)`; for `i in range(K)`: `lb = mn + diff·i`,
//!   `ub = mx − diff·i`;
//! * one-sided: `diff = (mx − mn)/K`; for `i in range(K)`: `lb = mn`,
//!   `ub = mx − diff·i`;
//! * objective `cal_mse = float(torch.norm(v − quant(v, lb, ub, bit)))`
//!   (Frobenius norm, not squared, not averaged); `if cur < history_min`
//!   keeps the **first** minimum (`history_min` starts at `inf`).
//!
//! Paper Algorithm 1: the same with `Δ = (mx − mn)/(2K)` for both strategies,
//! `i = 0..=K` and `≤`, so the **last** minimum wins.
//!
//! # f32 arithmetic of the candidates
//!
//! All candidate arithmetic is f32, as torch does on the 0-d tensors of the
//! calibration pass: `diff·i` multiplies by `f32(i)` and the adds/subs are
//! f32. In `quant`, `s = (ub − lb)/(2^bit − 1)` divides by a *tensor*
//! (`bit` is the `n_bit` parameter), so it is a true f32 division, as in
//! [`QuantGrid`]. One detail depends on the device the released code runs
//! on: `(max − min) / (2 * num)` divides a tensor by a Python int.
//!
//! * On the **CPU**, PyTorch's `div_true_kernel` computes the true f32
//!   division `a / b` ([`DobiStep::Released`]). The golden files
//!   (`golden/dobi_released_w*.safetensors`, produced by the released code
//!   on CPU) confirm it: with `(mx − mn)/(2K)` all 144 weight quantizers of
//!   each golden file are reproduced bit for bit; with the reciprocal
//!   multiply only 108–125 of 144 are.
//! * On a **CUDA** device, `div_true_kernel` turns a division by a CPU scalar
//!   into a multiplication by its f32 reciprocal (`a * (1/b)`):
//!   [`DobiStep::ReleasedCuda`] uses `Δ = (mx − mn) · f32(1/(2K))`
//!   (`f32(1/K)` one-sided), for checkpoints calibrated on a GPU.
//!
//! The paper has no code: [`DobiStep::Paper`] uses the true f32 division
//! `(mx − mn)/(2K)`.
//!
//! Degenerate candidates: the released two-sided loop stops at `i = K − 1`,
//! where `u − l = 2Δ > 0`. The paper's `i = K` gives `l ≈ u ≈ (mn + mx)/2`;
//! with `u == l` torch computes `0/0 = NaN`, the norm is NaN and `NaN < h`
//! / `NaN ≤ h` are false, so that candidate is never taken; we do the same
//! (objective NaN). Should f32 rounding give `l > u`, the torch semantics
//! (`clamp` gives `u` everywhere, negative step) are followed exactly.
//!
//! # Implementation
//!
//! [`dobi`] makes **one** sweep over the data: it is cut into fixed blocks
//! that stay in L1; for each block every candidate is evaluated with the
//! exact f32 fake quantizer and `(v − Q(v))²` is accumulated in f64 (8 lanes
//! per candidate, per 64 Ki-element super-block, super-blocks reduced in
//! order: deterministic for any thread count). Rounding uses the exact
//! `(t + 2²³) − 2²³` half-to-even identity, valid because `0 ≤ t < 2²²` is
//! checked per candidate (else a scalar `round_ties_even` path is used).
//! [`dobi_bruteforce`] is the literal reference: per candidate, a full pass
//! through [`QuantGrid::quantize`] with a sequential f64 sum. The selection
//! compares the f64 norms; torch compares f32 norms from a CUDA reduction,
//! so exact near-ties (relative differences ≲ 1e-7) may resolve differently.

use super::fakequant::{levels, QuantGrid};
use super::par;

/// Errors of the bound searches.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalibError {
    /// The tensor has no elements.
    #[error("calibration tensor is empty")]
    Empty,
    /// The tensor contains NaN or ±inf.
    #[error("calibration tensor has a non-finite value {value} at index {index}")]
    NonFinite {
        /// Position of the first non-finite element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// `min == max`: every DOBI candidate has `s = 0` (the released code
    /// would fail with `best_lb` unbound).
    #[error("calibration tensor is constant ({value}); no quantization range to search")]
    Constant {
        /// The constant value.
        value: f32,
    },
    /// Bit width outside `1..=8`.
    #[error("unsupported bit width {0}")]
    Bits(u8),
    /// A bad parameter (K = 0, percentile outside [0, 100], …).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// No candidate had a finite objective.
    #[error("no DOBI candidate had a finite objective")]
    NoCandidate,
}

/// Which bounds DOBI moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DobiStrategy {
    /// Move `l` up and `u` down by the same step (bell-shaped data; the only
    /// strategy the released code uses).
    TwoSided,
    /// Keep `l = min`, move only `u` down (exponential-like data, e.g.
    /// post-softmax and post-GELU, in the paper).
    OneSided,
}

/// Released-code or paper schedule of candidates and tie rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DobiStep {
    /// Released `DOBI` as PyTorch runs it on the CPU: `Δ = (mx−mn)/(2K)`
    /// two-sided, `(mx−mn)/K` one-sided (true f32 divisions), `i = 0..K`,
    /// strict `<` (first minimum wins). Matches the golden files.
    Released,
    /// Released `DOBI` as PyTorch runs it on a CUDA device: as
    /// [`DobiStep::Released`] but `Δ = (mx−mn)·f32(1/(2K))` (resp.
    /// `·f32(1/K)`), the CUDA reciprocal-multiply rounding.
    ReleasedCuda,
    /// Paper Algorithm 1: `Δ = (mx−mn)/(2K)` for both strategies, `i = 0..=K`,
    /// `≤` (last minimum wins).
    Paper,
}

/// Full DOBI configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DobiConfig {
    /// Bit width `b` (1..=8).
    pub bits: u8,
    /// Which bounds move.
    pub strategy: DobiStrategy,
    /// Released code or paper.
    pub step: DobiStep,
    /// Number of steps `K` (100 in both code and paper).
    pub k: usize,
}

/// `K` of the released code and the paper.
pub const DEFAULT_K: usize = 100;

impl DobiConfig {
    /// What the released code runs for every quantizer on the CPU (the
    /// golden files): two-sided, released step, `K = 100`.
    pub fn released(bits: u8) -> Self {
        Self {
            bits,
            strategy: DobiStrategy::TwoSided,
            step: DobiStep::Released,
            k: DEFAULT_K,
        }
    }

    /// [`DobiConfig::released`] with the CUDA rounding of the step
    /// ([`DobiStep::ReleasedCuda`]).
    pub fn released_cuda(bits: u8) -> Self {
        Self {
            step: DobiStep::ReleasedCuda,
            ..Self::released(bits)
        }
    }

    /// Paper Algorithm 1 with the given strategy, `K = 100`.
    pub fn paper(bits: u8, strategy: DobiStrategy) -> Self {
        Self {
            bits,
            strategy,
            step: DobiStep::Paper,
            k: DEFAULT_K,
        }
    }

    /// Number of candidates (`K`, or `K + 1` for the paper).
    pub fn num_candidates(&self) -> usize {
        match self.step {
            DobiStep::Released | DobiStep::ReleasedCuda => self.k,
            DobiStep::Paper => self.k + 1,
        }
    }

    fn check(&self) -> Result<f32, CalibError> {
        if self.k == 0 {
            return Err(CalibError::Param("DOBI needs K ≥ 1".into()));
        }
        levels(self.bits).map_err(|_| CalibError::Bits(self.bits))
    }
}

/// The chosen bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DobiResult {
    /// Lower bound `l`.
    pub lower: f32,
    /// Upper bound `u`.
    pub upper: f32,
    /// Index `i` of the chosen candidate (0 = MinMax).
    pub index: usize,
    /// `‖v − Q(v; l, u)‖₂`, accumulated in f64.
    pub objective: f64,
}

/// `(min, max)` of the data; errors on empty or non-finite data.
pub fn minmax_bounds(data: &[f32]) -> Result<(f32, f32), CalibError> {
    if data.is_empty() {
        return Err(CalibError::Empty);
    }
    let parts = par::map_blocks(data.len(), 1 << 16, |r| {
        let start = r.start;
        let d = &data[r];
        let (mut mn, mut mx) = (f32::INFINITY, f32::NEG_INFINITY);
        for (i, &v) in d.iter().enumerate() {
            if !v.is_finite() {
                return Err(CalibError::NonFinite {
                    index: start + i,
                    value: v,
                });
            }
            mn = mn.min(v);
            mx = mx.max(v);
        }
        Ok((mn, mx))
    });
    let mut out = (f32::INFINITY, f32::NEG_INFINITY);
    for p in parts {
        let (a, b) = p?;
        out = (out.0.min(a), out.1.max(b));
    }
    Ok(out)
}

/// The candidate bounds `(l_i, u_i)` DOBI tries for data range `[mn, mx]`, in
/// loop order (f32 arithmetic as described in the module docs).
pub fn dobi_candidates(mn: f32, mx: f32, cfg: &DobiConfig) -> Vec<(f32, f32)> {
    let range = mx - mn;
    let k = cfg.k as f32;
    let delta = match (cfg.step, cfg.strategy) {
        // CUDA `tensor / python_int` = tensor * f32(1 / int).
        // CPU `tensor / python_int`: true f32 division.
        (DobiStep::Released, DobiStrategy::TwoSided) => range / (2.0 * k),
        (DobiStep::Released, DobiStrategy::OneSided) => range / k,
        // CUDA `tensor / python_int` = tensor * f32(1 / int).
        (DobiStep::ReleasedCuda, DobiStrategy::TwoSided) => range * (1.0f32 / (2.0 * k)),
        (DobiStep::ReleasedCuda, DobiStrategy::OneSided) => range * (1.0f32 / k),
        (DobiStep::Paper, _) => range / (2.0 * k),
    };
    (0..cfg.num_candidates())
        .map(|i| {
            let d = delta * i as f32;
            match cfg.strategy {
                DobiStrategy::TwoSided => (mn + d, mx - d),
                DobiStrategy::OneSided => (mn, mx - d),
            }
        })
        .collect()
}

/// `true` if `a` should replace the current best `b` under the tie rule.
fn better(step: DobiStep, a: f64, b: f64) -> bool {
    match step {
        DobiStep::Released | DobiStep::ReleasedCuda => a < b,
        DobiStep::Paper => a <= b,
    }
}

/// Pick the winner among evaluated candidates (in loop order) with the
/// tie rule of `step`: [`DobiStep::Released`] keeps the first minimum
/// (`cur < best`), [`DobiStep::Paper`] the last (`cur ≤ best`). Non-finite
/// objectives are never selected (as `NaN < x` is false in the released code).
pub fn select_candidate(evals: &[DobiEval], step: DobiStep) -> Result<DobiResult, CalibError> {
    let mut best: Option<DobiResult> = None;
    let mut best_obj = f64::INFINITY;
    for (i, e) in evals.iter().enumerate() {
        if e.objective.is_finite() && better(step, e.objective, best_obj) {
            best_obj = e.objective;
            best = Some(DobiResult {
                lower: e.lower,
                upper: e.upper,
                index: i,
                objective: e.objective,
            });
        }
    }
    best.ok_or(CalibError::NoCandidate)
}

/// Validate data and config; returns `(N, mn, mx)`.
fn prepare(data: &[f32], cfg: &DobiConfig) -> Result<(f32, f32, f32), CalibError> {
    let n = cfg.check()?;
    let (mn, mx) = minmax_bounds(data)?;
    if mn == mx {
        return Err(CalibError::Constant { value: mn });
    }
    Ok((n, mn, mx))
}

/// `2²³`: adding and subtracting it rounds `0 ≤ t < 2²²` half to even.
const MAGIC: f32 = 8_388_608.0;
/// Lanes per candidate accumulator (f32 SIMD width of AVX2).
const LANES: usize = 8;
/// Inner block (stays in L1 while all candidates sweep over it).
const INNER: usize = 2048;
/// Super-block: one f64 partial sum per candidate, reduced in order.
const OUTER: usize = 1 << 16;

/// A candidate prepared for the sweep.
#[derive(Clone, Copy)]
struct Cand {
    grid: QuantGrid,
    /// `true` if `0 ≤ t < 2²²` for every element, so the magic rounding is exact.
    fast: bool,
}

impl Cand {
    fn new(l: f32, u: f32, n: f32) -> Self {
        let grid = QuantGrid::with_levels(l, u, n);
        let s = grid.step;
        // c − l ∈ [0, u − l] and rounding is monotone, so t ≤ (u − l)/s.
        let tmax = (u - l) / s;
        let fast = l.is_finite()
            && u.is_finite()
            && u > l
            && s.is_finite()
            && s > 0.0
            && tmax.is_finite()
            && tmax < 4_194_304.0;
        Self { grid, fast }
    }
}

/// Sum of squared errors of one candidate over `x`, into 8 f64 lanes
/// (element `j` of every 8-chunk goes to lane `j`, the tail to lanes 0..).
#[inline(always)]
fn sweep_fast(x: &[f32], g: &QuantGrid, lanes: &mut [f64; LANES]) {
    let (l, u, s) = (g.lower, g.upper, g.step);
    let mut acc = *lanes;
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    // Branch-free `select`s and the magic-number rounding keep the lanes
    // vectorisable.
    let sq_err = |v: f32| {
        let a = if v < l { l } else { v };
        let c = if a > u { u } else { a };
        let t = (c - l) / s;
        let r = (t + MAGIC) - MAGIC;
        let e = v - (s * r + l);
        f64::from(e) * f64::from(e)
    };
    for ch in chunks {
        for j in 0..LANES {
            acc[j] += sq_err(ch[j]);
        }
    }
    for (j, &v) in rem.iter().enumerate() {
        acc[j] += sq_err(v);
    }
    *lanes = acc;
}

/// Scalar reference for the same lane layout (exact `round_ties_even`).
#[inline(always)]
fn sweep_exact(x: &[f32], g: &QuantGrid, lanes: &mut [f64; LANES]) {
    for (i, &v) in x.iter().enumerate() {
        let e = v - g.quantize(v);
        lanes[i % LANES] += f64::from(e) * f64::from(e);
    }
}

/// Sweep one super-block: all candidates, returns per-candidate sums.
#[inline(always)]
fn sweep_super(x: &[f32], cands: &[Cand]) -> Vec<f64> {
    let mut lanes = vec![[0f64; LANES]; cands.len()];
    for blk in x.chunks(INNER) {
        for (c, ln) in cands.iter().zip(lanes.iter_mut()) {
            if c.fast {
                sweep_fast(blk, &c.grid, ln);
            } else {
                sweep_exact(blk, &c.grid, ln);
            }
        }
    }
    lanes
        .iter()
        .map(|ln| {
            // fixed pairwise order
            ((ln[0] + ln[1]) + (ln[2] + ln[3])) + ((ln[4] + ln[5]) + (ln[6] + ln[7]))
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
/// # Safety
/// Caller must have checked that the CPU supports AVX2.
unsafe fn sweep_super_avx2(x: &[f32], cands: &[Cand]) -> Vec<f64> {
    // Same code, compiled with 256-bit vectors. Rust never contracts a·b + c
    // into an FMA, so the f32 results are identical to the baseline build.
    sweep_super(x, cands)
}

fn sweep_super_dispatch(x: &[f32], cands: &[Cand]) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu_features::cpu_features().avx2 {
            // SAFETY: the CPU supports AVX2 (detected at run time).
            return unsafe { sweep_super_avx2(x, cands) };
        }
    }
    sweep_super(x, cands)
}

/// Sum of squared errors `Σ (v − Q_i(v))²` (f64) for every candidate, in one
/// sweep over `data`.
fn sweep_all(data: &[f32], cands: &[Cand]) -> Vec<f64> {
    let parts = par::map_blocks(data.len(), OUTER, |r| sweep_super_dispatch(&data[r], cands));
    let mut tot = vec![0f64; cands.len()];
    for p in parts {
        for (t, v) in tot.iter_mut().zip(p) {
            *t += v;
        }
    }
    tot
}

/// One evaluated DOBI candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DobiEval {
    /// Candidate lower bound `l_i`.
    pub lower: f32,
    /// Candidate upper bound `u_i`.
    pub upper: f32,
    /// `‖v − Q(v; l_i, u_i)‖₂` (f64 accumulation; NaN for a degenerate
    /// candidate such as the paper's `l = u` midpoint).
    pub objective: f64,
}

/// The objective of every candidate, computed in one sweep, in the order of
/// [`dobi_candidates`].
pub fn dobi_objectives(data: &[f32], cfg: &DobiConfig) -> Result<Vec<DobiEval>, CalibError> {
    let (n, mn, mx) = prepare(data, cfg)?;
    let cands = dobi_candidates(mn, mx, cfg);
    let prepared: Vec<Cand> = cands.iter().map(|&(l, u)| Cand::new(l, u, n)).collect();
    let sse = sweep_all(data, &prepared);
    Ok(cands
        .into_iter()
        .zip(sse)
        .map(|((lower, upper), s)| DobiEval {
            lower,
            upper,
            objective: s.sqrt(),
        })
        .collect())
}

/// DOBI bound search (fast single sweep; see the module docs).
pub fn dobi(data: &[f32], cfg: &DobiConfig) -> Result<DobiResult, CalibError> {
    select_candidate(&dobi_objectives(data, cfg)?, cfg.step)
}

/// Literal reference DOBI: for each candidate, a full pass through the f32
/// fake quantizer and a sequential f64 sum of squares, then `sqrt`. Slow
/// (`K` passes); for tests.
pub fn dobi_bruteforce(data: &[f32], cfg: &DobiConfig) -> Result<DobiResult, CalibError> {
    let (n, mn, mx) = prepare(data, cfg)?;
    let cands = dobi_candidates(mn, mx, cfg);
    let evals: Vec<DobiEval> = cands
        .iter()
        .map(|&(lower, upper)| {
            let g = QuantGrid::with_levels(lower, upper, n);
            let objective = data
                .iter()
                .map(|&v| {
                    let e = f64::from(v - g.quantize(v));
                    e * e
                })
                .sum::<f64>()
                .sqrt();
            DobiEval {
                lower,
                upper,
                objective,
            }
        })
        .collect();
    select_candidate(&evals, cfg.step)
}

/// Exact percentile bounds: the `lo_pct`-th and `hi_pct`-th percentiles
/// (0..=100) of `data`, with the definition of `numpy.percentile` /
/// `torch.quantile` (default "linear"): sort ascending, position
/// `p = q/100·(n − 1)`, interpolate linearly between the neighbouring order
/// statistics (in f64, rounded to f32). Typical use:
/// `percentile_bounds(v, 0.01, 99.99)` (clip 10⁻⁴ of the mass on each side,
/// the activation tail of PTQ4SR's percentile initializer).
/// O(n) via selection on a copy.
pub fn percentile_bounds(data: &[f32], lo_pct: f64, hi_pct: f64) -> Result<(f32, f32), CalibError> {
    if !(0.0..=100.0).contains(&lo_pct) || !(0.0..=100.0).contains(&hi_pct) || lo_pct > hi_pct {
        return Err(CalibError::Param(format!(
            "percentiles must satisfy 0 ≤ lo ≤ hi ≤ 100, got {lo_pct}, {hi_pct}"
        )));
    }
    minmax_bounds(data)?; // validates: non-empty, finite
    let mut v = data.to_vec();
    let lo = select_quantile(&mut v, lo_pct / 100.0);
    let hi = select_quantile(&mut v, hi_pct / 100.0);
    Ok((lo, hi))
}

/// Linear-interpolated quantile `q ∈ [0, 1]` of `v` (reorders `v`).
fn select_quantile(v: &mut [f32], q: f64) -> f32 {
    let n = v.len();
    let pos = q * (n - 1) as f64;
    let i = (pos.floor() as usize).min(n - 1);
    let frac = pos - i as f64;
    let (_, &mut a, rest) = v.select_nth_unstable_by(i, f32::total_cmp);
    let a = f64::from(a);
    if frac == 0.0 || rest.is_empty() {
        return a as f32;
    }
    let b = f64::from(rest.iter().copied().fold(f32::INFINITY, f32::min));
    (a + (b - a) * frac) as f32
}

/// Histogram bins of PTQ4SR's percentile initializer.
pub const PTQ4SR_BINS: usize = 2048;
/// Tail mass PTQ4SR's percentile initializer clips from activations (b < 8).
pub const PTQ4SR_TAIL: f64 = 1e-4;
/// Tail mass at 8 bits.
pub const PTQ4SR_TAIL_8BIT: f64 = 1e-5;

/// PTQ4SR's histogram "percentile" initializer for activations
/// (`huawei-noah/Efficient-Computing`, `Quantization/PTQ4SR/basicsr/quant/quant.py:
/// Quantization.Percentile_init`), which is what the DBDC+Pac code base (whose
/// baselines the 2DQuant tables quote) calls "percentile":
///
/// 1. `hist = torch.histc(v, bins)` over `[min, max]` (bin
///    `⌊(x − min)·bins/(max − min)⌋`, f32, the max goes to the last bin);
/// 2. `lo, hi = 0, bins − 1`; while `Σ hist[lo..=hi] > (1 − tail)·n`: drop
///    the smaller end bin (`hist[lo] < hist[hi]` → `lo += 1`, else
///    `hi −= 1`);
/// 3. `Δ = (max − min)/bins`; bounds `(Δ·(lo + 1) + min, Δ·(hi + 1) + min)`.
///
/// Note the `+ 1` on the lower bound: even with nothing trimmed, the lower
/// bound is one bin above the minimum — a quirk of that code, kept.
/// PTQ4SR uses [`PTQ4SR_BINS`] bins and tail [`PTQ4SR_TAIL`] ([`PTQ4SR_TAIL_8BIT`] at 8 bits) for
/// activations and plain MinMax for weights. Counts are exact integers here
/// (torch sums them in f32, which is exact below 2²⁴ elements).
pub fn ptq4sr_percentile_bounds(
    data: &[f32],
    tail: f64,
    bins: usize,
) -> Result<(f32, f32), CalibError> {
    if bins == 0 || !(0.0..1.0).contains(&tail) {
        return Err(CalibError::Param(format!(
            "need bins ≥ 1 and 0 ≤ tail < 1, got bins={bins}, tail={tail}"
        )));
    }
    let (mn, mx) = minmax_bounds(data)?;
    if mn == mx {
        return Err(CalibError::Constant { value: mn });
    }
    let range = mx - mn;
    let nb = bins as f32;
    let parts = par::map_blocks(data.len(), 1 << 16, |r| {
        let mut h = vec![0u64; bins];
        for &x in &data[r] {
            let b = ((x - mn) * nb / range) as usize;
            h[b.min(bins - 1)] += 1;
        }
        h
    });
    let mut hist = vec![0u64; bins];
    for p in parts {
        for (a, b) in hist.iter_mut().zip(p) {
            *a += b;
        }
    }
    let limit = (1.0 - tail) * data.len() as f64;
    let (mut lo, mut hi) = (0usize, bins - 1);
    let mut kept: u64 = hist.iter().sum();
    while kept as f64 > limit && lo < hi {
        if hist[lo] < hist[hi] {
            kept -= hist[lo];
            lo += 1;
        } else {
            kept -= hist[hi];
            hi -= 1;
        }
    }
    // (max − min)/bins on CUDA = (max − min)·f32(1/bins).
    let interval = range * (1.0f32 / nb);
    Ok((
        interval * (lo + 1) as f32 + mn,
        interval * (hi + 1) as f32 + mn,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    #[test]
    fn magic_rounding_is_round_ties_even() {
        for k in 0..600u32 {
            for t in [k as f32, k as f32 + 0.5, k as f32 + 0.25, k as f32 + 0.75] {
                assert_eq!((t + MAGIC) - MAGIC, t.round_ties_even(), "t={t}");
            }
        }
        let mut r = lcg(3);
        for _ in 0..100_000 {
            let t = (r() + 1.0) * 200.0;
            assert_eq!((t + MAGIC) - MAGIC, t.round_ties_even(), "t={t}");
        }
    }

    #[test]
    fn fast_sweep_is_bit_identical_to_exact_lanes() {
        let mut r = lcg(11);
        let x: Vec<f32> = (0..5003).map(|_| r() * 3.0 + r() * r()).collect();
        for bits in [2u8, 3, 4, 8] {
            let n = levels(bits).unwrap();
            let cfg = DobiConfig::released(bits);
            let (mn, mx) = minmax_bounds(&x).unwrap();
            for (l, u) in dobi_candidates(mn, mx, &cfg) {
                let c = Cand::new(l, u, n);
                assert!(c.fast);
                let (mut a, mut b) = ([0f64; LANES], [0f64; LANES]);
                sweep_fast(&x, &c.grid, &mut a);
                sweep_exact(&x, &c.grid, &mut b);
                assert_eq!(a, b, "bits {bits} l {l} u {u}");
            }
        }
    }

    #[test]
    fn released_steps_cpu_division_and_cuda_reciprocal() {
        // A range where x/200 and x*f32(1/200) differ in the last bit.
        let mut found = false;
        for i in 1..10_000u32 {
            let range = 1.0 + i as f32 * 1e-4;
            if range / 200.0 != range * (1.0 / 200.0) {
                let c = dobi_candidates(0.0, range, &DobiConfig::released_cuda(4));
                assert_eq!(c[1].0, range * (1.0f32 / 200.0));
                let c = dobi_candidates(0.0, range, &DobiConfig::released(4));
                assert_eq!(c[1].0, range / 200.0);
                let p = dobi_candidates(0.0, range, &DobiConfig::paper(4, DobiStrategy::TwoSided));
                assert_eq!(p[1].0, range / 200.0);
                found = true;
                break;
            }
        }
        assert!(found);
    }
}
