//! Export: FP SwinIR-light weights + 2DQuant bounds → the integer-only `.tdq`
//! model that `tdquant_core::int::IntModel` runs.
//!
//! Every real-valued constant of the integer contract
//! (`docs/integer-semantics.md`) is computed here, in `f64`, from the `f32`
//! weights and bounds, and rounded once to the integer the contract names.
//! The quantizer steps are `core::quant::QuantParams::step()`, i.e. the `f32`
//! `(u − l)/N` torch computes; weight codes are `QuantParams::encode`, bit-exact
//! with the fake-quant model.
//!
//! Fixed-point formats are chosen per layer as the largest fractional bit
//! counts that keep every constant inside the bound its operator validates
//! (see each `choose_*` helper); the residual stream's fractional bits `F` and
//! the conv input shifts come from an FP pass over a calibration batch
//! ([`calib_stats`]).
//!
//! Section names and layouts: `tdquant_core::int::model`.
//!
//! Files: `calib_stats` (the FP pass that sets the stream and conv
//! formats), `constants` (every fixed-point constant and the rules that pick
//! its format), `gelu` (the GELU → quantizer thresholds), `golden` (the
//! golden-bounds export of the tests and `bench int`), `to_file` (the
//! `tdquant export` command: bounds file in, `.tdq` file out).

pub mod calib_stats;
mod constants;
pub mod gelu;
pub mod golden;
pub mod to_file;

pub use calib_stats::{calib_stats, CalibStats};
pub use constants::stream_frac_for;
pub use gelu::{gelu_f64, gelu_min, gelu_thresholds};
pub use golden::GoldenExport;
pub use to_file::{cli_export, export_calibration_batch, load_export_bounds, LoadedExportBounds};

use anyhow::{bail, ensure, Context, Result};
use tdquant_core::int::model::{block, ln, meta, FORMAT, INPUT_GAIN, PIXEL_FRAC};
use tdquant_core::int::{BLOCKS, DEPTH, EMBED, HEADS, LAYERS, MLP, RPB_ROWS};
use tdquant_core::{BitWidth, ContainerWriter, Dtype, SectionSpec};

use crate::model::hook::{Site, SiteId};
use crate::model::{attn_scale, RGB_MEAN};
use crate::weights::SwinIrWeights;

use constants::{
    conv_section, conv_shift, eps_term, fq_words, frac_for, grid, i32_bytes, ln_words, ln_y_frac,
    max_abs_f64, push_i64, to_i32, to_i64, vec_f32, Grid, LinearFold,
};

/// Largest fractional bit count used for linear / attention affines.
const MAX_FRAC: i32 = 48;
/// Stream headroom: calibrated `max |x|·2^F ≤ 2^24 / STREAM_MARGIN`.
pub const STREAM_MARGIN: f64 = 4.0;
/// Conv-input headroom: calibrated `max |x|` maps to at most `32767 / CONV_MARGIN`.
pub const CONV_MARGIN: f64 = 2.0;

/// Weight precision of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvBits {
    /// int8, per output channel.
    I8,
    /// int16, per output channel.
    I16,
}

/// Export choices.
#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    /// conv_first weights.
    pub conv_first: ConvBits,
    /// The four RSTB convs.
    pub rstb_conv: ConvBits,
    /// conv_after_body.
    pub conv_after_body: ConvBits,
    /// The upsampler conv.
    pub upsample: ConvBits,
}

impl Default for ExportOptions {
    /// int8 everywhere: measured within 0.01 dB of the fake-quant PSNR on
    /// Set5 (`docs/integer-semantics.md` §Convolutions), and the only choice
    /// that keeps W2A2 above 7× compression.
    fn default() -> Self {
        Self {
            conv_first: ConvBits::I8,
            rstb_conv: ConvBits::I8,
            conv_after_body: ConvBits::I8,
            upsample: ConvBits::I8,
        }
    }
}

/// What [`export`] made.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The `.tdq` bytes.
    pub bytes: Vec<u8>,
    /// FP32 bytes of the model's learnable parameters (`4 ·` count).
    pub fp32_bytes: usize,
    /// Residual-stream fractional bits chosen.
    pub stream_frac: u32,
}

impl Exported {
    /// `fp32_bytes / file size`.
    pub fn ratio(&self) -> f64 {
        self.fp32_bytes as f64 / self.bytes.len().max(1) as f64
    }
}

/// Builds the `.tdq` bytes.
///
/// * `w`: the FP weights;
/// * `bounds`: `(l, u)` of the 384 sites in `SiteId::all` order;
/// * `bits`: 2, 3 or 4;
/// * `stats`: [`calib_stats`] of the same model.
pub fn export(
    w: &SwinIrWeights,
    bounds: &[(f32, f32)],
    bits: u8,
    stats: &CalibStats,
    opts: &ExportOptions,
) -> Result<Exported> {
    let width = match bits {
        2 => BitWidth::B2,
        3 => BitWidth::B3,
        4 => BitWidth::B4,
        _ => bail!("export: unsupported bit width {bits} (2, 3 or 4)"),
    };
    ensure!(
        bounds.len() == BLOCKS * 16,
        "export: expected 384 bound pairs"
    );
    let n = usize::from(width.levels());
    let scale = w.scale;
    let f = stream_frac_for(stats.stream);
    let fi = f as i32;
    let two_f = 2f64.powi(fi);
    let eps_t = eps_term(f)?;
    let log2e = std::f64::consts::LOG2_E;
    let sigma = f64::from(attn_scale() as f32);

    // ---- meta ----
    let mut meta_words = vec![0i32; meta::LEN];
    meta_words[meta::FORMAT] = FORMAT;
    meta_words[meta::SCALE] = scale as i32;
    meta_words[meta::BITS] = i32::from(bits);
    meta_words[meta::STREAM_FRAC] = fi;
    for l in 0..LAYERS {
        meta_words[meta::RSTB_SHIFT + l] = conv_shift(stats.rstb_in[l], f);
    }
    meta_words[meta::CAB_SHIFT] = conv_shift(stats.cab_in, f);
    meta_words[meta::UP_SHIFT] = conv_shift(stats.up_in, f);
    let gain = f64::from(INPUT_GAIN) * 255.0;
    for c in 0..3 {
        meta_words[meta::INPUT_OFFSET + c] = to_i32(gain * f64::from(RGB_MEAN[c]), "input offset")?;
    }
    for (i, d) in [EMBED, LAYERS, DEPTH, HEADS, 8, MLP].iter().enumerate() {
        meta_words[meta::DIMS + i] = *d as i32;
    }

    // ---- convs ----
    let (cf_dtype, cf_w, cf_q) = conv_section(
        &vec_f32(w, "conv_first.weight")?,
        EMBED,
        3,
        opts.conv_first,
        |delta| delta * two_f / gain,
        {
            let b = vec_f32(w, "conv_first.bias")?;
            move |o| f64::from(b[o]) * two_f
        },
    )?;
    let mut rc_w = Vec::new();
    let mut rc_q = Vec::new();
    let mut rc_dtype = Dtype::I8;
    // A 60 → 60 convolution on the stream: weights scaled by `2^k`, bias
    // in the stream's format.
    let stream_conv = |name: &str, k: i32, bits: ConvBits| {
        let b = vec_f32(w, &format!("{name}.bias"))?;
        let weight = vec_f32(w, &format!("{name}.weight"))?;
        let scale = |delta: f64| delta * 2f64.powi(k);
        conv_section(&weight, EMBED, EMBED, bits, scale, |o| {
            f64::from(b[o]) * two_f
        })
    };
    for l in 0..LAYERS {
        let k = meta_words[meta::RSTB_SHIFT + l];
        let (dt, data, q) = stream_conv(&format!("layers.{l}.conv"), k, opts.rstb_conv)?;
        rc_dtype = dt;
        rc_w.extend(data);
        rc_q.extend(q);
    }
    let cab_k = meta_words[meta::CAB_SHIFT];
    let (cab_dtype, cab_w, cab_q) = stream_conv("conv_after_body", cab_k, opts.conv_after_body)?;
    let up_k = meta_words[meta::UP_SHIFT];
    let up_out = 3 * scale * scale;
    let up_b = vec_f32(w, "upsample.0.bias")?;
    let pix = 255.0 * 2f64.powi(PIXEL_FRAC as i32);
    let (up_dtype, up_w, up_q) = conv_section(
        &vec_f32(w, "upsample.0.weight")?,
        up_out,
        EMBED,
        opts.upsample,
        |delta| delta * 2f64.powi(up_k - fi) * pix,
        |o| (f64::from(up_b[o]) + f64::from(RGB_MEAN[o / (scale * scale)])) * pix,
    )?;

    // ---- norms ----
    let model_ln = |name: &str| {
        let gamma = vec_f32(w, &format!("{name}.weight"))?;
        ln_words(&gamma, &vec_f32(w, &format!("{name}.bias"))?, fi, eps_t)
    };
    let pe = model_ln("patch_embed.norm")?;
    let norm = model_ln("norm")?;

    // ---- blocks ----
    let e = EMBED;
    let mut w_attn = Vec::with_capacity(BLOCKS * 4 * e * e);
    let mut w_fc1 = Vec::with_capacity(BLOCKS * MLP * e);
    let mut w_fc2 = Vec::with_capacity(BLOCKS * MLP * e);
    let mut rpb = Vec::with_capacity(BLOCKS * HEADS * RPB_ROWS * 2);
    let mut blocks = Vec::with_capacity(BLOCKS * block::words(n));
    for i in 0..BLOCKS {
        let (layer, blk) = ((i / DEPTH) as u8, (i % DEPTH) as u8);
        let sid = |site| SiteId {
            layer,
            block: blk,
            site,
        };
        let g = |site| grid(bounds, sid(site), width);
        let p = format!("layers.{layer}.residual_group.blocks.{blk}.");
        let get = |k: &str| vec_f32(w, &format!("{p}{k}"));
        // Extreme bounds overflow the fixed-point constants; the error names
        // the block, the constant and the bounds it was folded from.
        let from = |what: &str, sites: &[(Site, &Grid)]| {
            let list: Vec<String> = sites
                .iter()
                .map(|(site, g)| {
                    let u = g.l + g.s * f64::from(g.n);
                    format!("{site:?} [{:.6e}, {u:.6e}]", g.l)
                })
                .collect();
            format!(
                "block {}: {what} from the bounds {}",
                p.trim_end_matches('.'),
                list.join(", ")
            )
        };
        let qkv_w = get("attn.qkv.weight")?;
        let qkv_b = get("attn.qkv.bias")?;
        let proj_w = get("attn.proj.weight")?;
        let proj_b = get("attn.proj.bias")?;
        let fc1_w = get("mlp.fc1.weight")?;
        let fc1_b = get("mlp.fc1.bias")?;
        let fc2_w = get("mlp.fc2.weight")?;
        let fc2_b = get("mlp.fc2.bias")?;
        let encode = |grid: &Grid, v: &[f32]| -> Vec<u8> {
            v.iter().map(|&x| grid.params.encode(x)).collect()
        };
        let (gqw, gkw, gvw) = (g(Site::QWeight)?, g(Site::KWeight)?, g(Site::VWeight)?);
        let (gpw, gf1w, gf2w) = (
            g(Site::ProjWeight)?,
            g(Site::Fc1Weight)?,
            g(Site::Fc2Weight)?,
        );
        let cq = encode(&gqw, &qkv_w[..e * e]);
        let ck = encode(&gkw, &qkv_w[e * e..2 * e * e]);
        let cv = encode(&gvw, &qkv_w[2 * e * e..]);
        let cp = encode(&gpw, &proj_w);
        let c1 = encode(&gf1w, &fc1_w);
        let c2 = encode(&gf2w, &fc2_w);
        for c in [&cq, &ck, &cv, &cp] {
            w_attn.extend_from_slice(c);
        }
        w_fc1.extend_from_slice(&c1);
        w_fc2.extend_from_slice(&c2);

        let (gqi, gki, gvi) = (g(Site::QInput)?, g(Site::KInput)?, g(Site::VInput)?);
        let (gpi, gf1i, gf2i) = (g(Site::ProjInput)?, g(Site::Fc1Input)?, g(Site::Fc2Input)?);
        let (gaq, gak, gav, gap) = (
            g(Site::AttnQ)?,
            g(Site::AttnK)?,
            g(Site::AttnV)?,
            g(Site::AttnProb)?,
        );

        let n1w = get("norm1.weight")?;
        let n1b = get("norm1.bias")?;
        let n2w = get("norm2.weight")?;
        let n2b = get("norm2.bias")?;
        let y1 = ln_y_frac(&n1w, &n1b, &[gqi, gki, gvi]);
        let y2 = ln_y_frac(&n2w, &n2b, &[gf1i]);
        let mut words = Vec::with_capacity(block::words(n));
        words.extend(ln_words(&n1w, &n1b, y1, eps_t)?);
        words.extend(ln_words(&n2w, &n2b, y2, eps_t)?);
        for (site, gq) in [
            (Site::QInput, &gqi),
            (Site::KInput, &gki),
            (Site::VInput, &gvi),
        ] {
            words.extend(
                fq_words(gq, y1).with_context(|| from("LayerNorm 1 quantizer", &[(site, gq)]))?,
            );
        }
        words.extend(
            fq_words(&gf1i, y2)
                .with_context(|| from("LayerNorm 2 quantizer", &[(Site::Fc1Input, &gf1i)]))?,
        );
        ensure!(words.len() == block::AFF_Q);

        // One folded linear: its input and weight grids, its output either the
        // codes of an activation grid or a value in fixed point scaled by `out_scale`.
        let fold = |what: &str,
                    (in_site, input): (Site, Grid),
                    (w_site, weight): (Site, Grid),
                    codes: &[u8],
                    (k, bias, sigma): (usize, &[f32], f64),
                    out: LinearOut| {
            let (out_offset, out_scale) = match out {
                LinearOut::Codes(_, g) => (g.l, 1.0 / g.s),
                LinearOut::Scaled(scale) => (0.0, scale),
            };
            LinearFold {
                input,
                weight,
                codes,
                k,
                bias,
                sigma,
                out_offset,
                out_scale,
            }
            .fold()
            .with_context(|| {
                let mut sites = vec![(in_site, &input), (w_site, &weight)];
                if let LinearOut::Codes(site, g) = &out {
                    sites.push((*site, g));
                }
                from(what, &sites)
            })
        };
        let (q_in, q_w) = ((Site::QInput, gqi), (Site::QWeight, gqw));
        let (k_in, k_w) = ((Site::KInput, gki), (Site::KWeight, gkw));
        let (v_in, v_w) = ((Site::VInput, gvi), (Site::VWeight, gvw));
        let (p_in, p_w) = ((Site::ProjInput, gpi), (Site::ProjWeight, gpw));
        let (f1_in, f1_w) = ((Site::Fc1Input, gf1i), (Site::Fc1Weight, gf1w));
        let (f2_in, f2_w) = ((Site::Fc2Input, gf2i), (Site::Fc2Weight, gf2w));
        let (q_out, k_out) = (
            LinearOut::Codes(Site::AttnQ, gaq),
            LinearOut::Codes(Site::AttnK, gak),
        );
        let v_out = LinearOut::Codes(Site::AttnV, gav);
        let (aq, rq) = fold("q linear", q_in, q_w, &cq, (e, &qkv_b[..e], sigma), q_out)?;
        let (ak, rk) = fold(
            "k linear",
            k_in,
            k_w,
            &ck,
            (e, &qkv_b[e..2 * e], 1.0),
            k_out,
        )?;
        let (av, rv) = fold("v linear", v_in, v_w, &cv, (e, &qkv_b[2 * e..], 1.0), v_out)?;
        let stream = LinearOut::Scaled(two_f);
        let (ap, rp) = fold("proj linear", p_in, p_w, &cp, (e, &proj_b, 1.0), stream)?;
        // fc1's output is the real pre-GELU value (scale 1): `gelu_thresholds`
        // place the fc2 input levels on it.
        let gelu_in = LinearOut::Scaled(1.0);
        let (a1, r1) = fold("fc1 linear", f1_in, f1_w, &c1, (e, &fc1_b, 1.0), gelu_in)?;
        let (a2, r2) = fold("fc2 linear", f2_in, f2_w, &c2, (MLP, &fc2_b, 1.0), stream)?;
        for a in [&aq, &ak, &av, &ap, &a1, &a2] {
            words.extend_from_slice(a);
        }
        ensure!(words.len() == block::ROWC);
        for r in [&rq, &rk, &rv, &rp, &r1, &r2] {
            words.extend_from_slice(r);
        }
        ensure!(words.len() == block::QK);

        // Logits.
        let (lq, sq, sk) = (gaq.l, gaq.s, gak.s);
        let logits = || from("logits", &[(Site::AttnQ, &gaq), (Site::AttnK, &gak)]);
        let qa = to_i64(sq * sk * log2e * 2f64.powi(32), "qk A").with_context(logits)?;
        let qb = to_i64(lq * sk * log2e * 2f64.powi(32), "qk B").with_context(logits)?;
        let table = get("attn.relative_position_bias_table")?; // [225, 6]
        let tmax = max_abs_f64(table.iter().map(|&v| f64::from(v) * log2e));
        let r_frac = frac_for(tmax, 15).min(32);
        let rpb_shift = 32 - r_frac;
        ensure!(
            (0..=40).contains(&rpb_shift),
            "export: relative-position bias too large"
        );
        for h in 0..HEADS {
            for row in 0..RPB_ROWS {
                let v = (f64::from(table[row * HEADS + h]) * log2e * 2f64.powi(r_frac)).round();
                ensure!(v.abs() <= 32767.0, "export: rpb does not fit i16");
                rpb.extend_from_slice(&(v as i16).to_le_bytes());
            }
        }
        push_i64(&mut words, qa);
        push_i64(&mut words, qb);
        words.push(rpb_shift);
        ensure!(words.len() == block::AV);

        // P·v.
        let (lp, sp, lv, sv, lo, so) = (gap.l, gap.s, gav.l, gav.s, gpi.l, gpi.s);
        let (xa, xb, xc, xd) = (
            sp * sv / so,
            sp * lv / so,
            lp * sv / so,
            (64.0 * lp * lv - lo) / so,
        );
        let av_frac = MAX_FRAC
            .min(frac_for(xa.abs(), 37))
            .min(frac_for(xb.abs().max(xc.abs()), 43))
            .min(frac_for(xd.abs(), 59));
        let pv = || {
            let sites = [
                (Site::AttnProb, &gap),
                (Site::AttnV, &gav),
                (Site::ProjInput, &gpi),
            ];
            from("P·v", &sites)
        };
        if av_frac < 0 {
            bail!("{}: the constants are too large for the fixed point", pv());
        }
        let sc = 2f64.powi(av_frac);
        for (x, what) in [(xa, "av A"), (xb, "av B"), (xc, "av C"), (xd, "av D")] {
            push_i64(&mut words, to_i64(x * sc, what).with_context(pv)?);
        }
        words.push(av_frac);
        ensure!(words.len() == block::PROB);

        // AttnProb levels.
        for k in 1..=n {
            let level = (lp + (k as f64 - 0.5) * sp) * 2f64.powi(30);
            push_i64(
                &mut words,
                to_i64(level.clamp(-1.0e12, 1.0e12), "prob level")?,
            );
        }
        // GELU thresholds in the fc1 output's units.
        let fc1_frac = a1[5];
        for (hi, lo) in gelu_thresholds(gf2i.l, gf2i.s, gf2i.n, fc1_frac) {
            push_i64(&mut words, hi);
            push_i64(&mut words, lo);
        }
        ensure!(words.len() == block::words(n));
        blocks.extend(words);
    }

    // ---- pack and write ----
    let pack = |codes: &[u8], rows: usize, cols: usize| -> Result<Vec<u8>> {
        let layout = tdquant_core::PackedLayout::new(width, rows as u32, cols as u32);
        let mut out = vec![0u8; layout.byte_len()?];
        tdquant_core::pack_codes(layout, codes, &mut out)?;
        Ok(out)
    };
    let p_attn = pack(&w_attn, BLOCKS * 4 * e, e)?;
    let p_fc1 = pack(&w_fc1, BLOCKS * MLP, e)?;
    let p_fc2 = pack(&w_fc2, BLOCKS * e, MLP)?;

    let meta_b = i32_bytes(&meta_words);
    let cf_qb = i32_bytes(&cf_q);
    let pe_b = i32_bytes(&pe);
    let blocks_b = i32_bytes(&blocks);
    let rc_qb = i32_bytes(&rc_q);
    let norm_b = i32_bytes(&norm);
    let cab_qb = i32_bytes(&cab_q);
    let up_qb = i32_bytes(&up_q);
    let d = |v: usize| v as u32;
    let s_meta = [d(meta::LEN)];
    let s_cfw = [d(e), 27];
    let s_cfq = [d(e), 3];
    let s_ln = [d(ln::WORDS)];
    let s_attn = [d(BLOCKS * 4 * e), d(e)];
    let s_fc1 = [d(BLOCKS * MLP), d(e)];
    let s_fc2 = [d(BLOCKS * e), d(MLP)];
    let s_rpb = [d(BLOCKS), d(HEADS), d(RPB_ROWS)];
    let s_blocks = [d(BLOCKS), d(block::words(n))];
    let s_rcw = [d(LAYERS * e), d(9 * e)];
    let s_rcq = [d(LAYERS * e), 3];
    let s_cabw = [d(e), d(9 * e)];
    let s_cabq = [d(e), 3];
    let s_upw = [d(up_out), d(9 * e)];
    let s_upq = [d(up_out), 3];
    let specs = [
        SectionSpec::new("meta", Dtype::I32, &s_meta, &meta_b),
        SectionSpec::new("conv_first.w", cf_dtype, &s_cfw, &cf_w),
        SectionSpec::new("conv_first.q", Dtype::I32, &s_cfq, &cf_qb),
        SectionSpec::new("pe_norm", Dtype::I32, &s_ln, &pe_b),
        SectionSpec::packed("w_attn", width, &s_attn, &p_attn),
        SectionSpec::packed("w_fc1", width, &s_fc1, &p_fc1),
        SectionSpec::packed("w_fc2", width, &s_fc2, &p_fc2),
        SectionSpec::new("rpb", Dtype::I16, &s_rpb, &rpb),
        SectionSpec::new("blocks", Dtype::I32, &s_blocks, &blocks_b),
        SectionSpec::new("rstb_conv.w", rc_dtype, &s_rcw, &rc_w),
        SectionSpec::new("rstb_conv.q", Dtype::I32, &s_rcq, &rc_qb),
        SectionSpec::new("norm", Dtype::I32, &s_ln, &norm_b),
        SectionSpec::new("conv_after_body.w", cab_dtype, &s_cabw, &cab_w),
        SectionSpec::new("conv_after_body.q", Dtype::I32, &s_cabq, &cab_qb),
        SectionSpec::new("upsample.w", up_dtype, &s_upw, &up_w),
        SectionSpec::new("upsample.q", Dtype::I32, &s_upq, &up_qb),
    ];
    let len = ContainerWriter::required_len(&specs)?;
    let mut bytes = vec![0u8; len];
    ContainerWriter::write(&specs, &mut bytes)?;
    // The exporter never writes a model the runner would refuse.
    tdquant_core::int::IntModel::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("export produced an invalid model: {e}"))?;
    Ok(Exported {
        bytes,
        fp32_bytes: w.num_params() * 4,
        stream_frac: f,
    })
}

/// Where a folded linear's output goes (see `LinearFold`).
#[derive(Clone, Copy)]
enum LinearOut {
    /// The codes of an activation quantizer (site and grid, for messages).
    Codes(Site, Grid),
    /// A fixed-point value: the real output times this scale.
    Scaled(f64),
}
