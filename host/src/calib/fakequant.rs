//! The 2DQuant fake quantizer: asymmetric, uniform, per-tensor, with two
//! learnable scalar bounds `l` (lower) and `u` (upper).
//!
//! Forward (released `quant_arch.py: FakeQuantizerWeight/Act.forward`, all
//! f32, each step rounded separately, in this order):
//!
//! ```text
//! N = 2^b − 1;  s = (u − l)/N;  c = clamp(x, l, u);  t = (c − l)/s;
//! r = round_half_to_even(t);  y = s·r + l
//! ```
//!
//! `clamp` follows `torch.clamp` = `min(max(x, l), u)`: a NaN `x` stays NaN
//! and, should `l > u`, every element becomes `u`. Rounding is
//! `torch.round`, i.e. half to even. candle's `Tensor::round` is Rust's
//! `f32::round` (half **away** from zero) and has no gradient, so the whole
//! quantizer is one candle [`CustomOp3`] with a hand-written backward.
//!
//! Backward = the released straight-through estimator
//! (`Differentiable_Round`: identity; `Differentiable_Clip.backward`), then
//! ordinary autograd through `s`, `−l` and `+l`. Per element, with upstream
//! gradient `g`, `t` and `r` as in the forward:
//!
//! | quantity | contribution |
//! |---|---|
//! | `∂/∂x` | `g` if `l ≤ x ≤ u`, else 0 (`grad_input[(x < l) \| (x > u)] = 0`) |
//! | `∂/∂l` | `g·([x ≤ l] + (t − r)/N)` (`grad_min[x > l] = 0`, so `x == l` counts) |
//! | `∂/∂u` | `g·([x ≥ u] + (r − t)/N)` (`grad_max[x < u] = 0`, so `x == u` counts) |
//!
//! The `±1` from the clip and the `(t − r)/N` from the step size are exactly
//! the per-region table of 2DQuant Eq. 2: below `l`: `t = r = 0`, so
//! `∂/∂l = 1`; above `u`: `t ≈ r = N`, so `∂/∂u = 1`. Elements *at* a bound
//! get both the clip's 1 and `∂/∂x = 1`, as in the released code.
//! The `(t − r)/N` terms use the f32 `t` and `r` of the forward (so for
//! `x > u` they are the tiny `(t − N)/N` torch would also produce) and all
//! bound sums are accumulated in f64 (8 lanes per 32 Ki-element block, lanes
//! and blocks reduced in a fixed order), then rounded to f32.

use std::sync::Mutex;

use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, Var,
};

use super::par;
use crate::model::kernels::cpu_fwd;
use crate::model::kernels::portable::fused_on;

/// Bit widths accepted by the quantizer (codes must fit a `u8`).
pub const MIN_BITS: u8 = 1;
/// Largest supported bit width.
pub const MAX_BITS: u8 = 8;

/// Elements per parallel block of the fake-quant kernels.
const BLOCK: usize = 1 << 15;

/// `N = 2^b − 1` as f32 (the number of steps of a `b`-bit grid), or an error
/// for `b ∉ [MIN_BITS, MAX_BITS]`.
pub fn levels(bits: u8) -> Result<f32> {
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        bail!("tdquant fake quantizer: bit width {bits} outside {MIN_BITS}..={MAX_BITS}");
    }
    Ok(((1u32 << bits) - 1) as f32)
}

/// One quantization grid `{l + k·s : k = 0..=N}` with `s = (u − l)/N`
/// computed in f32 exactly as the released code does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantGrid {
    /// Lower bound `l`.
    pub lower: f32,
    /// Upper bound `u`.
    pub upper: f32,
    /// `N = 2^b − 1`.
    pub levels: f32,
    /// Step `s = (u − l)/N` (f32 division).
    pub step: f32,
}

impl QuantGrid {
    /// Grid for bounds `(lower, upper)` at `bits` bits.
    pub fn new(lower: f32, upper: f32, bits: u8) -> Result<Self> {
        let levels = levels(bits)?;
        Ok(Self::with_levels(lower, upper, levels))
    }

    /// Grid for bounds `(lower, upper)` with `levels = 2^b − 1` given directly.
    #[inline]
    pub fn with_levels(lower: f32, upper: f32, levels: f32) -> Self {
        Self {
            lower,
            upper,
            levels,
            step: (upper - lower) / levels,
        }
    }

    /// `torch.clamp(x, l, u)` = `min(max(x, l), u)` with NaN propagation.
    #[inline(always)]
    pub fn clamp(&self, x: f32) -> f32 {
        let a = if x < self.lower { self.lower } else { x };
        if a > self.upper {
            self.upper
        } else {
            a
        }
    }

    /// The unrounded grid coordinate `t = (clamp(x) − l)/s` (f32).
    #[inline(always)]
    pub fn coordinate(&self, x: f32) -> f32 {
        (self.clamp(x) - self.lower) / self.step
    }

    /// The rounded grid index `r = round_half_even(t)` as f32.
    #[inline(always)]
    pub fn index(&self, x: f32) -> f32 {
        self.coordinate(x).round_ties_even()
    }

    /// The fake-quantized value `s·r + l` (two separately rounded f32 ops).
    #[inline(always)]
    pub fn quantize(&self, x: f32) -> f32 {
        self.dequantize(self.index(x))
    }

    /// `s·r + l` for a grid index `r` (e.g. an integer code as f32).
    #[inline(always)]
    pub fn dequantize(&self, r: f32) -> f32 {
        self.step * r + self.lower
    }

    /// The `b`-bit code `r` as `u8`. A NaN input gives 0 (saturating cast);
    /// for `l < u` and finite `x` the code is always in `0..=N`.
    #[inline(always)]
    pub fn code(&self, x: f32) -> u8 {
        self.index(x) as u8
    }
}

/// The grid of `(l, u, bits)` for an element-wise slice function `what`,
/// whose input and output must have the same length.
fn slice_grid(
    what: &str,
    (l, u, bits): (f32, f32, u8),
    n_in: usize,
    n_out: usize,
) -> Result<QuantGrid> {
    let grid = QuantGrid::new(l, u, bits)?;
    if n_in != n_out {
        bail!("{what}: input has {n_in} elements, output {n_out}");
    }
    Ok(grid)
}

/// Fake-quantize `x` into `out` (same length) with bounds `(l, u)` at
/// `bits` bits: exactly the f32 forward of [`FakeQuantizer::forward`], no
/// autograd. Parallel over blocks for large inputs.
pub fn fake_quant_f32_slice(x: &[f32], l: f32, u: f32, bits: u8, out: &mut [f32]) -> Result<()> {
    let grid = slice_grid("fake_quant_f32_slice", (l, u, bits), x.len(), out.len())?;
    par::map_blocks_mut(out, BLOCK, |r, o| fwd_block_dispatch(&x[r], &grid, o));
    Ok(())
}

/// Forward kernel over one block (see [`fwd_block_dispatch`]).
#[inline(always)]
fn fwd_block(x: &[f32], grid: &QuantGrid, out: &mut [f32]) {
    for (y, &v) in out.iter_mut().zip(x) {
        *y = grid.quantize(v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
/// # Safety
/// The CPU must support AVX2.
unsafe fn fwd_block_avx2(x: &[f32], grid: &QuantGrid, out: &mut [f32]) {
    // Same code with 256-bit vectors and a native `roundps` for
    // `round_ties_even` (the baseline x86-64 target calls libm's `rintf`).
    // Rust never contracts a·b + c, so results are bit-identical.
    fwd_block(x, grid, out)
}

/// The forward kernel, AVX2-compiled when the CPU has it.
fn fwd_block_dispatch(x: &[f32], grid: &QuantGrid, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu_features::cpu_features().avx2 {
            // SAFETY: the CPU supports AVX2 (detected at run time).
            return unsafe { fwd_block_avx2(x, grid, out) };
        }
    }
    fwd_block(x, grid, out)
}

/// Lanes of the backward bound-gradient sums (fixed, so the order of the
/// f64 additions never depends on the thread count).
const BWD_LANES: usize = 8;

/// Backward kernel over one block: writes `∂/∂x` into `dx`, returns the
/// block's `(Σ ∂/∂l, Σ ∂/∂u)` (f64; element `j` of every 8-chunk summed in
/// lane `j`, lanes reduced pairwise).
#[inline(always)]
fn bwd_block(x: &[f32], g: &[f32], grid: &QuantGrid, dx: &mut [f32]) -> (f64, f64) {
    let mut sl = [0f64; BWD_LANES];
    let mut su = [0f64; BWD_LANES];
    let mut one = |j: usize, v: f32, gv: f32, d: &mut f32| {
        // grad_input[(x < l) | (x > u)] = 0
        *d = if v < grid.lower || v > grid.upper {
            0.0
        } else {
            gv
        };
        let (a, b) = bound_grads(grid, v);
        sl[j] += f64::from(gv) * a;
        su[j] += f64::from(gv) * b;
    };
    let n = x.len();
    let full = n - n % BWD_LANES;
    for ((xc, gc), dc) in x[..full]
        .chunks_exact(BWD_LANES)
        .zip(g[..full].chunks_exact(BWD_LANES))
        .zip(dx[..full].chunks_exact_mut(BWD_LANES))
    {
        for j in 0..BWD_LANES {
            one(j, xc[j], gc[j], &mut dc[j]);
        }
    }
    for (j, ((&v, &gv), d)) in x[full..]
        .iter()
        .zip(&g[full..])
        .zip(&mut dx[full..])
        .enumerate()
    {
        one(j, v, gv, d);
    }
    let red =
        |a: [f64; BWD_LANES]| ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    (red(sl), red(su))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
/// # Safety
/// The CPU must support AVX2.
unsafe fn bwd_block_avx2(x: &[f32], g: &[f32], grid: &QuantGrid, dx: &mut [f32]) -> (f64, f64) {
    bwd_block(x, g, grid, dx)
}

/// The backward kernel, AVX2-compiled when the CPU has it.
fn bwd_block_dispatch(x: &[f32], g: &[f32], grid: &QuantGrid, dx: &mut [f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu_features::cpu_features().avx2 {
            // SAFETY: the CPU supports AVX2 (detected at run time).
            return unsafe { bwd_block_avx2(x, g, grid, dx) };
        }
    }
    bwd_block(x, g, grid, dx)
}

/// The `bits`-bit codes `r ∈ 0..=N` of `x` (same f32 arithmetic as
/// [`fake_quant_f32_slice`]; `s·code + l` reproduces its output bit for bit).
pub fn codes_f32_slice(x: &[f32], l: f32, u: f32, bits: u8, out: &mut [u8]) -> Result<()> {
    let grid = slice_grid("codes_f32_slice", (l, u, bits), x.len(), out.len())?;
    par::map_blocks_mut(out, BLOCK, |r, o| {
        for (c, &v) in o.iter_mut().zip(&x[r]) {
            *c = grid.code(v);
        }
    });
    Ok(())
}

/// Per-element contributions `(∂y/∂l, ∂y/∂u)` of the released STE for one
/// element `x` (upstream gradient 1), in f64. See the module docs.
#[inline(always)]
pub fn bound_grads(grid: &QuantGrid, x: f32) -> (f64, f64) {
    let t = grid.coordinate(x);
    let r = t.round_ties_even();
    let frac = (f64::from(t) - f64::from(r)) / f64::from(grid.levels);
    let at_lo = if x <= grid.lower { 1.0 } else { 0.0 };
    let at_hi = if x >= grid.upper { 1.0 } else { 0.0 };
    (at_lo + frac, at_hi - frac)
}

/// The value of a one-element bound.
fn one_value(v: &[f32], what: &str) -> Result<f32> {
    match v {
        [x] => Ok(*x),
        _ => bail!(
            "tdquant fake quantizer: {what} must have one element, has {}",
            v.len()
        ),
    }
}

/// Read a one-element f32 tensor.
fn tensor_scalar(t: &Tensor) -> Result<f32> {
    if t.elem_count() != 1 {
        bail!(
            "tdquant fake quantizer: bound must have one element, has shape {:?}",
            t.shape()
        );
    }
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?[0])
}

/// Forward op `(x, l, u) ↦ y` with the STE backward.
struct FakeQuantOp {
    bits: u8,
}

impl CustomOp3 for FakeQuantOp {
    cpu_fwd!("tdquant-fake-quant", |op, (x, l1), (lo, l2), (up, l3)| {
        let (lo, up) = (one_value(lo, "lower bound")?, one_value(up, "upper bound")?);
        let mut out = vec![0f32; x.len()];
        fake_quant_f32_slice(x, lo, up, op.bits, &mut out)?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    });

    fn bwd(
        &self,
        x: &Tensor,
        lo: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grid = QuantGrid::new(tensor_scalar(lo)?, tensor_scalar(up)?, self.bits)?;
        let op = FakeQuantBwdOp {
            grid,
            sums: Mutex::new(None),
        };
        let grad = grad.contiguous()?;
        let dx = x.contiguous()?.apply_op2_no_bwd(&grad, &op)?;
        let (gl, gu) = op
            .sums
            .into_inner()
            .map_err(|_| candle_core::Error::Msg("fake-quant backward: poisoned lock".into()))?
            .ok_or_else(|| candle_core::Error::Msg("fake-quant backward did not run".into()))?;
        let dl = Tensor::full(gl as f32, lo.shape(), lo.device())?.to_dtype(lo.dtype())?;
        let du = Tensor::full(gu as f32, up.shape(), up.device())?.to_dtype(up.dtype())?;
        Ok((Some(dx), Some(dl), Some(du)))
    }
}

/// Backward kernel `(x, g) ↦ ∂/∂x`, also producing the two bound sums.
struct FakeQuantBwdOp {
    grid: QuantGrid,
    sums: Mutex<Option<(f64, f64)>>,
}

impl CustomOp2 for FakeQuantBwdOp {
    cpu_fwd!("tdquant-fake-quant-bwd", |op, (x, l1), (g, l2)| {
        if x.len() != g.len() {
            bail!(
                "fake-quant backward: input has {} elements, gradient {}",
                x.len(),
                g.len()
            );
        }
        let grid = op.grid;
        let mut dx = vec![0f32; x.len()];
        let parts = par::map_blocks_mut(&mut dx, BLOCK, |r, o| {
            bwd_block_dispatch(&x[r.clone()], &g[r], &grid, o)
        });
        let sums = parts
            .into_iter()
            .fold((0f64, 0f64), |(a, b), (c, d)| (a + c, b + d));
        *op.sums
            .lock()
            .map_err(|_| candle_core::Error::Msg("fake-quant backward: poisoned lock".into()))? =
            Some(sums);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    });
}

/// Apply the differentiable fake quantizer to `x` with bound tensors `lower`,
/// `upper` (one element each, f32, usually [`Var`]s). Gradients flow to `x`,
/// `lower` and `upper` as in the released STE (module docs). On the CPU one
/// fused op; on another device (CUDA) the same quantizer from candle ops.
pub fn fake_quant(x: &Tensor, lower: &Tensor, upper: &Tensor, bits: u8) -> Result<Tensor> {
    let n = levels(bits)?;
    if x.dtype() != DType::F32 {
        bail!(
            "tdquant fake quantizer: input must be f32, got {:?}",
            x.dtype()
        );
    }
    if !fused_on(x.device()) {
        return fake_quant_portable(x, lower, upper, n);
    }
    x.contiguous()?.apply_op3(
        &lower.contiguous()?,
        &upper.contiguous()?,
        FakeQuantOp { bits },
    )
}

/// The fake quantizer from candle tensor ops (any device), with the same
/// forward (the same f32 operations in the same order, so the same values) and the released
/// straight-through backward, which autograd derives from two detached corrections:
///
/// - `c = clamp(x) + (z − z̄)` with `z = x·[l ≤ x ≤ u] + l·[x ≤ l] + u·[x ≥ u]` and `z̄` its
///   detached copy: the value is exactly `clamp(x)`, the gradient is the released clip's (an
///   element at a bound feeds both `x` and the bound);
/// - `R = t + (r − t)̄` with `r` = `t` rounded half to even: the value is exactly `r`, the
///   gradient the identity.
///
/// The bound gradients are summed by candle in f32 (the CPU kernel sums in f64).
fn fake_quant_portable(x: &Tensor, lower: &Tensor, upper: &Tensor, levels: f32) -> Result<Tensor> {
    let dev = x.device();
    let shape = x.shape();
    // The bound variables live on the CPU; candle moves them here and their
    // gradients back.
    let (l, u) = (
        lower.to_device(dev)?.reshape(())?,
        upper.to_device(dev)?.reshape(())?,
    );
    let n = Tensor::new(levels, dev)?;
    let s = (&u - &l)?.div(&n)?;
    let (lb, ub) = (l.broadcast_as(shape)?, u.broadcast_as(shape)?);
    let below = x.le(&lb)?.to_dtype(DType::F32)?;
    let above = x.ge(&ub)?.to_dtype(DType::F32)?;
    let inside = (x.ge(&lb)? * x.le(&ub)?)?.to_dtype(DType::F32)?;
    let clamped = x.maximum(&lb)?.minimum(&ub)?.detach();
    let z = ((x * &inside)? + (&lb * &below)? + (&ub * &above)?)?;
    let c = (clamped + (&z - z.detach())?)?;
    let t = c.broadcast_sub(&l)?.broadcast_div(&s)?;
    let r = round_half_even_nonneg(&t.detach())?;
    let rounded = (&t + (r - &t)?.detach())?;
    rounded.broadcast_mul(&s)?.broadcast_add(&l)
}

/// `t` rounded half to even, for `t ≥ 0` (exact: `t − ⌊t⌋` and `r/2` are exact in f32).
fn round_half_even_nonneg(t: &Tensor) -> Result<Tensor> {
    let fl = t.floor()?;
    let frac = (t - &fl)?;
    let half = Tensor::new(0.5f32, t.device())?.broadcast_as(t.shape())?;
    let up = frac.gt(&half)?.to_dtype(DType::F32)?;
    let tie = frac.eq(&half)?.to_dtype(DType::F32)?;
    let odd = (&fl - ((&fl * 0.5)?.floor()? * 2.0)?)?;
    fl + (up + (tie * odd)?)?
}

/// A 2DQuant quantizer with learnable per-tensor bounds (`lower_bound`,
/// `upper_bound` in the released checkpoints, both shape `[1]`).
#[derive(Clone, Debug)]
pub struct FakeQuantizer {
    lower: Var,
    upper: Var,
    bits: u8,
}

impl FakeQuantizer {
    /// New quantizer on the CPU with bounds `(lower, upper)` (shape `[1]` f32
    /// [`Var`]s) at `bits` bits.
    pub fn new(lower: f32, upper: f32, bits: u8) -> Result<Self> {
        levels(bits)?;
        let dev = candle_core::Device::Cpu;
        Ok(Self {
            lower: Var::from_vec(vec![lower], 1, &dev)?,
            upper: Var::from_vec(vec![upper], 1, &dev)?,
            bits,
        })
    }

    /// Differentiable fake quantization of `x` (f32, any shape).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        fake_quant(x, self.lower.as_tensor(), self.upper.as_tensor(), self.bits)
    }

    /// Current bounds `(l, u)`.
    pub fn bounds(&self) -> Result<(f32, f32)> {
        Ok((
            tensor_scalar(self.lower.as_tensor())?,
            tensor_scalar(self.upper.as_tensor())?,
        ))
    }

    /// Overwrite the bounds (e.g. with a DOBI result).
    pub fn set_bounds(&self, lower: f32, upper: f32) -> Result<()> {
        let dev = self.lower.device().clone();
        self.lower.set(&Tensor::from_vec(vec![lower], 1, &dev)?)?;
        self.upper.set(&Tensor::from_vec(vec![upper], 1, &dev)?)?;
        Ok(())
    }

    /// Bit width `b`.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The current grid (bounds and step) for the no-grad slice functions.
    pub fn grid(&self) -> Result<QuantGrid> {
        let (l, u) = self.bounds()?;
        QuantGrid::new(l, u, self.bits)
    }

    /// The lower-bound variable.
    pub fn lower(&self) -> &Var {
        &self.lower
    }

    /// The upper-bound variable.
    pub fn upper(&self) -> &Var {
        &self.upper
    }

    /// Both bound variables `[lower, upper]`, e.g. for an optimizer.
    pub fn vars(&self) -> Vec<Var> {
        vec![self.lower.clone(), self.upper.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_round_is_half_away_but_ours_is_half_even() {
        let t = Tensor::new(&[0.5f32, 1.5, 2.5, -0.5], &candle_core::Device::Cpu).unwrap();
        let r = t.round().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            r,
            vec![1.0, 2.0, 3.0, -1.0],
            "candle round changed semantics"
        );
        let g = QuantGrid::new(0.0, 15.0, 4).unwrap();
        assert_eq!(g.step, 1.0);
        let q: Vec<f32> = [0.5f32, 1.5, 2.5, 3.5, 14.5]
            .iter()
            .map(|&x| g.quantize(x))
            .collect();
        assert_eq!(q, vec![0.0, 2.0, 2.0, 4.0, 14.0]);
    }

    #[test]
    fn clamp_matches_torch_semantics() {
        let g = QuantGrid::new(1.0, -1.0, 2).unwrap(); // l > u: torch gives u everywhere
        assert_eq!(g.clamp(5.0), -1.0);
        assert_eq!(g.clamp(-5.0), -1.0);
        assert!(QuantGrid::new(0.0, 1.0, 2)
            .unwrap()
            .clamp(f32::NAN)
            .is_nan());
        assert!(levels(0).is_err() && levels(9).is_err());
        assert_eq!(levels(8).unwrap(), 255.0);
    }

    #[test]
    fn round_half_even_is_exact_at_ties_and_near_them() {
        let t = Tensor::new(
            &[
                0.0f32,
                0.5,
                1.5,
                2.5,
                3.5,
                0.499_999_97,
                2.500_000_2,
                7.0,
                254.5,
                255.0,
            ],
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let got = round_half_even_nonneg(&t)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want: Vec<f32> = t
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.round_ties_even())
            .collect();
        assert_eq!(got, want);
    }

    /// The quantizer from candle ops (the CUDA path) equals the fused CPU op
    /// on the CPU: the same values bit for bit, the same input gradient, and
    /// bound gradients within f32 summation error (the fused op sums in f64).
    #[test]
    fn portable_quantizer_matches_the_fused_op() {
        let dev = candle_core::Device::Cpu;
        let (lo, up) = (-0.75f32, 1.25f32);
        let mut xs: Vec<f32> = (0..4000)
            .map(|i| ((i * 7919) % 4001) as f32 / 1000.0 - 2.0)
            .collect();
        // At the bounds, on grid ties, NaN-free extremes.
        let grid = QuantGrid::new(lo, up, 3).unwrap();
        xs.extend([lo, up, lo - 1e-3, up + 1e-3, -1e6, 1e6]);
        xs.extend((0..7).map(|k| grid.dequantize(k as f32 + 0.5)));
        let x = Tensor::from_vec(xs.clone(), xs.len(), &dev).unwrap();
        let g = Tensor::from_vec(
            (0..xs.len())
                .map(|i| ((i % 13) as f32 - 6.0) / 7.0)
                .collect::<Vec<_>>(),
            xs.len(),
            &dev,
        )
        .unwrap();
        let run = |portable: bool| {
            let (xv, lv, uv) = (
                Var::from_tensor(&x).unwrap(),
                Var::new(&[lo], &dev).unwrap(),
                Var::new(&[up], &dev).unwrap(),
            );
            let y = if portable {
                fake_quant_portable(xv.as_tensor(), lv.as_tensor(), uv.as_tensor(), 7.0)
            } else {
                fake_quant(xv.as_tensor(), lv.as_tensor(), uv.as_tensor(), 3)
            }
            .unwrap();
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let get = |v: &Var| {
                grads
                    .get(v)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            };
            (
                y.to_vec1::<f32>().unwrap(),
                get(&xv),
                get(&lv)[0],
                get(&uv)[0],
            )
        };
        let (yf, dxf, dlf, duf) = run(false);
        let (yp, dxp, dlp, dup) = run(true);
        assert_eq!(yf, yp, "values");
        assert_eq!(dxf, dxp, "input gradient");
        for (what, a, b) in [("lower", dlf, dlp), ("upper", duf, dup)] {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{what} bound gradient: fused {a}, portable {b}"
            );
        }
    }
}
