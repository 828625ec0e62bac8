//! Calibrated magnitudes of the FP model's residual stream and conv inputs,
//! from which the export picks the stream's fractional bits and the conv
//! input shifts.

use std::cell::RefCell;

use anyhow::{Context, Result};
use candle_core::Tensor;
use tdquant_core::int::LAYERS;

use crate::model::hook::{FeatureTap, SiteHook, SiteId};
use crate::model::SwinIR;

/// Calibrated magnitudes (max |x| over the calibration batch, FP model).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CalibStats {
    /// Every residual-stream tensor (conv_first out, patch norm, block
    /// outputs, RSTB outputs, norm, conv_after_body + conv_first).
    pub stream: f32,
    /// Input of RSTB `l`'s conv (the residual group output).
    pub rstb_in: [f32; LAYERS],
    /// Input of conv_after_body (the final norm's output).
    pub cab_in: f32,
    /// Input of the upsampler (conv_after_body + conv_first).
    pub up_in: f32,
}

struct StatsHook {
    stats: RefCell<CalibStats>,
    conv_first: RefCell<Option<Tensor>>,
}

fn max_abs(x: &Tensor) -> candle_core::Result<f32> {
    x.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

impl SiteHook for StatsHook {
    fn weight(&self, _: SiteId, w: &Tensor) -> candle_core::Result<Tensor> {
        Ok(w.clone())
    }
    fn act(&self, _: SiteId, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
    fn feature(&self, tap: FeatureTap, x: &Tensor) -> candle_core::Result<()> {
        let m = max_abs(x)?;
        let mut s = self.stats.borrow_mut();
        match tap {
            FeatureTap::ConvFirst => {
                *self.conv_first.borrow_mut() = Some(x.clone());
                s.stream = s.stream.max(m);
            }
            FeatureTap::ResidualGroup(l) => {
                if let Some(v) = s.rstb_in.get_mut(usize::from(l)) {
                    *v = v.max(m);
                }
                s.stream = s.stream.max(m);
            }
            FeatureTap::Norm => {
                s.cab_in = s.cab_in.max(m);
                s.stream = s.stream.max(m);
            }
            FeatureTap::ConvAfterBody => {
                if let Some(f0) = self.conv_first.borrow().as_ref() {
                    let up = max_abs(&(x + f0)?)?;
                    s.up_in = s.up_in.max(up);
                    s.stream = s.stream.max(up);
                }
                s.stream = s.stream.max(m);
            }
            FeatureTap::Upsample => {}
            _ => s.stream = s.stream.max(m),
        }
        Ok(())
    }
}

/// Magnitudes of the FP model's stream and conv inputs on `batch`
/// (`[B, 3, H, W]`, H and W multiples of 8).
pub fn calib_stats(model: &SwinIR, batch: &Tensor) -> Result<CalibStats> {
    let hook = StatsHook {
        stats: RefCell::new(CalibStats::default()),
        conv_first: RefCell::new(None),
    };
    model
        .forward_with(batch, &hook)
        .context("FP calibration pass")?;
    let stats = *hook.stats.borrow();
    Ok(stats)
}
