//! Site-level agreement of the integer operators with the fake-quant model,
//! independent of error propagation through the network.
//!
//! The fake-quant SwinIR-light (golden DOBI bounds) runs on Set5 butterfly
//! (64×64 LR) and on each image of the golden calibration batch. At every
//! one of the 384 sites the harness feeds the integer operator that produces
//! that site's codes **the same inputs the fake-quant model gave the float
//! operator** (its float stream as the integer stream, its codes as integer
//! codes) and compares the integer codes with the fake-quant codes
//! (`codes_f32_slice`, the model's own f32 quantizer):
//!
//! | site | integer operator | its inputs (from the fake-quant run) |
//! |---|---|---|
//! | Q/K/V/Proj/Fc1/Fc2 weight | exported packed codes | the FP weights |
//! | QInput, KInput, VInput | LN1 + FixedQuant | block input (stream) |
//! | AttnQ, AttnK, AttnV | `linear_codes` | QInput/KInput/VInput codes |
//! | AttnProb | `softmax_codes` | AttnQ, AttnK codes |
//! | ProjInput | `av_codes` | AttnProb, AttnV codes |
//! | Fc1Input | LN2 + FixedQuant | stream after the attention branch |
//! | Fc2Input | fc1 `linear` + `gelu_code` | Fc1Input codes |
//!
//! Acceptance: at W4A4, W3A3 and W2A2, every site ≥ 99% identical and none
//! more than one code apart. Prints the per-site table.

use std::cell::RefCell;

use candle_core::{Device, Tensor};
use tdquant_core::int::arith::clamp_stream;
use tdquant_core::int::attention::{AvCall, SoftmaxCall};
use tdquant_core::int::gelu::gelu_code;
use tdquant_core::int::layernorm::normalize;
use tdquant_core::int::linear::{linear, linear_codes, LinearCall};
use tdquant_core::int::runner::window_tokens;
use tdquant_core::int::{IntModel, EMBED, HEADS, HEAD_DIM, MLP, RPB_ROWS, TOKENS, WINDOW};
use tdquant_host::calib::fakequant::codes_f32_slice;
use tdquant_host::calib::QuantHook;
use tdquant_host::data_root::data_root_for_test;
use tdquant_host::export::GoldenExport;
use tdquant_host::image_io::{read_rgb8, rgb8_to_f32};
use tdquant_host::model::hook::{FeatureTap, Site, SiteHook, SiteId, NUM_SITES};

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    total: u64,
    equal: u64,
    max_diff: u8,
}

impl Tally {
    fn compare(&mut self, got: &[u8], want: &[u8]) {
        assert_eq!(got.len(), want.len());
        for (&g, &w) in got.iter().zip(want) {
            self.total += 1;
            self.equal += u64::from(g == w);
            self.max_diff = self.max_diff.max(g.abs_diff(w));
        }
    }
    fn rate(&self) -> f64 {
        self.equal as f64 / self.total.max(1) as f64
    }
}

#[derive(Default)]
struct State {
    block_input: Option<Tensor>,
    attn_residual: Option<Tensor>,
    acts: Vec<(Site, Vec<f32>)>,
}

struct Harness<'a> {
    fq: QuantHook,
    int: IntModel<'a>,
    bounds: &'a [(f32, f32)],
    bits: u8,
    h: usize,
    w: usize,
    state: RefCell<State>,
    tallies: RefCell<Vec<Tally>>,
}

fn floats(x: &Tensor) -> Vec<f32> {
    x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

impl Harness<'_> {
    fn truth(&self, site: SiteId, x: &[f32]) -> Vec<u8> {
        let (l, u) = self.bounds[site.index()];
        let mut out = vec![0u8; x.len()];
        codes_f32_slice(x, l, u, self.bits, &mut out).unwrap();
        out
    }

    fn act(&self, site: Site) -> Vec<f32> {
        let st = self.state.borrow();
        st.acts
            .iter()
            .rev()
            .find(|(s, _)| *s == site)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    fn tally(&self, site: SiteId, got: &[u8], want: &[u8]) {
        self.tallies.borrow_mut()[site.index()].compare(got, want);
    }

    /// Stream integers of a float `[1, HW, 60]` tensor.
    fn stream(&self, x: &Tensor) -> Vec<i32> {
        let scale = 2f64.powi(self.int.stream_frac() as i32);
        floats(x)
            .iter()
            .map(|&v| clamp_stream((f64::from(v) * scale).round() as i64))
            .collect()
    }

    fn weight_site(&self, site: SiteId, w: &Tensor) {
        let i = usize::from(site.layer) * 6 + usize::from(site.block);
        let (matrix, row0, rows, cols) = match site.site {
            Site::QWeight => (self.int.w_attn(), i * 240, 60, 60),
            Site::KWeight => (self.int.w_attn(), i * 240 + 60, 60, 60),
            Site::VWeight => (self.int.w_attn(), i * 240 + 120, 60, 60),
            Site::ProjWeight => (self.int.w_attn(), i * 240 + 180, 60, 60),
            Site::Fc1Weight => (self.int.w_fc1(), i * 120, 120, 60),
            Site::Fc2Weight => (self.int.w_fc2(), i * 60, 60, 120),
            _ => unreachable!(),
        };
        let mut got = vec![0u8; rows * cols];
        for r in 0..rows {
            matrix
                .unpack_row((row0 + r) as u32, &mut got[r * cols..(r + 1) * cols])
                .unwrap();
        }
        self.tally(site, &got, &self.truth(site, &floats(w)));
    }

    /// Runs every activation site's integer operator of block (layer, block).
    fn check_block(&self, layer: u8, block: u8) {
        let sid = |site| SiteId { layer, block, site };
        let i = usize::from(layer) * 6 + usize::from(block);
        let bp = self.int.block(i);
        let n = self.int.bits().levels();
        let (hp, wp) = (self.h, self.w);
        let nw = (hp / WINDOW) * (wp / WINDOW);
        let x_in = self.stream(self.state.borrow().block_input.as_ref().unwrap());
        let x_mid = self.stream(self.state.borrow().attn_residual.as_ref().unwrap());
        let plane = TOKENS * EMBED;

        // LN1 → q/k/v input codes (window order).
        let xw = self.act(Site::QInput);
        let mut qin = vec![0u8; nw * plane];
        let mut kin = vec![0u8; nw * plane];
        let mut vin = vec![0u8; nw * plane];
        let (mut pos, mut labels) = ([0usize; TOKENS], [0u8; TOKENS]);
        // Window `win` (raster order of windows): its tokens and shift-mask labels.
        let tokens_of = |win: usize, pos: &mut [usize; TOKENS], labels: &mut [u8; TOKENS]| {
            let (wy, wx) = (win / (wp / WINDOW), win % (wp / WINDOW));
            window_tokens(wy, wx, hp, wp, bp.shifted, pos, labels)
        };
        let mut xh = [0i32; EMBED];
        for win in 0..nw {
            tokens_of(win, &mut pos, &mut labels);
            for (t, &p) in pos.iter().enumerate() {
                normalize(&x_in[p * EMBED..(p + 1) * EMBED], bp.ln1.eps_t, &mut xh).unwrap();
                for (c, &v) in xh.iter().enumerate() {
                    let y = bp.ln1.output(c, v);
                    let at = win * plane + t * EMBED + c;
                    qin[at] = bp.fq_q.code(y);
                    kin[at] = bp.fq_k.code(y);
                    vin[at] = bp.fq_v.code(y);
                }
            }
        }
        self.tally(sid(Site::QInput), &qin, &self.truth(sid(Site::QInput), &xw));
        self.tally(sid(Site::KInput), &kin, &self.truth(sid(Site::KInput), &xw));
        self.tally(sid(Site::VInput), &vin, &self.truth(sid(Site::VInput), &xw));

        // q, k, v linears on the fake-quant input codes.
        let heads_to_tokens = |codes: &[u8]| -> Vec<u8> {
            // [nw, 6, 64, 10] → [nw, 64, 60]
            let mut out = vec![0u8; codes.len()];
            for win in 0..nw {
                for h in 0..HEADS {
                    for t in 0..TOKENS {
                        for d in 0..HEAD_DIM {
                            out[win * plane + t * EMBED + h * HEAD_DIM + d] =
                                codes[((win * HEADS + h) * TOKENS + t) * HEAD_DIM + d];
                        }
                    }
                }
            }
            out
        };
        let w = self.int.w_attn();
        let row0 = (i * 240) as u32;
        let mut token_codes = Vec::new();
        for (k, (in_site, out_site, aff, c)) in [
            (Site::QInput, Site::AttnQ, bp.aff_q, bp.c_q),
            (Site::KInput, Site::AttnK, bp.aff_k, bp.c_k),
            (Site::VInput, Site::AttnV, bp.aff_v, bp.c_v),
        ]
        .into_iter()
        .enumerate()
        {
            let input = self.truth(sid(in_site), &xw);
            let mut got = vec![0u8; nw * plane];
            let row = row0 + 60 * k as u32;
            linear_codes(
                &LinearCall::new(&input, EMBED, w, row, EMBED, &aff, &c),
                n,
                &mut got,
            )
            .unwrap();
            let want = heads_to_tokens(&self.truth(sid(out_site), &self.act(out_site)));
            self.tally(sid(out_site), &got, &want);
            token_codes.push(want);
        }
        let (q_t, k_t, v_t) = (&token_codes[0], &token_codes[1], &token_codes[2]);

        // Softmax and P·v on the fake-quant codes.
        let p_true = self.truth(sid(Site::AttnProb), &self.act(Site::AttnProb));
        let o_true = self.truth(sid(Site::ProjInput), &self.act(Site::ProjInput));
        let mut probs = vec![0u8; TOKENS * TOKENS];
        let mut p_got = vec![0u8; p_true.len()];
        let mut o_got = vec![0u8; nw * plane];
        for win in 0..nw {
            tokens_of(win, &mut pos, &mut labels);
            let mask = bp.shifted.then_some(&labels[..]);
            let range = win * plane..(win + 1) * plane;
            for h in 0..HEADS {
                let rpb = bp.rpb.sub(h * RPB_ROWS, RPB_ROWS);
                SoftmaxCall {
                    q: &q_t[range.clone()],
                    k: &k_t[range.clone()],
                    stride: EMBED,
                    col: h * HEAD_DIM,
                    qk: &bp.qk,
                    rpb,
                    labels: mask,
                    thresholds: &bp.prob,
                }
                .run(&mut probs)
                .unwrap();
                let at = (win * HEADS + h) * TOKENS * TOKENS;
                p_got[at..at + TOKENS * TOKENS].copy_from_slice(&probs);
                AvCall {
                    probs: &p_true[at..at + TOKENS * TOKENS],
                    v: &v_t[range.clone()],
                    stride: EMBED,
                    col: h * HEAD_DIM,
                    av: &bp.av,
                    levels: n,
                    out_stride: EMBED,
                }
                .run(&mut o_got[range.clone()])
                .unwrap();
            }
        }
        self.tally(sid(Site::AttnProb), &p_got, &p_true);
        self.tally(sid(Site::ProjInput), &o_got, &o_true);

        // LN2 → fc1 input codes (pixel order).
        let pixels = hp * wp;
        let h_true = self.truth(sid(Site::Fc1Input), &self.act(Site::Fc1Input));
        let mut h_got = vec![0u8; pixels * EMBED];
        for p in 0..pixels {
            normalize(&x_mid[p * EMBED..(p + 1) * EMBED], bp.ln2.eps_t, &mut xh).unwrap();
            for (c, &v) in xh.iter().enumerate() {
                h_got[p * EMBED + c] = bp.fq_fc1.code(bp.ln2.output(c, v));
            }
        }
        self.tally(sid(Site::Fc1Input), &h_got, &h_true);

        // fc1 + GELU thresholds → fc2 input codes.
        let g_true = self.truth(sid(Site::Fc2Input), &self.act(Site::Fc2Input));
        let mut g_got = vec![0u8; pixels * MLP];
        let (w1, row1) = (self.int.w_fc1(), (i * MLP) as u32);
        let fc1 = LinearCall::new(&h_true, EMBED, w1, row1, MLP, &bp.aff_fc1, &bp.c_fc1);
        linear(&fc1, |t, j, v| {
            g_got[t * MLP + j] = gelu_code(v, &bp.gelu);
        })
        .unwrap();
        self.tally(sid(Site::Fc2Input), &g_got, &g_true);
        self.state.borrow_mut().acts.clear();
    }
}

impl SiteHook for Harness<'_> {
    fn weight(&self, site: SiteId, w: &Tensor) -> candle_core::Result<Tensor> {
        self.weight_site(site, w);
        self.fq.weight(site, w)
    }

    fn act(&self, site: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        self.state.borrow_mut().acts.push((site.site, floats(x)));
        if site.site == Site::Fc2Input {
            self.check_block(site.layer, site.block);
        }
        self.fq.act(site, x)
    }

    fn feature(&self, tap: FeatureTap, x: &Tensor) -> candle_core::Result<()> {
        let mut st = self.state.borrow_mut();
        match tap {
            FeatureTap::PatchEmbed | FeatureTap::Block { .. } | FeatureTap::Layer(_) => {
                st.block_input = Some(x.clone())
            }
            FeatureTap::AttnResidual { .. } => st.attn_residual = Some(x.clone()),
            _ => {}
        }
        Ok(())
    }
}

const SHORT: [&str; 16] = [
    "QW", "KW", "VW", "QI", "KI", "VI", "PW", "PI", "F1W", "F1I", "F2W", "F2I", "AQ", "AK", "AV",
    "AP",
];

#[test]
fn integer_sites_agree_with_fake_quant() {
    let Some(root) = data_root_for_test("int_site_agreement") else {
        return;
    };
    let mut golden = GoldenExport::new(&root).unwrap();
    let butterfly = rgb8_to_f32(
        &read_rgb8(&root.join("benchmark/Set5/LR_bicubic/X4/butterflyx4.png")).unwrap(),
    );
    let butterfly = Tensor::from_vec(
        butterfly.data.clone(),
        (1, 3, butterfly.h, butterfly.w),
        &Device::Cpu,
    )
    .unwrap();
    let mut failures = Vec::new();
    for bits in [4u8, 3, 2] {
        let (loaded, exported) = golden.export_with_bounds(bits).unwrap();
        let batch = loaded.calibration_batch.clone().unwrap();
        let int = IntModel::parse(&exported.bytes).unwrap();
        let mut images = vec![butterfly.clone()];
        for k in 0..batch.dim(0).unwrap() {
            images.push(batch.narrow(0, k, 1).unwrap());
        }
        let harness = Harness {
            fq: QuantHook::from_bounds(bits, &loaded.bounds).unwrap(),
            int,
            bounds: &loaded.bounds,
            bits,
            h: 64,
            w: 64,
            state: RefCell::new(State::default()),
            tallies: RefCell::new(vec![Tally::default(); NUM_SITES]),
        };
        for x in &images {
            assert_eq!(x.dims(), &[1, 3, 64, 64]);
            golden.model().forward_with(x, &harness).unwrap();
        }
        let tallies = harness.tallies.borrow();
        println!(
            "\nW{bits}A{bits}: integer vs fake-quant codes, % identical per site ({} images: Set5 butterfly + {} calibration patches)",
            images.len(),
            images.len() - 1
        );
        print!("block ");
        for s in SHORT {
            print!("{s:>9}");
        }
        println!();
        for blk in 0..24 {
            print!("{}.{}  ", blk / 6, blk % 6);
            for s in 0..16 {
                let t = tallies[blk * 16 + s];
                let mark = if t.max_diff > 1 {
                    "!"
                } else if t.max_diff == 1 {
                    "*"
                } else {
                    " "
                };
                print!("{:>8.4}{mark}", 100.0 * t.rate());
            }
            println!();
        }
        let worst = SiteId::all()
            .map(|s| (s, tallies[s.index()]))
            .min_by(|a, b| a.1.rate().total_cmp(&b.1.rate()))
            .unwrap();
        let total: u64 = tallies.iter().map(|t| t.total).sum();
        let equal: u64 = tallies.iter().map(|t| t.equal).sum();
        let max_diff = tallies.iter().map(|t| t.max_diff).max().unwrap();
        println!(
            "(* = some codes one apart, ! = more than one apart)\nW{bits}A{bits}: overall {:.5}% identical over {total} codes; worst site {} {:.4}%; max difference {max_diff}",
            100.0 * equal as f64 / total as f64,
            worst.0,
            100.0 * worst.1.rate()
        );
        for s in SiteId::all() {
            let t = tallies[s.index()];
            assert!(t.total > 0, "site {s} never compared");
            if t.rate() < 0.99 || t.max_diff > 1 {
                failures.push(format!(
                    "W{bits}A{bits} {s}: {:.4}% identical, max diff {}",
                    100.0 * t.rate(),
                    t.max_diff
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "sites failing the acceptance:\n{}",
        failures.join("\n")
    );
}
