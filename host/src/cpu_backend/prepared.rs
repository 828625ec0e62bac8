//! The model's constants decoded once into native vectors for the portable
//! kernels: packed weights unpacked and transposed, little-endian constants
//! read into `i32`/`i64`, per-head bias tables pre-shifted.

use anyhow::{anyhow, Result};
use tdquant_core::int::conv::Conv;
use tdquant_core::int::layernorm::LnParams;
use tdquant_core::int::model::BlockParams;
use tdquant_core::int::{I32Src, LeI32, EMBED};
use tdquant_core::packed::PackedMatrix;
use tdquant_core::requant::Requantizer;

use super::prepared_vnni::{ConvEpi, ConvV, VBlock};

/// A convolution with its weights and requantizers decoded.
pub(crate) struct FastConv {
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    /// `cout × 9·cin` weights (int8 or int16 in the file; both fit `i16`).
    pub(crate) weights: Vec<i16>,
    /// All weights fit `i8`: a tap's `cin ≤ 64` products (`|·| ≤ 2^15·2^7`)
    /// sum exactly in `i32` (`< 2^28`).
    pub(crate) small: bool,
    pub(crate) requant: Vec<Requantizer>,
    pub(crate) bias: Vec<i64>,
    /// The weights for `vpdpwssd` (see [`ConvV`]), when allowed.
    pub(crate) v: Option<ConvV>,
}

impl FastConv {
    pub(crate) fn new(conv: &Conv<'_, LeI32<'_>>) -> Result<Self> {
        conv.validate()
            .map_err(|e| anyhow!("conv parameters: {e}"))?;
        let n = conv.cout * 9 * conv.cin;
        let weights = (0..n)
            .map(|i| i16::try_from(conv.weights.at(i)).map_err(|_| anyhow!("conv weight range")))
            .collect::<Result<Vec<_>>>()?;
        let small = weights.iter().all(|&w| i8::try_from(w).is_ok());
        let requant = (0..conv.cout)
            .map(|o| conv.requantizer(o).map_err(|e| anyhow!("conv: {e}")))
            .collect::<Result<Vec<_>>>()?;
        let bias: Vec<i64> = (0..conv.cout).map(|o| conv.bias(o)).collect();
        let mut v = ConvV::new(&weights, conv.cin, conv.cout);
        if let Some(cv) = v.as_mut() {
            cv.epi = ConvEpi::new(&requant, &bias, cv.cout_pad);
        }
        Ok(Self {
            cin: conv.cin,
            cout: conv.cout,
            weights,
            small,
            requant,
            bias,
            v,
        })
    }

    /// `requant_o(acc) + bias_o`: core's `Conv::run` output `o` of a pixel
    /// whose sum is `acc`.
    #[inline(always)]
    pub(crate) fn output(&self, o: usize, acc: i64) -> i64 {
        self.requant[o].apply_i64(acc).saturating_add(self.bias[o])
    }

    /// `dst[o] = output(o, acc[o])` for `o < dst.len()`: one pixel's outputs
    /// from its `i32` sums.
    #[inline(always)]
    pub(crate) fn requantize_i32(&self, acc: &[i32], dst: &mut [i64]) {
        for (o, (d, &a)) in dst.iter_mut().zip(acc).enumerate() {
            *d = self.output(o, i64::from(a));
        }
    }
}

/// Per-block constants, decoded.
pub(crate) struct FastBlock<'a> {
    pub(crate) p: BlockParams<'a>,
    pub(crate) c_q: Vec<i32>,
    pub(crate) c_k: Vec<i32>,
    pub(crate) c_v: Vec<i32>,
    pub(crate) c_proj: Vec<i32>,
    pub(crate) c_fc1: Vec<i32>,
    pub(crate) c_fc2: Vec<i32>,
    /// The AttnProb decision levels `T_k` (`prob` as i64).
    pub(crate) levels_t: Vec<i64>,
    /// Per head, `R[h, rpi(i, j)] << rpb_shift` for the 64 × 64 pairs.
    pub(crate) bias: Vec<i64>,
    /// GELU thresholds `(H_k, L_k)`.
    pub(crate) gelu_hl: Vec<(i64, i64)>,
    pub(crate) lq: Lin,
    pub(crate) lk: Lin,
    pub(crate) lv: Lin,
    pub(crate) lproj: Lin,
    pub(crate) lfc1: Lin,
    pub(crate) lfc2: Lin,
    /// The same block for the AVX-512 path (`None` when a weight code or
    /// the activation width does not allow it).
    pub(crate) v: Option<VBlock>,
}

pub(crate) fn decode(v: &LeI32<'_>) -> Vec<i32> {
    (0..v.len()).map(|i| v.at(i)).collect()
}

pub(crate) fn unpack(m: &PackedMatrix<'_>) -> Result<Vec<u8>> {
    let n = (m.rows() as usize) * (m.cols() as usize);
    let mut out = vec![0u8; n];
    m.unpack_into(&mut out)
        .map_err(|e| anyhow!("unpacking weights: {e:?}"))?;
    Ok(out)
}

/// A linear layer's weight codes, transposed (`k × rows`) and widened to
/// `i16`, so that a token's accumulators are built with contiguous
/// multiply-adds over the rows.
pub(crate) struct Lin {
    pub(crate) wt: Vec<i16>,
    pub(crate) k: usize,
    pub(crate) rows: usize,
    /// Every accumulator fits `i16` exactly: `max weight code · max input
    /// code · k ≤ 32767`.
    pub(crate) narrow: bool,
}

impl Lin {
    /// `w`: `rows × k` codes, row-major; `levels`: the largest input code.
    pub(crate) fn new(w: &[u8], k: usize, rows: usize, levels: u8) -> Self {
        let mut wt = vec![0i16; k * rows];
        for (j, row) in w.chunks_exact(k).take(rows).enumerate() {
            for (i, &c) in row.iter().enumerate() {
                wt[i * rows + j] = i16::from(c);
            }
        }
        let wmax = w.iter().copied().max().map_or(0, usize::from);
        let narrow = wmax * usize::from(levels) * k <= i16::MAX as usize;
        Self {
            wt,
            k,
            rows,
            narrow,
        }
    }
}

/// A LayerNorm's constants for [`ln_token`].
pub(crate) struct LnFast {
    pub(crate) gamma: [i64; EMBED],
    pub(crate) beta: [i64; EMBED],
    pub(crate) shift: u32,
    pub(crate) eps_t: i64,
}

impl LnFast {
    pub(crate) fn new(ln: &LnParams<LeI32<'_>>) -> Option<Self> {
        if !(1..=tdquant_core::int::layernorm::MAX_EPS_T).contains(&ln.eps_t)
            || ln.gamma.len() != EMBED
            || ln.beta.len() != EMBED
        {
            return None;
        }
        Some(Self {
            gamma: core::array::from_fn(|c| i64::from(ln.gamma.at(c))),
            beta: core::array::from_fn(|c| i64::from(ln.beta.at(c))),
            shift: ln.shift(),
            eps_t: ln.eps_t,
        })
    }
}
