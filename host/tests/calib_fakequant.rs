//! Fake quantizer: forward bit-exactness (half-to-even), codes, and the
//! released STE gradients against (a) the analytic per-region formula and
//! (b) an independent candle autograd graph built from detach tricks.

mod common;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use common::Rng;
use tdquant_host::calib::fakequant::{bound_grads, levels, QuantGrid};
use tdquant_host::calib::{codes_f32_slice, fake_quant, fake_quant_f32_slice, FakeQuantizer};

/// Independent scalar reference of the released forward, written out op by op.
fn reference(x: f32, l: f32, u: f32, bits: u8) -> (f32, f32, f32) {
    let n = ((1u32 << bits) - 1) as f32;
    let s = (u - l) / n;
    let c = x.max(l).min(u);
    let t = (c - l) / s;
    let r = t.round_ties_even();
    (s * r + l, t, r)
}

const BITS: [u8; 4] = [2, 3, 4, 8];

/// The elements of `t`, row-major.
fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// The gradient of `v` in `g`, a one-element tensor.
fn grad_at(g: &GradStore, v: &Tensor) -> f64 {
    f64::from(grad_vec(g, v)[0])
}

/// The gradient of `v` in `g`.
fn grad_vec(g: &GradStore, v: &Tensor) -> Vec<f32> {
    g.get(v).unwrap().to_vec1::<f32>().unwrap()
}

/// Fails naming `what` unless `|got − want| ≤ tol`.
fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: {got} vs {want}");
}

#[test]
fn forward_is_bit_identical_and_rounds_half_to_even() {
    let dev = Device::Cpu;
    let mut rng = Rng(1);
    for &bits in &BITS {
        for _ in 0..20 {
            let l = rng.normal() - 1.0;
            let u = l + 0.1 + 3.0 * rng.uniform();
            let x: Vec<f32> = (0..1000).map(|_| rng.normal() * 2.0).collect();
            let xt = Tensor::from_vec(x.clone(), (10, 100), &dev).unwrap();
            let q = FakeQuantizer::new(l, u, bits).unwrap();
            let y = values(&q.forward(&xt).unwrap());
            let mut ys = vec![0f32; x.len()];
            fake_quant_f32_slice(&x, l, u, bits, &mut ys).unwrap();
            let mut codes = vec![0u8; x.len()];
            codes_f32_slice(&x, l, u, bits, &mut codes).unwrap();
            let g = QuantGrid::new(l, u, bits).unwrap();
            for i in 0..x.len() {
                let (yr, _, r) = reference(x[i], l, u, bits);
                assert_eq!(y[i].to_bits(), yr.to_bits(), "bits {bits} x {}", x[i]);
                assert_eq!(ys[i].to_bits(), yr.to_bits());
                assert_eq!(codes[i] as f32, r);
                assert_eq!(g.dequantize(codes[i] as f32).to_bits(), yr.to_bits());
                assert!((codes[i] as u32) < (1u32 << bits));
            }
        }
    }
    // Exact ties: l = 0, u = N gives s = 1, so x = k + 0.5 is a tie.
    for &bits in &BITS {
        let n = levels(bits).unwrap();
        let x: Vec<f32> = (0..(n as u32)).map(|k| k as f32 + 0.5).collect();
        let xt = Tensor::from_vec(x.clone(), x.len(), &dev).unwrap();
        let y = fake_quant(
            &xt,
            &Tensor::new(&[0f32], &dev).unwrap(),
            &Tensor::new(&[n], &dev).unwrap(),
            bits,
        )
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        for (k, &v) in y.iter().enumerate() {
            let even = if k % 2 == 0 { k as f32 } else { k as f32 + 1.0 };
            assert_eq!(v, even, "bits {bits}: {} should round to {even}", x[k]);
        }
    }
}

#[test]
fn non_contiguous_input_and_bad_args() {
    let dev = Device::Cpu;
    let mut rng = Rng(7);
    let x: Vec<f32> = (0..60).map(|_| rng.normal()).collect();
    let xt = Tensor::from_vec(x, (6, 10), &dev).unwrap();
    let q = FakeQuantizer::new(-1.0, 1.5, 3).unwrap();
    let a = q.forward(&xt.t().unwrap()).unwrap();
    let b = q.forward(&xt.t().unwrap().contiguous().unwrap()).unwrap();
    assert_eq!(a.dims(), &[10, 6]);
    assert_eq!(values(&a), values(&b));
    assert!(FakeQuantizer::new(0.0, 1.0, 0).is_err());
    assert!(FakeQuantizer::new(0.0, 1.0, 9).is_err());
    assert!(q.forward(&xt.to_dtype(DType::F64).unwrap()).is_err());
    q.set_bounds(-0.5, 0.25).unwrap();
    assert_eq!(q.bounds().unwrap(), (-0.5, 0.25));
    assert_eq!(q.vars().len(), 2);
    assert_eq!(q.bits(), 3);
}

/// Test input: random values with several elements exactly at `l` and `u`
/// and some outside.
fn make_case(rng: &mut Rng, bits: u8, n: usize) -> (Vec<f32>, Vec<f32>, f32, f32) {
    let l = rng.normal() * 0.5 - 0.5;
    let u = l + 0.25 + 2.0 * rng.uniform();
    let mut x: Vec<f32> = (0..n)
        .map(|_| l + (u - l) * (rng.uniform() * 1.6 - 0.3))
        .collect();
    for i in 0..4 {
        x[i * 7] = l;
        x[i * 7 + 3] = u;
    }
    x[5] = l - 10.0;
    x[6] = u + 10.0;
    // a value exactly on the grid and one exactly half way between two grid points
    let g = QuantGrid::new(l, u, bits).unwrap();
    x[8] = g.dequantize(1.0);
    x[9] = g.lower + 1.5 * g.step;
    let w: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    (x, w, l, u)
}

/// Analytic per-region gradients written from the 2DQuant table + the
/// released clip convention (x == l counts for l, x == u counts for u, and
/// both pass the gradient to x).
fn analytic(x: &[f32], w: &[f32], l: f32, u: f32, bits: u8) -> (Vec<f64>, f64, f64, f64) {
    let n = ((1u32 << bits) - 1) as f64;
    let (mut dl, mut du, mut scale) = (0f64, 0f64, 0f64);
    let mut dx = vec![0f64; x.len()];
    for i in 0..x.len() {
        let g = w[i] as f64;
        scale += g.abs();
        let (_, t, r) = reference(x[i], l, u, bits);
        let (t, r) = (t as f64, r as f64);
        if x[i] < l {
            // region x < l: (0, dl = 1, du = 0); t = r = 0 there
            assert_eq!((t, r), (0.0, 0.0));
            dl += g;
        } else if x[i] > u {
            // region x > u: (0, dl = (t − N)/N ≈ 0, du = 1 + (N − t)/N ≈ 1)
            assert!((t - n).abs() < 1e-4 && r == n);
            dl += g * (t - r) / n;
            du += g * (1.0 + (r - t) / n);
        } else {
            dx[i] = g;
            dl += g * ((t - r) / n + if x[i] == l { 1.0 } else { 0.0 });
            du += g * ((r - t) / n + if x[i] == u { 1.0 } else { 0.0 });
        }
    }
    (dx, dl, du, scale)
}

/// The same quantizer as an ordinary candle graph: clip with the released
/// gradient convention via `a + (b − b.detach())` tricks, STE round.
fn composed(x: &Tensor, lo: &Var, up: &Var, bits: u8) -> Tensor {
    let dev = x.device();
    let n = Tensor::new(&[levels(bits).unwrap()], dev).unwrap();
    let l = lo.as_tensor();
    let u = up.as_tensor();
    let s = (u - l).unwrap().div(&n).unwrap();
    let lb = l.broadcast_as(x.shape()).unwrap();
    let ub = u.broadcast_as(x.shape()).unwrap();
    let cval = x
        .broadcast_maximum(l)
        .unwrap()
        .broadcast_minimum(u)
        .unwrap()
        .detach();
    let mx = x
        .broadcast_ge(l)
        .unwrap()
        .mul(&x.broadcast_le(u).unwrap())
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let ml = x.broadcast_le(l).unwrap().to_dtype(DType::F32).unwrap();
    let mu = x.broadcast_ge(u).unwrap().to_dtype(DType::F32).unwrap();
    let zero_fwd = |a: Tensor| (a.clone() - a.detach()).unwrap();
    let c = (cval
        + zero_fwd(x.mul(&mx).unwrap())
        + zero_fwd(lb.mul(&ml).unwrap())
        + zero_fwd(ub.mul(&mu).unwrap()))
    .unwrap();
    let t = c.broadcast_sub(l).unwrap().broadcast_div(&s).unwrap();
    let rte: Vec<f32> = values(&t).iter().map(|v| v.round_ties_even()).collect();
    let rte = Tensor::from_vec(rte, t.shape(), dev).unwrap();
    let r = (&t + (rte - &t).unwrap().detach()).unwrap();
    r.broadcast_mul(&s).unwrap().broadcast_add(l).unwrap()
}

#[test]
fn bound_gradients_match_analytic_and_composed_autograd() {
    let dev = Device::Cpu;
    for seed in 0..6u64 {
        for &bits in &BITS {
            let mut rng = Rng(100 + seed);
            let n = 257 + 31 * seed as usize;
            let (x, w, l, u) = make_case(&mut rng, bits, n);
            let xv = Var::from_vec(x.clone(), n, &dev).unwrap();
            let wt = Tensor::from_vec(w.clone(), n, &dev).unwrap();
            let q = FakeQuantizer::new(l, u, bits).unwrap();
            let y = q.forward(xv.as_tensor()).unwrap();
            let grads = y.mul(&wt).unwrap().sum_all().unwrap().backward().unwrap();
            let gl = grad_at(&grads, q.lower());
            let gu = grad_at(&grads, q.upper());
            let gx = grad_vec(&grads, &xv);
            assert_eq!(grads.get(q.lower()).unwrap().dims(), &[1]);

            let (dx, dl, du, scale) = analytic(&x, &w, l, u, bits);
            let tol = 1e-6 * scale.max(1.0);
            let case = format!("seed {seed} bits {bits}");
            close(&format!("{case}: dl"), gl, dl, tol);
            close(&format!("{case}: du"), gu, du, tol);
            for i in 0..n {
                assert_eq!(
                    gx[i] as f64, dx[i],
                    "seed {seed} bits {bits} dx[{i}] x={}",
                    x[i]
                );
            }

            // library per-element helper agrees with the written-out regions
            let grid = QuantGrid::new(l, u, bits).unwrap();
            let (hl, hu) = x.iter().zip(&w).fold((0f64, 0f64), |(a, b), (&v, &g)| {
                let (p, q) = bound_grads(&grid, v);
                (a + g as f64 * p, b + g as f64 * q)
            });
            assert!((hl - dl).abs() <= 1e-12 * scale && (hu - du).abs() <= 1e-12 * scale);

            // independent autograd graph
            let lo = Var::from_vec(vec![l], 1, &dev).unwrap();
            let up = Var::from_vec(vec![u], 1, &dev).unwrap();
            let xv2 = Var::from_vec(x.clone(), n, &dev).unwrap();
            let yc = composed(xv2.as_tensor(), &lo, &up, bits);
            assert_eq!(
                yc.to_vec1::<f32>().unwrap(),
                y.to_vec1::<f32>().unwrap(),
                "composed forward differs"
            );
            let g2 = yc.mul(&wt).unwrap().sum_all().unwrap().backward().unwrap();
            let cl = grad_at(&g2, &lo);
            let cu = grad_at(&g2, &up);
            let cx = grad_vec(&g2, &xv2);
            // f32 graph: the +l / −l / s paths cancel in f32, so a looser bound
            let tol32 = 2e-5 * scale.max(1.0);
            close(&format!("{case}: composed dl"), cl, gl, tol32);
            close(&format!("{case}: composed du"), cu, gu, tol32);
            for i in 0..n {
                assert!(
                    (cx[i] - gx[i]).abs() <= 1e-6 * gx[i].abs().max(1.0),
                    "dx[{i}]"
                );
            }
        }
    }
}

#[test]
fn per_region_table() {
    // single elements, upstream gradient 1: (dx, dl, du) per region
    let dev = Device::Cpu;
    for &bits in &BITS {
        let (l, u) = (-0.75f32, 1.3f32);
        let g = QuantGrid::new(l, u, bits).unwrap();
        let n = levels(bits).unwrap() as f64;
        let mid = l + 2.3 * g.step.min((u - l) / 3.0);
        for (x, want_dx, want_dl, want_du) in [
            (l - 1.0, 0.0, 1.0, 0.0),
            (l, 1.0, 1.0, 0.0),
            (u, 1.0, 0.0, 1.0),
            (u + 1.0, 0.0, 0.0, 1.0),
            (mid, 1.0, f64::NAN, f64::NAN),
        ] {
            let q = FakeQuantizer::new(l, u, bits).unwrap();
            let xv = Var::from_vec(vec![x], 1, &dev).unwrap();
            let grads = q
                .forward(xv.as_tensor())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let dx = grad_at(&grads, &xv);
            let dl = grad_at(&grads, q.lower());
            let du = grad_at(&grads, q.upper());
            assert_eq!(dx, want_dx, "bits {bits} x {x}");
            if want_dl.is_nan() {
                let t = g.coordinate(x) as f64;
                let r = t.round_ties_even();
                assert!((dl - (t - r) / n).abs() < 1e-6, "interior dl");
                assert!((du - (r - t) / n).abs() < 1e-6, "interior du");
                assert!(dl.abs() <= 0.5 / n + 1e-6);
            } else {
                assert!((dl - want_dl).abs() < 1e-6, "bits {bits} x {x}: dl {dl}");
                assert!((du - want_du).abs() < 1e-6, "bits {bits} x {x}: du {du}");
            }
        }
    }
}

#[test]
fn gradients_through_upstream_ops_and_broadcast_grad() {
    // x comes from an op (non-leaf), the loss is a plain sum (broadcast grad)
    let dev = Device::Cpu;
    let mut rng = Rng(42);
    let a: Vec<f32> = (0..200).map(|_| rng.normal()).collect();
    let av = Var::from_vec(a.clone(), (20, 10), &dev).unwrap();
    let x = av.as_tensor().affine(2.0, 0.1).unwrap().t().unwrap();
    let q = FakeQuantizer::new(-1.0, 1.0, 2).unwrap();
    let grads = q
        .forward(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let ga = values(grads.get(&av).unwrap());
    let grid = QuantGrid::new(-1.0, 1.0, 2).unwrap();
    let (mut dl, mut du) = (0f64, 0f64);
    for (i, &v) in a.iter().enumerate() {
        let xi = v * 2.0 + 0.1; // affine is f32 mul-add, same value as the tensor
        let inside = (-1.0..=1.0).contains(&xi);
        assert_eq!(ga[i], if inside { 2.0 } else { 0.0 }, "i {i}");
        let (p, r) = bound_grads(&grid, xi);
        dl += p;
        du += r;
    }
    let gl = grad_at(&grads, q.lower());
    let gu = grad_at(&grads, q.upper());
    assert!(
        (gl - dl).abs() < 1e-5 && (gu - du).abs() < 1e-5,
        "{gl} {dl} {gu} {du}"
    );
}

#[test]
fn large_tensor_parallel_path_matches_scalar() {
    // > one parallel block, forward and backward
    let dev = Device::Cpu;
    let mut rng = Rng(9);
    let n = 100_003;
    let x: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let (l, u, bits) = (-1.5f32, 2.0f32, 4u8);
    let xv = Var::from_vec(x.clone(), n, &dev).unwrap();
    let q = FakeQuantizer::new(l, u, bits).unwrap();
    let y = q.forward(xv.as_tensor()).unwrap();
    let yv = y.to_vec1::<f32>().unwrap();
    for i in (0..n).step_by(97) {
        assert_eq!(yv[i].to_bits(), reference(x[i], l, u, bits).0.to_bits());
    }
    let grads = y.sum_all().unwrap().backward().unwrap();
    let gl = grad_at(&grads, q.lower());
    let ones = vec![1f32; n];
    let (_, dl, _, _) = analytic(&x, &ones, l, u, bits);
    assert!((gl - dl).abs() <= 1e-6 * n as f64, "{gl} vs {dl}");
}
