//! The fused CPU kernels match their compositions of plain candle ops
//! (`kernels::portable`, what runs on a CUDA device) in value and gradient, and the whole
//! model is differentiable through the hooks (as the calibration needs).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};
use tdquant_host::data_root::{data_root_for, TestData};
use tdquant_host::model::geometry::{invert, partition_order, shift_mask, ShiftMask};
use tdquant_host::model::kernels::{self, portable};
use tdquant_host::model::{FpHook, SiteHook, SiteId, SwinIR};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    common::max_abs(&(a - b).unwrap())
}

/// Compares `f_fast` against `f_ref` on Var inputs: values and gradients of
/// `sum(out ⊙ probe)` w.r.t. every input.
fn check(
    name: &str,
    inputs: &[Tensor],
    f_fast: impl Fn(&[Tensor]) -> Result<Tensor>,
    f_ref: impl Fn(&[Tensor]) -> Result<Tensor>,
    tol: f32,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let a = f_fast(&ts).unwrap();
    let b = f_ref(&ts).unwrap();
    let scale = common::max_abs(&b).max(1.0);
    let dv = max_abs_diff(&a, &b);
    assert!(dv <= tol * scale, "{name}: value diff {dv}");
    let probe = Tensor::randn(0f32, 1., a.dims(), &Device::Cpu).unwrap();
    let ga = (&a * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gb = (&b * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (i, v) in vars.iter().enumerate() {
        let x = ga
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no grad for input {i}"));
        let y = gb.get(v.as_tensor()).unwrap();
        let s = common::max_abs(y).max(1.0);
        let d = max_abs_diff(x, y);
        println!("{name}: input {i} value diff {dv:.2e}, grad diff {d:.2e} (scale {s:.2e})");
        assert!(d <= tol * s, "{name}: grad diff {d} for input {i}");
    }
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1., shape, &Device::Cpu).unwrap()
}

/// A random relative-position bias and the shift mask of a 16×16 map (`nw` = 4 windows),
/// without and with the mask.
struct Terms {
    plain: kernels::WindowTerms,
    masked: kernels::WindowTerms,
}

fn bias_and_mask(heads: usize, nw: usize) -> Terms {
    let bias: Vec<f32> = randn(&[heads * 4096])
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(ShiftMask::new(16, 16).expand(), shift_mask(16, 16));
    let plain = kernels::WindowTerms {
        bias: Arc::new(bias),
        mask: None,
        heads,
        n_windows: nw,
    };
    let masked = kernels::WindowTerms {
        mask: Some(Arc::new(ShiftMask::new(16, 16))),
        ..plain.clone()
    };
    Terms { plain, masked }
}

#[test]
fn softmax_with_bias_and_mask() {
    let (b, nw, heads) = (2, 4, 6);
    let logits = (randn(&[b * nw, heads, 64, 64]) * 3.0).unwrap();
    let t = bias_and_mask(heads, nw);
    check(
        "softmax+mask",
        std::slice::from_ref(&logits),
        |x| kernels::attention_softmax(&x[0], &t.masked),
        |x| portable::attention_softmax(&x[0], &t.masked),
        1e-6,
    );
    check(
        "softmax",
        &[logits],
        |x| kernels::attention_softmax(&x[0], &t.plain),
        |x| portable::attention_softmax(&x[0], &t.plain),
        1e-6,
    );
}

#[test]
fn fused_attention_probs() {
    let (b, nw, heads) = (2, 4, 6);
    let q = (randn(&[b * nw, heads, 64, 10]) * 2.0).unwrap();
    let k = randn(&[b * nw, heads, 64, 10]);
    let t = bias_and_mask(heads, nw);
    for masked in [false, true] {
        check(
            "attention_probs",
            &[q.clone(), k.clone()],
            |x| kernels::attention_probs(&x[0], &x[1], if masked { &t.masked } else { &t.plain }),
            |x| portable::attention_probs(&x[0], &x[1], if masked { &t.masked } else { &t.plain }),
            1e-6,
        );
    }
}

#[test]
fn layer_norm_matches() {
    let x = (randn(&[2, 100, 60]) * 2.0)
        .unwrap()
        .broadcast_add(&randn(&[60]))
        .unwrap();
    check(
        "layer_norm",
        &[x, randn(&[60]), randn(&[60])],
        |t| kernels::layer_norm(&t[0], &t[1], &t[2]),
        |t| portable::layer_norm(&t[0], &t[1], &t[2]),
        2e-5,
    );
}

#[test]
fn gelu_matches() {
    let x = (randn(&[3, 1000]) * 3.0).unwrap();
    check(
        "gelu",
        &[x],
        |t| kernels::gelu_erf(&t[0]),
        |t| portable::gelu_erf(&t[0]),
        1e-6,
    );
}

#[test]
fn linear_and_bmm_match() {
    check(
        "linear",
        &[randn(&[2, 70, 60]), randn(&[120, 60]), randn(&[120])],
        |t| kernels::linear_scaled(&t[0], &t[1], &t[2], 0.5),
        |t| portable::linear_scaled(&t[0], &t[1], &t[2], 0.5),
        1e-5,
    );
    // (a·bᵀ: q·kᵀ shapes; a·b: P·v shapes)
    for (transpose_b, a_dims, b_dims) in [
        (true, [4, 6, 64, 10], [4, 6, 64, 10]),
        (false, [4, 6, 64, 64], [4, 6, 64, 10]),
    ] {
        let fused = if transpose_b {
            kernels::bmm_nt
        } else {
            kernels::bmm
        };
        let name = if transpose_b { "bmm_nt" } else { "bmm" };
        let inputs = [randn(&a_dims), randn(&b_dims)];
        check(
            name,
            &inputs,
            |t| fused(&t[0], &t[1]),
            |t| portable::bmm(&t[0], &t[1], transpose_b),
            1e-5,
        );
    }
}

#[test]
fn im2col_conv_matches_conv2d() {
    let (b, c, h, w) = (2, 5, 8, 16);
    let weight = randn(&[7, c, 3, 3]);
    let wmat = weight
        .permute((0, 2, 3, 1))
        .unwrap()
        .reshape((7, 9 * c))
        .unwrap();
    let bias = randn(&[7]);
    check(
        "conv3x3",
        &[randn(&[b, h * w, c])],
        |t| kernels::linear(&kernels::im2col3x3(&t[0], h, w)?, &wmat, &bias),
        |t| {
            let img = t[0].transpose(1, 2)?.reshape((b, c, h, w))?;
            let y = img.conv2d(&weight, 1, 1, 1, 1)?;
            y.flatten_from(2)?.transpose(1, 2)?.broadcast_add(&bias)
        },
        1e-5,
    );
    check(
        "im2col3x3",
        &[randn(&[b, h * w, c])],
        |t| kernels::im2col3x3(&t[0], h, w),
        |t| portable::im2col3x3(&t[0], h, w),
        // Values are copies; the adjoints add the nine taps in other orders.
        1e-6,
    );
}

#[test]
fn window_reverse_add_matches() {
    let (h, w) = (16, 24);
    let order = partition_order(h, w, true);
    let inv = Arc::new(invert(&order));
    let order_t = Tensor::from_vec(order, h * w, &Device::Cpu).unwrap();
    check(
        "window_reverse_add",
        &[randn(&[2, h * w, 60]), randn(&[2, h * w, 60])],
        |t| kernels::window_reverse_add(&t[0], &t[1], &order_t, &inv),
        |t| portable::window_reverse_add(&t[0], &t[1], &inv),
        0.0,
    );
    check(
        "add",
        &[randn(&[2, 30, 60]), randn(&[2, 30, 60])],
        |t| kernels::add(&t[0], &t[1]),
        |t| &t[0] + &t[1],
        0.0,
    );
}

#[test]
fn fast_exp_and_erf_accuracy() {
    let mut worst_exp = 0f64;
    let mut worst_erf = 0f64;
    for i in 0..200_000 {
        let x = -87.0 + i as f32 * (175.0 / 200_000.0);
        let e = kernels::fast_exp(x) as f64;
        let r = (x as f64).exp();
        worst_exp = worst_exp.max(((e - r) / r).abs());
        let x = -6.0 + i as f32 * (12.0 / 200_000.0);
        let y = kernels::fast_erf(x) as f64;
        // erf via the complementary series is not in std: compare with candle's erf (f64).
        let r = Tensor::new(&[x as f64], &Device::Cpu)
            .unwrap()
            .erf()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()[0];
        worst_erf = worst_erf.max((y - r).abs());
    }
    println!("fast_exp max rel err {worst_exp:.2e}, fast_erf max abs err {worst_erf:.2e}");
    assert!(worst_exp < 3e-7);
    assert!(worst_erf < 1e-6);
    assert_eq!(kernels::fast_exp(-100.0), 0.0);
    assert_eq!(kernels::fast_exp(0.0), 1.0);
}

/// Multiplies every activation and weight by its own learnable scalar (all 1.0).
struct ScaleHook {
    vars: HashMap<SiteId, Var>,
}

impl SiteHook for ScaleHook {
    fn weight(&self, site: SiteId, w: &Tensor) -> Result<Tensor> {
        w.broadcast_mul(self.vars[&site].as_tensor())
    }
    fn act(&self, site: SiteId, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(self.vars[&site].as_tensor())
    }
}

#[test]
fn model_is_differentiable_through_every_site() {
    let Some(root) = data_root_for("model_is_differentiable", TestData::Bundle) else {
        return;
    };
    let model = SwinIR::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let hook = ScaleHook {
        vars: SiteId::all()
            .map(|s| (s, Var::ones(1, DType::F32, &Device::Cpu).unwrap()))
            .collect(),
    };
    // Two 16×16 images: 4 windows each, both block kinds.
    let x = Tensor::rand(0f32, 1., (2, 3, 16, 16), &Device::Cpu).unwrap();
    let fp = model.forward_with(&x, &FpHook).unwrap();
    let y = model.forward_with(&x, &hook).unwrap();
    assert_eq!(
        max_abs_diff(&fp, &y),
        0.0,
        "a unit scale must not change the output"
    );
    let loss = (&y - &fp.detach())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    // Perturb the loss so gradients are not all zero: compare against a shifted target.
    let loss = (loss + y.sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let mut missing = vec![];
    for (site, v) in &hook.vars {
        match grads.get(v.as_tensor()) {
            Some(g) => {
                let g = g.to_vec1::<f32>().unwrap()[0];
                assert!(g.is_finite(), "{site}: {g}");
            }
            None => missing.push(*site),
        }
    }
    assert!(
        missing.is_empty(),
        "no gradient for {} sites, e.g. {}",
        missing.len(),
        missing[0]
    );
}

#[test]
fn from_varmap_matches_and_reaches_weights() {
    let Some(root) = data_root_for("from_varmap", TestData::Bundle) else {
        return;
    };
    let w = tdquant_host::weights::load(tdquant_host::data_root::default_model(&root)).unwrap();
    let model = SwinIR::from_weights(&w).unwrap();
    let vm = candle_nn::VarMap::new();
    {
        let mut data = vm.data().lock().unwrap();
        for (k, t) in &w.tensors {
            data.insert(k.clone(), Var::from_tensor(t).unwrap());
        }
    }
    let vmodel = SwinIR::from_varmap(&vm).unwrap();
    assert_eq!(vmodel.scale(), 4);
    let x = Tensor::rand(0f32, 1., (1, 3, 16, 24), &Device::Cpu).unwrap();
    let a = model.forward(&x).unwrap();
    let b = vmodel.forward(&x).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    let grads = b.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let data = vm.data().lock().unwrap();
    for k in [
        "conv_first.weight",
        "layers.1.residual_group.blocks.3.attn.qkv.weight",
        "layers.1.residual_group.blocks.3.norm1.weight",
        "layers.3.conv.weight",
        "upsample.0.bias",
    ] {
        let g = grads
            .get(data[k].as_tensor())
            .unwrap_or_else(|| panic!("no grad for {k}"));
        assert!(common::max_abs(g) > 0.0, "{k}");
    }
}
