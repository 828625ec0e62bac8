//! LR schedules (PyTorch formulas) and Adam (= candle AdamW, weight decay 0)
//! against a hand-written PyTorch-style Adam.

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer;
use tdquant_host::calib::{adam, AdamConfig, LrSchedule, ScheduledAdam};

/// `g·var`: a loss whose gradient with respect to `var` is `g`.
fn linear_loss(var: &Var, g: f64) -> Tensor {
    var.as_tensor()
        .mul(&Tensor::new(&[g as f32], var.device()).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn cosine_matches_pytorch() {
    let s = LrSchedule::cosine(1e-2, 3000);
    assert_eq!(s.lr_at(0), 1e-2);
    assert!((s.lr_at(1500) - 5e-3).abs() < 1e-15);
    assert!(s.lr_at(3000).abs() < 1e-15);
    // PyTorch's recursive (chainable) form gives the same values
    let mut lr = 1e-2f64;
    let t = 3000.0;
    for k in 1..=3000usize {
        let kf = k as f64;
        lr *= (1.0 + (std::f64::consts::PI * kf / t).cos())
            / (1.0 + (std::f64::consts::PI * (kf - 1.0) / t).cos());
        assert!(
            (lr - s.lr_at(k)).abs() <= 1e-12,
            "t={k}: {lr} vs {}",
            s.lr_at(k)
        );
    }
    let e = LrSchedule::Cosine {
        lr0: 1.0,
        t_max: 10,
        eta_min: 0.1,
    };
    assert!((e.lr_at(10) - 0.1).abs() < 1e-15);
    assert_eq!(LrSchedule::Constant { lr: 0.5 }.lr_at(12345), 0.5);
    let m = LrSchedule::MultiStep {
        lr0: 1.0,
        milestones: vec![10, 20],
        gamma: 0.5,
    };
    assert_eq!((m.lr_at(9), m.lr_at(10), m.lr_at(25)), (1.0, 0.5, 0.25));
}

/// PyTorch `torch.optim.Adam` (no amsgrad, weight_decay 0), in f64.
fn torch_adam(theta0: f64, grads: &[f64], lrs: &[f64], b1: f64, b2: f64, eps: f64) -> f64 {
    let (mut th, mut m, mut v) = (theta0, 0.0, 0.0);
    for (k, (&g, &lr)) in grads.iter().zip(lrs).enumerate() {
        let step = (k + 1) as i32;
        m = m + (1.0 - b1) * (g - m); // exp_avg.lerp_(grad, 1 - beta1)
        v = v * b2 + (1.0 - b2) * g * g;
        let bc1 = 1.0 - b1.powi(step);
        let bc2 = 1.0 - b2.powi(step);
        let denom = v.sqrt() / bc2.sqrt() + eps;
        th -= lr / bc1 * m / denom;
    }
    th
}

#[test]
fn adam_equals_pytorch_adam() {
    let dev = Device::Cpu;
    let gs: Vec<f64> = (0..25)
        .map(|k| ((k * 7 % 11) as f64 - 5.0) * 0.013 + 1e-4)
        .collect();
    for cfg in [AdamConfig::released(), AdamConfig::paper()] {
        // constant lr via candle AdamW(wd = 0)
        let var = Var::from_vec(vec![0.7f32], 1, &dev).unwrap();
        let mut opt = adam(vec![var.clone()], &cfg).unwrap();
        for &g in &gs {
            opt.backward_step(&linear_loss(&var, g)).unwrap();
        }
        let got = var.to_vec1::<f32>().unwrap()[0] as f64;
        let gs32: Vec<f64> = gs.iter().map(|&g| g as f32 as f64).collect();
        let want = torch_adam(
            0.7,
            &gs32,
            &vec![cfg.lr; gs.len()],
            cfg.beta1,
            cfg.beta2,
            cfg.eps,
        );
        assert!((got - want).abs() < 1e-6, "{cfg:?}: {got} vs {want}");

        // cosine schedule
        let sched = LrSchedule::cosine(cfg.lr, gs.len());
        let var = Var::from_vec(vec![0.7f32], 1, &dev).unwrap();
        let mut opt = ScheduledAdam::new(vec![var.clone()], &cfg, sched.clone()).unwrap();
        for &g in &gs {
            opt.backward_step(&linear_loss(&var, g)).unwrap();
        }
        assert_eq!(opt.steps_taken(), gs.len());
        let lrs: Vec<f64> = (0..gs.len()).map(|t| sched.lr_at(t)).collect();
        let want = torch_adam(0.7, &gs32, &lrs, cfg.beta1, cfg.beta2, cfg.eps);
        let got = var.to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - want).abs() < 1e-6, "{cfg:?} cosine: {got} vs {want}");
    }
}
