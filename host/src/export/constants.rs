//! The fixed-point constants of the integer contract, computed in `f64` from
//! the `f32` weights and bounds and rounded once, and the rules that choose
//! each constant's format.

use anyhow::{ensure, Context, Result};
use tdquant_core::int::model::ln;
use tdquant_core::int::EMBED;
use tdquant_core::{BitWidth, Dtype, QuantParams, Requantizer};

use crate::model::hook::SiteId;
use crate::model::LN_EPS;
use crate::weights::SwinIrWeights;

use super::{ConvBits, CONV_MARGIN, MAX_FRAC, STREAM_MARGIN};

// Small numeric helpers (host side, f64).

pub(super) fn to_i64(x: f64, what: &str) -> Result<i64> {
    let r = x.round();
    ensure!(
        r.is_finite() && r.abs() < 4.0e18,
        "{what} = {x:.6e} does not fit an i64"
    );
    Ok(r as i64)
}

pub(super) fn to_i32(x: f64, what: &str) -> Result<i32> {
    let r = x.round();
    ensure!(
        r.is_finite() && r.abs() <= f64::from(i32::MAX),
        "{what} = {x:.6e} does not fit an i32"
    );
    Ok(r as i32)
}

pub(super) fn push_i64(words: &mut Vec<i32>, v: i64) {
    words.push(v as u32 as i32);
    words.push((v >> 32) as i32);
}

/// `⌊bits − log2(max_abs)⌋` (large when `max_abs` is 0).
pub(super) fn frac_for(max_abs: f64, bits: i32) -> i32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        (f64::from(bits) - max_abs.log2()).floor() as i32
    } else {
        1000
    }
}

pub(super) fn max_abs_f64(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

pub(super) fn vec_f32(w: &SwinIrWeights, key: &str) -> Result<Vec<f32>> {
    Ok(w.get(key)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A quantizer's grid as the integer path sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Grid {
    pub(super) params: QuantParams,
    pub(super) l: f64,
    pub(super) s: f64,
    pub(super) n: u8,
}

pub(super) fn grid(bounds: &[(f32, f32)], site: SiteId, bits: BitWidth) -> Result<Grid> {
    let (l, u) = *bounds
        .get(site.index())
        .with_context(|| format!("no bounds for {site}"))?;
    let params =
        QuantParams::new(l, u, bits).map_err(|e| anyhow::anyhow!("bounds of {site}: {e}"))?;
    Ok(Grid {
        params,
        l: f64::from(l),
        s: f64::from(params.step()),
        n: bits.levels(),
    })
}

// ---------------------------------------------------------------------------
// Per-operator constants.

/// LayerNorm words ([`ln`] layout) for output precision `y_frac`.
pub(super) fn ln_words(gamma: &[f32], beta: &[f32], y_frac: i32, eps_t: i64) -> Result<Vec<i32>> {
    let g_frac = frac_for(max_abs_f64(gamma.iter().map(|&g| f64::from(g))), 30).clamp(0, 40);
    ensure!(
        (0..=24 + g_frac).contains(&y_frac) && y_frac <= 40,
        "export: layernorm y_frac {y_frac} out of range"
    );
    let mut w = vec![g_frac, y_frac];
    push_i64(&mut w, eps_t);
    for &g in gamma {
        w.push(to_i32(f64::from(g) * 2f64.powi(g_frac), "layernorm gamma")?);
    }
    for &b in beta {
        w.push(to_i32(f64::from(b) * 2f64.powi(y_frac), "layernorm beta")?);
    }
    ensure!(w.len() == ln::WORDS);
    Ok(w)
}

/// `E = round(n²·eps·2^(2F))`.
pub(super) fn eps_term(stream_frac: u32) -> Result<i64> {
    let n = EMBED as f64;
    let e = to_i64(
        n * n * LN_EPS * 2f64.powi(2 * stream_frac as i32),
        "layernorm eps",
    )?;
    ensure!(
        (1..=1i64 << 40).contains(&e),
        "export: layernorm eps term {e} out of range"
    );
    Ok(e)
}

/// `y_frac` for a LayerNorm feeding the quantizers `grids`.
pub(super) fn ln_y_frac(gamma: &[f32], beta: &[f32], grids: &[Grid]) -> i32 {
    let g_frac = frac_for(max_abs_f64(gamma.iter().map(|&g| f64::from(g))), 30).clamp(0, 40);
    let mut y = 28.min(24 + g_frac);
    y = y.min(frac_for(
        max_abs_f64(beta.iter().map(|&b| f64::from(b))),
        30,
    ));
    for g in grids {
        // s·2^y ≤ 2^32/N (the FixedQuant clamp condition), with a factor 2 to spare.
        y = y.min(frac_for(g.s * f64::from(g.n), 31));
    }
    y.max(0)
}

/// Fixed quantizer words: shift S, offset L (i64), multiplier M (i64).
pub(super) fn fq_words(g: &Grid, y_frac: i32) -> Result<Vec<i32>> {
    let s_shift = y_frac + g.s.log2().floor() as i32 + 30;
    ensure!(
        (1..=62).contains(&s_shift),
        "export: fixed quantizer shift {s_shift} out of range (step {})",
        g.s
    );
    let mult = to_i64(
        2f64.powi(s_shift - y_frac) / g.s,
        "fixed quantizer multiplier",
    )?;
    let offset = to_i64(g.l * 2f64.powi(y_frac), "fixed quantizer offset")?;
    let mut w = vec![s_shift];
    push_i64(&mut w, offset);
    push_i64(&mut w, mult);
    Ok(w)
}

/// Affine words (A, B, c_shift, frac) and the per-row `C_j`.
pub(super) fn affine_words(a: f64, b: f64, c: &[f64]) -> Result<(Vec<i32>, Vec<i32>)> {
    let mut frac = MAX_FRAC.min(frac_for(a.abs().max(b.abs()), 37));
    let c_room = frac_for(max_abs_f64(c.iter().copied()), 30);
    ensure!(c_room >= 0, "export: linear constant too large ({c:?})");
    let mut c_shift = (frac - c_room).max(0);
    if c_shift > 29 {
        frac -= c_shift - 29;
        c_shift = 29;
    }
    ensure!(frac >= 0, "export: linear scale too large (A {a}, B {b})");
    let mut w = Vec::with_capacity(6);
    push_i64(&mut w, to_i64(a * 2f64.powi(frac), "linear A")?);
    push_i64(&mut w, to_i64(b * 2f64.powi(frac), "linear B")?);
    w.push(c_shift);
    w.push(frac);
    let rows = c
        .iter()
        .map(|&cj| to_i32(cj * 2f64.powi(frac - c_shift), "linear C"))
        .collect::<Result<Vec<_>>>()?;
    Ok((w, rows))
}

/// The linear layer `y_j = Σ x_i w_ji + b_j` folded for an output in units
/// `1/out_scale` offset by `out_offset`: `t ≈ (σ·y_j − out_offset)·out_scale`.
pub(super) struct LinearFold<'a> {
    pub(super) input: Grid,
    pub(super) weight: Grid,
    pub(super) codes: &'a [u8],
    pub(super) k: usize,
    pub(super) bias: &'a [f32],
    pub(super) sigma: f64,
    pub(super) out_offset: f64,
    pub(super) out_scale: f64,
}

impl LinearFold<'_> {
    pub(super) fn fold(&self) -> Result<(Vec<i32>, Vec<i32>)> {
        let (la, sa, lw, sw) = (self.input.l, self.input.s, self.weight.l, self.weight.s);
        let k = self.k as f64;
        let a = self.sigma * sa * sw * self.out_scale;
        let b = self.sigma * sa * lw * self.out_scale;
        let c: Vec<f64> = self
            .codes
            .chunks_exact(self.k)
            .zip(self.bias)
            .map(|(row, &bj)| {
                let rowsum: f64 = row.iter().map(|&c| f64::from(c)).sum();
                (self.sigma * (la * sw * rowsum + k * la * lw + f64::from(bj)) - self.out_offset)
                    * self.out_scale
            })
            .collect();
        affine_words(a, b, &c)
    }
}

/// Conv weights in `(ky, kx, c_in)` order and the `[cout, 3]` requantizer words.
///
/// `scale_of(delta)` is the requantization scale for a weight step `delta`,
/// `bias_of(o)` the bias of output `o` in output units.
pub(super) fn conv_section(
    w: &[f32],
    cout: usize,
    cin: usize,
    bits: ConvBits,
    scale_of: impl Fn(f64) -> f64,
    bias_of: impl Fn(usize) -> f64,
) -> Result<(Dtype, Vec<u8>, Vec<i32>)> {
    ensure!(w.len() == cout * cin * 9, "conv weight size");
    let qmax = match bits {
        ConvBits::I8 => 127.0,
        ConvBits::I16 => 32767.0,
    };
    let mut data = Vec::new();
    let mut q = Vec::with_capacity(cout * 3);
    for o in 0..cout {
        let row = &w[o * cin * 9..(o + 1) * cin * 9];
        let m = max_abs_f64(row.iter().map(|&x| f64::from(x)));
        let delta = if m > 0.0 { m / qmax } else { 1.0 };
        for ky in 0..3 {
            for kx in 0..3 {
                for c in 0..cin {
                    let v = (f64::from(row[c * 9 + ky * 3 + kx]) / delta).round();
                    match bits {
                        ConvBits::I8 => data.push((v as i8) as u8),
                        ConvBits::I16 => data.extend_from_slice(&(v as i16).to_le_bytes()),
                    }
                }
            }
        }
        let r = Requantizer::from_scale(scale_of(delta))
            .map_err(|e| anyhow::anyhow!("conv requantizer: {e}"))?;
        q.push(r.multiplier());
        q.push(i32::from(r.shift()));
        q.push(to_i32(bias_of(o), "conv bias")?);
    }
    let dtype = match bits {
        ConvBits::I8 => Dtype::I8,
        ConvBits::I16 => Dtype::I16,
    };
    Ok((dtype, data, q))
}

pub(super) fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Input shift `k` so that `max·2^F·CONV_MARGIN / 2^k ≤ 32767`.
pub(super) fn conv_shift(max: f32, stream_frac: u32) -> i32 {
    let need = f64::from(max) * 2f64.powi(stream_frac as i32) * CONV_MARGIN / 32767.0;
    if need <= 1.0 {
        0
    } else {
        need.log2().ceil() as i32
    }
}

/// Stream fractional bits from the calibrated maximum.
pub fn stream_frac_for(max: f32) -> u32 {
    frac_for(f64::from(max) * STREAM_MARGIN, 24).clamp(4, 24) as u32
}
